"""Record the workflow histories that tests/workflows/test_replay.py replays.

    .venv/bin/python -m tests.workflows.record_histories

Runs representative scenarios on fresh local dev servers (the real worker and
activities, a fake cloud, short timers) and writes every PoolWorkflow and
DesktopWorkflow run's history as JSON into tests/histories/, replacing what is
there. Read test_replay.py's docstring before re-recording: never re-record to
make a non-determinism go away.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.support import DesktopHandle, Rig, assign, rig, session, wait_status
from tools.temporal_binaries import temporal_cli
from workflows import search_attributes
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimStatus,
    DesktopStatus,
    ReleaseInput,
    ReturnInput,
    SessionEventKind,
    desktop_workflow_id,
    pool_workflow_id,
)
from workflows.pool_spec import ReleasePolicy, Timers

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
CONNECT, DISCONNECT = SessionEventKind.CONNECT, SessionEventKind.DISCONNECT
IDLE, LOGOFF = SessionEventKind.IDLE, SessionEventKind.LOGOFF
SHORT = Timers(disconnected_retention_s=1, inactivity_timeout_s=1, first_connect_timeout_s=60)
Scenario = Callable[[Client, str, str], Awaitable[None]]


@asynccontextmanager
async def dev_server(*extra_args: str) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        dev_server_extra_args=list(extra_args),
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def save(client: Client, workflow_id: str, name: str) -> int:
    """Write every run of the workflow id, oldest first; returns how many."""
    run_ids = [w.run_id async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    run_ids.reverse()  # newest first from visibility
    for index, run_id in enumerate(run_ids, start=1):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        suffix = f".run{index}" if len(run_ids) > 1 else ""
        (HISTORIES / f"{name}{suffix}.json").write_text(history.to_json() + "\n")
    return len(run_ids)


async def save_pool(client: Client, pool_id: str, name: str) -> None:
    await save(client, pool_workflow_id(pool_id), f"{name}.pool")
    for number in range(1, 20):
        workflow_id = desktop_workflow_id(f"{pool_id}.{number}")
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            break
        await save(client, workflow_id, f"{name}.desktop{number}")


# --- scenarios -------------------------------------------------------------------------------------


async def pool_fill_claim_wait_release_serve(client: Client, task_queue: str, database_url: str) -> None:
    """A destroy pool of 2 with a reserve of 1: fill, claim, a repeated Connect, wait in line, release, serve."""
    async with engine_worker(client, task_queue, database_url, FakeCloud()):
        pool = await start_pool(client, task_queue, spec(max_desktops=2, prestarted=1, timers=SHORT))
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        alice = await claim(pool, "alice", "alice-1")
        await claim(pool, "alice", "alice-2")
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        await claim(pool, "bob", "bob-1")
        carol = await claim(pool, "carol", "carol-1")
        assert carol.status is ClaimStatus.WAITING, carol
        assert alice.desktop_id is not None
        desktop = client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(alice.desktop_id))
        await desktop.execute_update(DesktopWorkflow.release, ReleaseInput(reason="recording"))
        served = await eventually(lambda: claim(pool, "carol", "carol-1"), lambda o: o.status is ClaimStatus.ASSIGNED)
        assert served.status is ClaimStatus.ASSIGNED, served
        await eventually(lambda: counts(pool), lambda c: c.provisioning == 0 and c.releasing == 0)
        pool_id = pool.id.removeprefix("pool/")
        await save_pool(client, pool_id, "pool_serve")
        await pool.terminate("recorded")


async def lone_desktops(client: Client, task_queue: str, database_url: str) -> None:
    """One desktop per release path and timer, each alone (no pool)."""
    async with rig(client, task_queue, database_url) as desks:
        await _retention_after_inactivity(desks)
        await _revert(desks)
        await _manual(desks)
        await _warm_tier(desks)
        await _first_connect_timeout(desks)
    async with rig(client, task_queue, database_url) as failing:
        await _failed_build(failing)


async def _connected(desks: Rig, **overrides: object) -> DesktopHandle:
    handle = await desks.start_desktop(spec(timers=SHORT, **overrides))
    await wait_status(handle, DesktopStatus.READY)
    await assign(handle, "alice", "alice-1")
    await wait_status(handle, DesktopStatus.ASSIGNED)
    await session(handle, CONNECT)
    await wait_status(handle, DesktopStatus.CONNECTED)
    return handle


async def _retention_after_inactivity(desks: Rig) -> None:
    handle = await _connected(desks)
    await session(handle, IDLE)
    await wait_status(handle, DesktopStatus.DISCONNECTED)
    await handle.result()
    await save(desks.client, handle.id, "desktop_inactivity_retention")


async def _revert(desks: Rig) -> None:
    handle = await _connected(desks, release=ReleasePolicy.REVERT)
    await session(handle, LOGOFF)
    await wait_status(handle, DesktopStatus.READY)
    await save(desks.client, handle.id, "desktop_revert")


async def _manual(desks: Rig) -> None:
    handle = await _connected(desks, release=ReleasePolicy.MANUAL)
    await session(handle, DISCONNECT)
    await wait_status(handle, DesktopStatus.AWAITING_RETURN)
    await handle.signal(DesktopWorkflow.return_desktop, ReturnInput())
    await wait_status(handle, DesktopStatus.READY)
    await save(desks.client, handle.id, "desktop_manual")


async def _warm_tier(desks: Rig) -> None:
    handle = await desks.start_desktop(spec(timers=SHORT, release=ReleasePolicy.REVERT), power_on=False)
    await wait_status(handle, DesktopStatus.STANDBY)
    await assign(handle, "bob", "bob-1")
    await wait_status(handle, DesktopStatus.ASSIGNED)
    await save(desks.client, handle.id, "desktop_warm_tier")


async def _first_connect_timeout(desks: Rig) -> None:
    timers = Timers(disconnected_retention_s=1, first_connect_timeout_s=1)
    handle = await desks.start_desktop(spec(timers=timers))
    await wait_status(handle, DesktopStatus.READY)
    await assign(handle, "carol", "carol-1")
    await handle.result()
    await save(desks.client, handle.id, "desktop_first_connect_timeout")


async def _failed_build(desks: Rig) -> None:
    the_spec = spec(timers=SHORT)
    desks.cloud.fail_names.add(the_spec.desktop_name(1))
    handle = await desks.start_desktop(the_spec)
    result = await handle.result()
    assert result.final_status is DesktopStatus.FAILED, result
    await save(desks.client, handle.id, "desktop_failed_build")


async def continue_as_new(client: Client, task_queue: str, database_url: str) -> None:
    """Runs that end in continue-as-new and runs that start from carried state."""
    async with engine_worker(client, task_queue, database_url, FakeCloud()):
        pool = await start_pool(client, task_queue, spec(max_desktops=2, prestarted=1, timers=SHORT))
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        await claim(pool, "alice", "alice-1")
        for _ in range(30):
            if len([w async for w in client.list_workflows(f'WorkflowId = "{pool.id}"')]) >= 2:
                break
            await claim(pool, "alice", "alice-1")
        await eventually(lambda: counts(pool), lambda c: c.ready == 1 and c.provisioning == 0)
        await save(client, pool.id, "can.pool")
        await pool.terminate("recorded")
    async with rig(client, task_queue, database_url) as desks:
        handle = await _connected(desks)
        for _ in range(20):
            await session(handle, DISCONNECT, CONNECT)
        await session(handle, DISCONNECT)
        await client.get_workflow_handle(handle.id).result()
        await save(client, handle.id, "can.desktop")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    for old in HISTORIES.glob("*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            for number, scenario in enumerate((pool_fill_claim_wait_release_serve, lone_desktops)):
                await scenario(env.client, f"record-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp}/s{number}.db")
        async with dev_server("--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60") as env:
            await continue_as_new(env.client, f"record-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp}/can.db")
    for path in sorted(HISTORIES.glob("*.json")):
        print(f"{path.stat().st_size:>8}  {path.relative_to(HISTORIES.parent.parent)}")


if __name__ == "__main__":
    asyncio.run(main())
