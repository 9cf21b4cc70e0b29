"""The cloud reconciler on the real dev server with the real engine and a fake cloud:
orphans deleted after the grace period (audited), lost desktops replaced."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.cloud_driver import desktop_tag
from activities.reconcile import ReconcileActivities
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.store.models import AuditEvent
from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.activity_io import CloudScope, DeleteOrphanInput
from workflows.reconcile_workflow import (
    CloudReconcileWorkflow,
    ReconcileInput,
    ReconcileStatusInput,
    SweepInput,
    SweepReport,
    reconcile_workflow_id,
)


async def test_orphans_deleted_and_lost_desktops_replaced(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=4, prestarted=2))
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        orphan = cloud.add_foreign("leaked-by-someone", desktop_id="ghost.7")
        untagged_owner = cloud.add_foreign("no-metadata", desktop_id=None)
        victim = next(iter(cloud.servers))  # a pool desktop's server
        with cloud._lock:
            cloud.servers[victim].status = "ERROR"

        reconciler: WorkflowHandle = await dev_env.client.start_workflow(
            CloudReconcileWorkflow.run,
            ReconcileInput("embedded", None, interval_s=0.5, orphan_grace_s=1.0),
            id=reconcile_workflow_id("embedded", f"test-{task_queue}"),
            task_queue=task_queue,
        )

        async def report() -> SweepReport:
            await reconciler.signal(CloudReconcileWorkflow.sweep, SweepInput())
            return await reconciler.query(CloudReconcileWorkflow.status, ReconcileStatusInput())

        done = await eventually(report, lambda r: r.orphans_deleted == 2 and r.desktops_replaced >= 1, timeout_s=30)
        assert done.orphans_deleted == 2 and done.desktops_replaced >= 1
        assert orphan not in cloud.servers and untagged_owner not in cloud.servers
        assert victim not in cloud.servers  # the ERROR server was deleted with its desktop
        healed = await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.live == 2)
        assert (healed.ready, healed.live) == (2, 2)  # replaced, never above targets
        assert all(s.status == "ACTIVE" for s in cloud.servers.values())
        with Session(engine) as session:
            audited = session.exec(select(AuditEvent).where(AuditEvent.action == "server.orphan_deleted")).all()
        assert {a.detail["server_id"] for a in audited} == {orphan, untagged_owner}
        await reconciler.terminate()


async def test_servers_of_running_desktops_are_never_orphans(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=3, prestarted=3))
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        before = set(cloud.servers)
        reconciler = await dev_env.client.start_workflow(
            CloudReconcileWorkflow.run,
            ReconcileInput("embedded", None, interval_s=0.2, orphan_grace_s=0.0),
            id=reconcile_workflow_id("embedded", f"test-{task_queue}"),
            task_queue=task_queue,
        )
        report = await eventually(
            lambda: reconciler.query(CloudReconcileWorkflow.status, ReconcileStatusInput()), lambda r: r.sweeps >= 3
        )
        assert report.sweeps >= 3 and report.orphans_deleted == 0 and report.desktops_replaced == 0
        assert set(cloud.servers) == before
        await reconciler.terminate()


async def test_a_server_no_longer_tagged_as_deskpools_is_never_deleted_as_an_orphan(
    dev_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    """A desktop detached on its pool's removal loses the tag, then its workflow ends: a sweep
    that listed the server before and surveyed the desktops after re-checks before deleting."""
    cloud = FakeCloud()
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    detached = cloud.add_foreign("detached-vm", desktop_id="gone.1")
    cloud.remove_tags(detached, ["deskpool", desktop_tag("gone.1")])
    leaked = cloud.add_foreign("leaked-vm", desktop_id=None)
    reconcile = ReconcileActivities(dev_env.client, cloud.driver, engine)
    env, at, scope = ActivityEnvironment(), datetime.now(UTC), CloudScope("embedded")

    kept = await env.run(reconcile.delete_orphan, DeleteOrphanInput(scope, detached, "detached-vm", "gone.1", at))
    assert not kept.deleted and "detached" in kept.reason
    assert detached in cloud.servers
    deleted = await env.run(reconcile.delete_orphan, DeleteOrphanInput(scope, leaked, "leaked-vm", None, at))
    assert deleted.deleted and leaked not in cloud.servers
    engine.dispose()
