"""Removing a pool end to end on the real dev server, the real engine and a fake cloud.

oVirt seed: a pool is removed only once its desktops are destroyed or detached; a
detached desktop's VM stays as an independent server outside the pool (and outside
deskpool: the reconciler must never take it for an orphan). While removing, the pool
takes no claims; once no desktop is left its row leaves the read model and it ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.store.models import AuditEvent, DesktopRecord, PoolRecord
from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tools.temporal_binaries import temporal_cli
from worker.main import WORKFLOW_RUNNER, WORKFLOWS
from workflows import search_attributes as sa
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimStatus,
    ClaimStatusInput,
    DesktopStatus,
    DesktopStatusInput,
    DesktopWorkflowResult,
    PoolStatusInput,
    RemovePoolInput,
    RemovePoolResult,
    UserClaimsInput,
    desktop_workflow_id,
)
from workflows.pool_spec import ReleasePolicy
from workflows.pool_workflow import PoolWorkflow, PoolWorkflowResult
from workflows.reconcile_workflow import (
    CloudReconcileWorkflow,
    ReconcileInput,
    ReconcileStatusInput,
    reconcile_workflow_id,
)

STUCK = 10**9  # fake-cloud polls before a build ends: a desktop that stays provisioning until let go


async def remove(pool: WorkflowHandle[Any, Any], desktops: str, reason: str = "", **kw: Any) -> RemovePoolResult:
    result: RemovePoolResult = await pool.execute_update(
        PoolWorkflow.remove_pool, RemovePoolInput(desktops, reason), **kw
    )
    return result


async def refused(pool: WorkflowHandle[Any, Any], desktops: str) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await remove(pool, desktops)
    assert isinstance(caught.value.cause, ApplicationError), caught.value.cause
    return caught.value.cause.message


async def ended(pool: WorkflowHandle[Any, Any]) -> PoolWorkflowResult:
    result: PoolWorkflowResult = await asyncio.wait_for(pool.result(), timeout=30)
    return result


def let_builds_finish(cloud: FakeCloud) -> None:
    """Builds under way end at the next poll, and any server created from now on at once
    (a desktop counted as provisioning may not have reached the cloud yet)."""
    with cloud._lock:
        cloud.build_polls = 0
        for server in cloud.servers.values():
            server.polls_left = 0


def rows(engine: Engine, model: Any) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).all())


async def stored(engine: Engine, model: Any) -> list[Any]:
    return rows(engine, model)


async def desktop_results(client: Client, engine: Engine, pool_id: str) -> dict[str, DesktopWorkflowResult]:
    ids = [r.id for r in rows(engine, DesktopRecord) if r.pool_id == pool_id]
    return {i: await client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(i)).result() for i in ids}


async def test_destroy_ends_sessions_deletes_every_server_and_the_pools_row(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=3, prestarted=2))
        pool_id = pool.id.removeprefix("pool/")
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        alice = await claim(pool, "alice")
        assert alice.status is ClaimStatus.ASSIGNED
        full = await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 1)
        assert (full.ready, full.assigned) == (2, 1)
        await eventually(lambda: stored(engine, PoolRecord), lambda found: len(found) == 1)

        taken = await remove(pool, "destroy", "removed by admin")
        assert (taken.accepted, taken.live_desktops) == (True, 3)
        result = await ended(pool)

        assert result.reason == "removed, its desktops destroyed: removed by admin"
        assert cloud.servers == {} and cloud.deleted == cloud.created == 3
        assert rows(engine, PoolRecord) == []
        finals = await desktop_results(dev_env.client, engine, pool_id)
        assert len(finals) == 3 and {r.final_status for r in finals.values()} == {DesktopStatus.DESTROYED}
        # Alice's desktop was taken from her (the administrator chose so): her claim is over.
        outcome = await pool.query(PoolWorkflow.claim_status, ClaimStatusInput(alice.request_id))
        assert outcome.status is ClaimStatus.ENDED
        status = await dev_env.client.get_workflow_handle_for(
            DesktopWorkflow.run, desktop_workflow_id(alice.desktop_id or "")
        ).query(DesktopWorkflow.status, DesktopStatusInput())
        assert any("released: pool removed: removed by admin" in e for e in status.events), status.events
        projected = await eventually(
            lambda: stored(engine, DesktopRecord), lambda rs: {r.state for r in rs} == {"destroyed"}
        )
        assert {r.state for r in projected} == {"destroyed"}
        audited = [a for a in rows(engine, AuditEvent) if a.pool_id == pool_id]
        removed = [a for a in audited if a.action == "pool.removed"]
        assert len(removed) == 1 and removed[0].detail["desktops"] == "destroy"
        assert any(a.action.startswith("desktop.destroyed") for a in audited)  # the desktops' events stay


async def test_detach_keeps_every_server_without_deskpools_tags_or_metadata_and_no_sweep_deletes_them(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=3, prestarted=2))
        pool_id = pool.id.removeprefix("pool/")
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        assert (await claim(pool, "alice")).status is ClaimStatus.ASSIGNED
        await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 1)
        kept = set(cloud.servers)
        assert len(kept) == 3

        assert (await remove(pool, "detach", "handed over")).live_desktops == 3
        result = await ended(pool)

        assert result.reason == "removed, its desktops detached: handed over"
        assert set(cloud.servers) == kept and cloud.deleted == 0
        for server in cloud.servers.values():
            assert not any(t == "deskpool" or t.startswith("dpd-") for t in server.tags), server.tags
            assert not any(k.startswith("deskpool_") for k in server.metadata), server.metadata
        assert rows(engine, PoolRecord) == []
        finals = await desktop_results(dev_env.client, engine, pool_id)
        assert len(finals) == 3 and {r.final_status for r in finals.values()} == {DesktopStatus.DETACHED}
        projected = await eventually(
            lambda: stored(engine, DesktopRecord), lambda rs: {r.state for r in rs} == {"detached"}
        )
        assert {r.server_id for r in projected} == kept  # where each VM went stays on record

        # The reconciler, even with no grace at all, finds nothing of deskpool's to delete.
        reconciler = await dev_env.client.start_workflow(
            CloudReconcileWorkflow.run,
            ReconcileInput("embedded", None, interval_s=0.2, orphan_grace_s=0.0),
            id=reconcile_workflow_id("embedded", f"test-{task_queue}"),
            task_queue=task_queue,
        )
        report = await eventually(
            lambda: reconciler.query(CloudReconcileWorkflow.status, ReconcileStatusInput()), lambda r: r.sweeps >= 3
        )
        assert report.sweeps >= 3 and report.orphans_deleted == 0
        assert set(cloud.servers) == kept
        await reconciler.terminate()


async def test_while_removing_claims_are_rejected_and_the_line_is_ended(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud(build_polls=STUCK)
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=1, prestarted=1))
        await eventually(lambda: counts(pool), lambda c: c.provisioning == 1)
        bob = await claim(pool, "bob")
        assert (bob.status, bob.position) == (ClaimStatus.WAITING, 1)
        mine = await pool.query(PoolWorkflow.user_claims, UserClaimsInput("bob"))
        assert [(c.request_id, c.status, c.position) for c in mine.claims] == [(bob.request_id, ClaimStatus.WAITING, 1)]

        assert (await remove(pool, "destroy")).live_desktops == 1
        bob_now = await pool.query(PoolWorkflow.claim_status, ClaimStatusInput(bob.request_id))
        assert bob_now.status is ClaimStatus.ENDED and "being removed" in bob_now.reason
        carol = await claim(pool, "carol")
        assert carol.status is ClaimStatus.REJECTED and "being removed" in carol.reason
        assert (await pool.query(PoolWorkflow.user_claims, UserClaimsInput("bob"))).claims == []
        still = await pool.query(PoolWorkflow.status, PoolStatusInput())
        assert (still.removal, still.counts.removing, still.counts.waiting) == ("destroy", 1, 0)
        assert cloud.created == 1  # nothing created for the line either
        assert "being removed" in await refused(pool, "detach")

        let_builds_finish(cloud)  # the desktop built at last leaves at once
        assert (await ended(pool)).reason == "removed, its desktops destroyed"
        assert cloud.servers == {} and cloud.created == 1


async def test_mode_none_is_refused_while_desktops_live_and_ends_an_empty_pool(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=2, prestarted=2))
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        assert "2 live desktops" in await refused(pool, "none")
        assert "'shred'" in await refused(pool, "shred")
        # Refused means untouched: the pool still serves.
        assert (await claim(pool, "alice")).status is ClaimStatus.ASSIGNED
        assert len(cloud.servers) == 2

        nothing = spec(name="Empty pool", max_desktops=2, prestarted=0, release=ReleasePolicy.REVERT)
        empty = await start_pool(dev_env.client, task_queue, nothing)
        assert (await remove(empty, "none")).live_desktops == 0
        assert (await ended(empty)).reason == "removed, it had no desktops"
        remaining = await eventually(lambda: stored(engine, PoolRecord), lambda rs: len(rs) == 1)
        assert [r.id for r in remaining] == [pool.id.removeprefix("pool/")]


async def test_a_repeated_remove_is_answered_alike_and_the_history_replays(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud(build_polls=STUCK)
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=2, prestarted=2))
        pool_id = pool.id.removeprefix("pool/")
        await eventually(lambda: counts(pool), lambda c: c.provisioning == 2)
        first = await remove(pool, "destroy", "by admin", id="remove-1")
        # The API retrying the same Update, then sending it anew: same answer, nothing more done.
        assert await remove(pool, "destroy", "by admin", id="remove-1") == first
        assert await remove(pool, "destroy", "again") == first == RemovePoolResult(True, 2)
        assert "already being removed with desktops=destroy" in await refused(pool, "detach")

        let_builds_finish(cloud)
        assert (await ended(pool)).reason == "removed, its desktops destroyed: by admin"
        assert cloud.created == cloud.deleted == 2 and cloud.servers == {}

        # Replaying the pool's and its desktops' histories takes the same decisions.
        replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)
        histories = [await pool.fetch_history()]
        for desktop_id in await desktop_results(dev_env.client, engine, pool_id):
            histories.append(await dev_env.client.get_workflow_handle(desktop_workflow_id(desktop_id)).fetch_history())
        assert len(histories) == 3
        for history in histories:
            replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert replayed.replay_failure is None, replayed.replay_failure


# --- continue-as-new while removing ----------------------------------------------------------

SUGGEST_AFTER_EVENTS = 60


@pytest_asyncio.fixture(scope="module")
async def can_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 60 history events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=sa.ALL,
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",
        ],
    )
    yield env
    await env.shutdown()


async def test_a_removal_under_way_survives_continue_as_new(can_env: WorkflowEnvironment, sqlite_url: str) -> None:
    task_queue = f"test-{uuid.uuid4().hex[:12]}"
    cloud = FakeCloud(build_polls=STUCK)
    client = can_env.client
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        started = await start_pool(client, task_queue, spec(max_desktops=1, prestarted=1))
        # By workflow id, whatever the current run (as the API addresses a pool).
        pool = client.get_workflow_handle_for(PoolWorkflow.run, started.id)
        await eventually(lambda: counts(pool), lambda c: c.provisioning == 1)
        await remove(pool, "detach", "moving out")
        for n in range(SUGGEST_AFTER_EVENTS // 2):  # each refused claim adds history events
            assert (await claim(pool, f"user{n}")).status is ClaimStatus.REJECTED

        runs = await eventually(lambda: _runs(client, pool.id), lambda found: len(found) >= 2)
        assert len(runs) >= 2, "the pool never continued as new"
        assert (await claim(pool, "late")).status is ClaimStatus.REJECTED
        assert (await counts(pool)).removing == 1

        let_builds_finish(cloud)
        assert (await ended(pool)).reason == "removed, its desktops detached: moving out"
        assert len(cloud.servers) == 1 and cloud.deleted == 0
        (server,) = cloud.servers.values()
        assert "deskpool" not in server.tags and not any(k.startswith("deskpool_") for k in server.metadata)


async def _runs(client: Client, workflow_id: str) -> list[Any]:
    return [w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
