"""Template versions and Recreate (issue 7) on the real dev server, the real engine and a fake cloud.

A template change makes a new version: desktops keep theirs, new ones get the newest. A rollout
(RolloutWorkflow) asks the pool to let idle old-version desktops go and the pool replaces them on
the newest version: a canary first, then bounded batches, never below the ready floor; it pauses
by itself on a failed canary or too many failures, resumes, cancels, and survives a worker
restart and continue-as-new. The fake cloud holds builds (`STUCK`) and fails them on demand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.store.models import AuditEvent, DesktopRecord
from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tools.temporal_binaries import temporal_cli
from worker.main import WORKFLOW_RUNNER, WORKFLOWS
from workflows import search_attributes as sa
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimStatus,
    DesktopStatusInput,
    ReleaseInput,
    RemovePoolInput,
    UpdateSpecInput,
    desktop_workflow_id,
)
from workflows.pool_spec import PoolSpec, ReleasePolicy, Template
from workflows.pool_workflow import PoolWorkflow
from workflows.rollout_messages import (
    CanaryResult,
    RolloutCommand,
    RolloutProgress,
    RolloutProgressInput,
    RolloutStatus,
    RolloutStrategy,
    RolloutViewInput,
    rollout_workflow_id,
)
from workflows.rollout_workflow import RolloutInput, RolloutWorkflow

STUCK = 10**9  # fake-cloud polls before a build ends: held until let go
V2 = Template(image="win11-v2", flavor="vdi.medium")
POLL_S = 0.1


async def new_template(pool: WorkflowHandle[Any, Any], pool_spec: PoolSpec, template: Template = V2) -> int:
    changed = dataclasses.replace(pool_spec, template=template)
    result = await pool.execute_update(PoolWorkflow.update_spec, UpdateSpecInput(changed))
    version: int = result.template_version
    return version


async def start_rollout(
    client: Client, task_queue: str, pool: WorkflowHandle[Any, Any], target: int, **options: Any
) -> WorkflowHandle[Any, Any]:
    pool_id = pool.id.removeprefix("pool/")
    return await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(pool_id, target, poll_s=POLL_S, **options),
        id=rollout_workflow_id(pool_id),
        task_queue=task_queue,
    )


async def progress(rollout: WorkflowHandle[Any, Any]) -> RolloutProgress:
    result: RolloutProgress = await rollout.query(RolloutWorkflow.progress, RolloutProgressInput())
    return result


async def follow(
    rollout: WorkflowHandle[Any, Any],
    pool: WorkflowHandle[Any, Any],
    until: Callable[[RolloutProgress], bool],
    timeout_s: float = 30.0,
) -> tuple[RolloutProgress, list[int], list[RolloutProgress]]:
    """Poll the rollout until `until(progress)`; on every change of its progress, the pool's ready
    count (sampled by the test, not taken from the rollout) and the progress itself are kept."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    readies: list[int] = []
    seen: list[RolloutProgress] = []
    while True:
        now = await progress(rollout)
        if not seen or dataclasses.replace(now, observations=0) != dataclasses.replace(seen[-1], observations=0):
            seen.append(now)
            readies.append((await counts(pool)).ready)
        if until(now):
            return now, readies, seen
        if loop.time() > deadline:
            pytest.fail(f"the rollout never got there: {now}")
        await asyncio.sleep(0.02)


async def looks_later(rollout: WorkflowHandle[Any, Any], more: int = 4) -> RolloutProgress:
    """Wait until the rollout has looked at its pool `more` times again (instead of sleeping)."""
    start = (await progress(rollout)).observations
    return await eventually(lambda: progress(rollout), lambda p: p.observations >= start + more)


def images(cloud: FakeCloud) -> list[str]:
    with cloud._lock:
        return sorted(s.image for s in cloud.servers.values())


def let_go(cloud: FakeCloud, *, all_future: bool = False) -> None:
    """Builds under way end at the next poll (and with all_future every later one at once)."""
    with cloud._lock:
        if all_future:
            cloud.build_polls = 0
        for server in cloud.servers.values():
            server.polls_left = 0


async def test_a_template_change_makes_a_version_old_desktops_keep_theirs_new_ones_get_the_newest(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        assert await new_template(pool, pool_spec) == 2
        # Only the template makes a version: another edit keeps it.
        assert await new_template(pool, dataclasses.replace(pool_spec, description="edited")) == 2
        assert images(cloud) == ["win11-golden", "win11-golden"]

        held = [await claim(pool, user) for user in ("alice", "bob")]
        assert {o.status for o in held} == {ClaimStatus.ASSIGNED}
        await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 2)
        assert images(cloud) == ["win11-golden", "win11-golden", "win11-v2", "win11-v2"]
        for outcome in held:  # the desktops in use kept their version
            desktop = dev_env.client.get_workflow_handle_for(
                DesktopWorkflow.run, desktop_workflow_id(outcome.desktop_id or "")
            )
            status = await desktop.query(DesktopWorkflow.status, DesktopStatusInput())
            assert (status.template_version, status.image) == (1, "win11-golden")
        view = await pool.query(PoolWorkflow.rollout_view, RolloutViewInput())
        assert view.template_version == 2 and view.remaining == 0 and view.in_use == [o.desktop_id for o in held]
        await pool.terminate()


async def test_a_canary_first_then_batches_and_the_ready_floor_is_never_broken(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=6, prestarted=4)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK  # the canary's build is held
        rollout = await start_rollout(dev_env.client, task_queue, pool, target)

        building, readies, _ = await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)
        assert building.floor == 2 and building.batch_size == 2 and building.total == 4
        held = await looks_later(rollout)
        # Nothing else goes while the canary builds: one old desktop sent away, one new building.
        assert (held.status, held.done + held.leaving, held.building) == (RolloutStatus.RUNNING, 1, 1), held
        assert cloud.deleted == 1 and held.waiting.startswith("waiting for the canary desktop")
        canary = held.canary.desktop_id

        let_go(cloud, all_future=True)
        final, more, seen = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        readies += more
        assert (final.done, final.total, final.failures) == (4, 4, 0)
        assert (final.canary.desktop_id, final.canary.result) == (canary, CanaryResult.READY)
        assert min(readies) >= 2 and final.lowest_ready is not None and final.lowest_ready >= 2, readies
        assert max(p.leaving for p in seen) <= 2  # batches of two at most
        # Only after the canary was up did a second old desktop go.
        assert all(p.done + p.leaving <= 1 for p in seen if p.canary.result is not CanaryResult.READY)
        # The result is the last progress (its start time read on replay may differ by milliseconds).
        assert dataclasses.replace(await rollout.result(), started_at=None) == dataclasses.replace(
            final, started_at=None
        )
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        assert images(cloud) == ["win11-v2"] * 4

        # Replaying the rollout's and the pool's histories takes the same decisions.
        replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)
        for history in (await rollout.fetch_history(), await pool.fetch_history()):
            replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert replayed.replay_failure is None, replayed.replay_failure
        await pool.terminate()


async def test_a_failed_canary_pauses_the_rollout_and_resume_completes_it(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool_spec = spec(max_desktops=5, prestarted=3)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        target = await new_template(pool, pool_spec)
        cloud.fail_all = True
        rollout = await start_rollout(dev_env.client, task_queue, pool, target)

        paused, _, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.PAUSED)
        assert paused.canary.result is CanaryResult.FAILED and paused.failures >= 1
        assert paused.paused_reason.startswith(f"canary desktop {paused.canary.desktop_id} failed: "), paused
        still = await looks_later(rollout, 2)
        assert still.status is RolloutStatus.PAUSED and still.done + still.leaving == 1
        assert images(cloud).count("win11-golden") == 2  # the other old desktops stay

        cloud.fail_all = False  # the administrator fixed the cause
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await rollout.execute_update(RolloutWorkflow.pause, RolloutCommand("admin"))
        assert isinstance(refused.value.cause, ApplicationError)
        assert "only a running rollout can be paused" in refused.value.cause.message
        resumed = await rollout.execute_update(RolloutWorkflow.resume, RolloutCommand("admin"))
        assert resumed.status is RolloutStatus.RUNNING and resumed.paused_reason == ""
        final, _, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        assert final.canary.result is CanaryResult.READY and final.done == final.total == 3
        # The failed desktops (their servers deleted long ago) are cleared from the read model.
        assert final.cleared >= 1
        with Session(engine) as session:
            rows = session.exec(select(DesktopRecord).where(DesktopRecord.pool_id == pool.id.removeprefix("pool/")))
            states = [r.state for r in rows]
            events = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.action == "desktop.cleared"))]
        assert states.count("destroyed") >= final.cleared and len(events) == final.cleared
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        assert images(cloud) == ["win11-v2"] * 3
        await pool.terminate()


async def test_failures_beyond_the_limit_pause_by_themselves(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=6, prestarted=4)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK
        rollout = await start_rollout(dev_env.client, task_queue, pool, target, max_failures=1)
        await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)
        let_go(cloud)  # the canary comes up...
        await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.READY)
        cloud.fail_all = True  # ...and every build after it fails

        def failing(p: RolloutProgress) -> bool:
            let_go(cloud)
            return p.status is RolloutStatus.PAUSED

        paused, _, _ = await follow(rollout, pool, failing)
        assert paused.failures >= 2
        assert "desktops failed on template version 2 (at most 1)" in paused.paused_reason, paused
        held = await looks_later(rollout, 2)
        assert held.status is RolloutStatus.PAUSED and held.done + held.leaving == paused.done + paused.leaving

        cloud.fail_all = False
        let_go(cloud, all_future=True)
        await rollout.execute_update(RolloutWorkflow.resume, RolloutCommand("admin"))
        final, _, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        assert final.done == final.total == 4 and final.failures >= paused.failures
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        assert images(cloud) == ["win11-v2"] * 4
        await pool.terminate()


async def test_cancel_stops_where_it_is_and_a_new_rollout_may_follow(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=5, prestarted=3)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK
        rollout = await start_rollout(dev_env.client, task_queue, pool, target)
        await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)

        cancelled = await rollout.execute_update(RolloutWorkflow.cancel, RolloutCommand("admin"))
        assert (cancelled.status, cancelled.reason) == (RolloutStatus.CANCELLED, "cancelled by admin")
        result = await rollout.result()
        assert result.status is RolloutStatus.CANCELLED and result.finished_at is not None
        let_go(cloud, all_future=True)
        await eventually(lambda: counts(pool), lambda c: c.ready == 3 and c.provisioning == 0)
        assert images(cloud) == ["win11-golden", "win11-golden", "win11-v2"]  # nothing more replaced

        # The same id again once the last one ended; cancelled through Temporal this time.
        cloud.build_polls = STUCK
        again = await start_rollout(dev_env.client, task_queue, pool, target, strategy=RolloutStrategy.IMMEDIATE)
        await follow(again, pool, lambda p: p.canary.result is not CanaryResult.PENDING)
        await again.cancel()
        ended = await again.result()
        assert (ended.status, ended.reason) == (RolloutStatus.CANCELLED, "cancelled through Temporal")
        await pool.terminate()


async def test_the_pools_removal_ends_its_rollout(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2)
        pool = await start_pool(dev_env.client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK
        rollout = await start_rollout(dev_env.client, task_queue, pool, target)
        await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)
        await pool.execute_update(PoolWorkflow.remove_pool, RemovePoolInput("destroy", "gone"))
        ended = await rollout.result()
        assert (ended.status, ended.reason) == (RolloutStatus.CANCELLED, "the pool is being removed")
        let_go(cloud, all_future=True)
        await pool.result()


async def test_a_worker_restart_mid_rollout_loses_nothing(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    client = dev_env.client
    pool_spec = spec(max_desktops=6, prestarted=4)
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        pool = await start_pool(client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK
        rollout = await start_rollout(client, task_queue, pool, target)
        before, _, _ = await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)
    # The worker is gone; the canary's build finishes meanwhile; a new worker takes over.
    let_go(cloud, all_future=True)
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        final, readies, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        assert (final.done, final.total, final.canary.desktop_id) == (4, 4, before.canary.desktop_id)
        assert min(readies) >= 2 and (final.lowest_ready or 0) >= 2
        await eventually(lambda: counts(pool), lambda c: c.ready == 4)
        assert images(cloud) == ["win11-v2"] * 4
        await pool.terminate()


async def test_desktops_in_use_go_once_their_users_are_done_when_asked(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    client = dev_env.client
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2, release=ReleasePolicy.REVERT)
        pool = await start_pool(client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        alice = await claim(pool, "alice")
        await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 1)
        target = await new_template(pool, pool_spec)
        rollout = await start_rollout(client, task_queue, pool, target, recycle_assigned=True)
        final, _, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        assert (final.done, final.deferred) == (2, 1)
        # Never taken from its user: still hers, on the old version.
        assert images(cloud).count("win11-golden") == 1 and (await counts(pool)).assigned == 1

        desktop = client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(alice.desktop_id or ""))
        await desktop.execute_update(DesktopWorkflow.release, ReleaseInput("logged off"))
        ended = await desktop.result()
        assert ended.reason.endswith("destroyed: recreate: an old template version, back from its user")
        await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.live == 2)
        assert images(cloud) == ["win11-v2"] * 2
        await pool.terminate()


# --- continue-as-new --------------------------------------------------------------------------

SUGGEST_AFTER_EVENTS = 40


@pytest_asyncio.fixture(scope="module")
async def can_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 40 history events."""
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


async def test_a_long_rollout_continues_as_new_and_keeps_its_progress(
    can_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    task_queue = f"test-{uuid.uuid4().hex[:12]}"
    client = can_env.client
    cloud = FakeCloud()
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2)
        started = await start_pool(client, task_queue, pool_spec)
        pool = client.get_workflow_handle_for(PoolWorkflow.run, started.id)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        target = await new_template(pool, pool_spec)
        cloud.build_polls = STUCK
        first = await start_rollout(client, task_queue, pool, target)
        rollout = client.get_workflow_handle_for(RolloutWorkflow.run, first.id)  # whatever the current run
        building, _, _ = await follow(rollout, pool, lambda p: p.canary.result is CanaryResult.BUILDING)

        async def runs() -> int:
            return len([w async for w in client.list_workflows(f'WorkflowId = "{rollout.id}"')])

        # A look a second (the server's timer resolution): ~6 history events each.
        assert await eventually(runs, lambda n: n >= 2, timeout_s=30) >= 2, "the rollout never continued as new"
        carried = await progress(rollout)
        assert carried.started_at == building.started_at and carried.canary == building.canary
        let_go(cloud, all_future=True)
        final, _, _ = await follow(rollout, pool, lambda p: p.status is RolloutStatus.COMPLETED)
        assert final.done == final.total == 2 and final.canary.desktop_id == building.canary.desktop_id
        assert (await rollout.result()).status is RolloutStatus.COMPLETED
        await pool.terminate()
