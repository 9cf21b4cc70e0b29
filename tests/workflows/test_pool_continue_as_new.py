"""Continue-as-new for real: a dev server told to suggest it after 60 history events.

Issue 3: 2,000 Updates per run and 4,096 events suggest continue-as-new; both
workflows check the suggestion at the top of every loop iteration, drain their
handlers and carry their state. Here the server suggests it after 60 events
(`limit.historyCount.suggestContinueAsNew`, Temporal's dynamic config key
beside `limit.historySize.suggestContinueAsNew`), so a handful of claims or
session events crosses several runs, and everything a user or the API relies
on must come out the other side unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.engine import engine_worker, eventually, spec
from tests.fakes import FakeCloud
from tests.workflows.support import Rig, assign, rig, session, status, wait_status
from tools.temporal_binaries import temporal_cli
from workflows import search_attributes as sa
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimBatchInput,
    ClaimOutcome,
    ClaimRequest,
    ClaimStatus,
    ClaimStatusInput,
    DesktopStatus,
    PoolCounts,
    PoolStatusInput,
    ReleaseInput,
    SessionEventKind,
    UpdateSpecInput,
    desktop_workflow_id,
    pool_workflow_id,
)
from workflows.pool_spec import PoolSpec, Timers
from workflows.pool_workflow import PoolWorkflow, PoolWorkflowInput

SUGGEST_AFTER_EVENTS = 60
CONNECT, DISCONNECT, IDLE = SessionEventKind.CONNECT, SessionEventKind.DISCONNECT, SessionEventKind.IDLE


@pytest_asyncio.fixture(scope="module")
async def can_env() -> AsyncIterator[WorkflowEnvironment]:
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


async def runs(client: Client, workflow_id: str) -> int:
    """How many runs the workflow id has had (each continue-as-new adds one)."""
    return len([w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')])


async def claim(client: Client, pool_id: str, user: str, request_id: str) -> ClaimOutcome:
    """A claim as the API sends it: by workflow id (whatever the current run), retrying brief errors."""
    handle = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 3
    while True:
        try:
            result = await handle.execute_update(
                PoolWorkflow.claim, ClaimBatchInput([ClaimRequest(user, request_id)]), rpc_timeout=timedelta(seconds=1)
            )
            return result.outcomes[0]
        except (RPCError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            # Around the switch to the next run callers retry (issue 3); for seconds, it is no longer brief.
            if loop.time() > give_up:
                raise AssertionError(f"the pool stopped answering claims after continue-as-new: {err}") from err
            await asyncio.sleep(0.1)


async def pool_counts(client: Client, pool_id: str) -> PoolCounts:
    handle = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    return (await handle.query(PoolWorkflow.status, PoolStatusInput())).counts


async def claim_status(client: Client, pool_id: str, request_id: str) -> ClaimOutcome:
    handle = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    return await handle.query(PoolWorkflow.claim_status, ClaimStatusInput(request_id))


async def start_pool(client: Client, task_queue: str, pool_spec: PoolSpec) -> str:
    """Started as the API starts it: readable id, search attributes for operators."""
    pool_id = f"can{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        PoolWorkflow.run,
        PoolWorkflowInput(pool_id=pool_id, spec=pool_spec),
        id=pool_workflow_id(pool_id),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.KIND, "pool"), SearchAttributePair(sa.POOL, pool_id)]
        ),
    )
    return pool_id


async def fill(client: Client, pool_id: str, users: list[str]) -> dict[str, ClaimOutcome]:
    """Each user claims and gets a desktop; the reserve of one is refilled in between."""
    holders: dict[str, ClaimOutcome] = {}
    await eventually(lambda: pool_counts(client, pool_id), lambda c: c.ready == 1)
    for user in users:
        outcome = await claim(client, pool_id, user, f"{user}-1")
        assert outcome.status is ClaimStatus.ASSIGNED, outcome
        holders[user] = outcome
        await eventually(lambda: pool_counts(client, pool_id), lambda c: c.provisioning == 0)
    return holders


async def churn_until_runs(client: Client, pool_id: str, claims: list[tuple[str, str]], wanted_runs: int) -> None:
    """Retried claims (the API's idempotent retries) grow the history until the pool has continued as new."""
    for _ in range(40):
        if await runs(client, pool_workflow_id(pool_id)) >= wanted_runs:
            return
        for user, request_id in claims:
            await claim(client, pool_id, user, request_id)
    assert await runs(client, pool_workflow_id(pool_id)) >= wanted_runs, "the pool never continued as new"


async def test_pool_continue_as_new_keeps_holders_aliases_and_answers(
    can_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    client, cloud = can_env.client, FakeCloud()
    pool_spec = spec(max_desktops=3, prestarted=1)
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        pool_id = await start_pool(client, task_queue, pool_spec)
        holders = await fill(client, pool_id, ["alice", "bob"])
        again = await claim(client, pool_id, "alice", "alice-2")  # a repeated Connect: an alias
        assert again.desktop_id == holders["alice"].desktop_id
        pool = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
        await pool.execute_update(
            PoolWorkflow.update_spec, UpdateSpecInput(dataclasses.replace(pool_spec, enabled=False))
        )
        refused = await claim(client, pool_id, "zed", "zed-1")
        assert refused.status is ClaimStatus.REJECTED
        await pool.execute_update(PoolWorkflow.update_spec, UpdateSpecInput(pool_spec))
        before = await pool_counts(client, pool_id)
        assert (before.assigned, before.ready, before.live) == (2, 1, 3)

        await churn_until_runs(client, pool_id, [("alice", "alice-1"), ("bob", "bob-1"), ("zed", "zed-1")], 3)

        for user, held in holders.items():
            now = await claim_status(client, pool_id, held.request_id)
            assert (now.status, now.user, now.desktop_id) == (ClaimStatus.ASSIGNED, user, held.desktop_id)
        alias = await claim_status(client, pool_id, "alice-2")
        assert (alias.request_id, alias.desktop_id) == ("alice-2", holders["alice"].desktop_id)
        still_refused = await claim_status(client, pool_id, "zed-1")
        assert (still_refused.status, still_refused.reason) == (refused.status, refused.reason)
        assert await pool_counts(client, pool_id) == before
        described = await client.get_workflow_handle(pool_workflow_id(pool_id)).describe()
        assert described.typed_search_attributes.get(sa.POOL) == pool_id, "operators must still find the pool"

        # The new run still works: a new user is served from the reserve, which is refilled up to max.
        carol = await claim(client, pool_id, "carol", "carol-1")
        assert carol.status is ClaimStatus.ASSIGNED and carol.desktop_id not in {h.desktop_id for h in holders.values()}
        full = await eventually(lambda: pool_counts(client, pool_id), lambda c: c.assigned == 3 and c.provisioning == 0)
        assert (full.assigned, full.ready, full.live) == (3, 0, 3)
        assert cloud.peak_servers <= pool_spec.max_desktops, f"{cloud.peak_servers} servers in a pool of 3"
        await pool.terminate("test over")


async def test_pool_continue_as_new_keeps_the_line(
    can_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    client, cloud = can_env.client, FakeCloud()
    pool_spec = spec(max_desktops=3, prestarted=1, timers=Timers(claim_wait_timeout_s=3600))
    async with engine_worker(client, task_queue, sqlite_url, cloud):
        pool_id = await start_pool(client, task_queue, pool_spec)
        pool = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
        try:
            holders = await fill(client, pool_id, ["alice", "bob", "carol"])
            dave = await claim(client, pool_id, "dave", "dave-1")
            erin = await claim(client, pool_id, "erin", "erin-1")
            assert (dave.status, dave.position, dave.preparing) == (ClaimStatus.WAITING, 1, False)
            assert (erin.status, erin.position) == (ClaimStatus.WAITING, 2)
            before = await pool_counts(client, pool_id)
            assert (before.assigned, before.waiting, before.live) == (3, 2, 3)

            await churn_until_runs(client, pool_id, [("dave", "dave-1"), ("erin", "erin-1"), ("alice", "alice-1")], 3)

            for request_id, position in (("dave-1", 1), ("erin-1", 2)):
                waiting = await claim_status(client, pool_id, request_id)
                assert (waiting.status, waiting.position) == (ClaimStatus.WAITING, position), waiting
            for user, held in holders.items():
                kept = await claim_status(client, pool_id, held.request_id)
                assert (kept.user, kept.desktop_id) == (user, held.desktop_id)
            assert await pool_counts(client, pool_id) == before

            # The line still moves in the new run: a desktop frees up, dave is served first.
            alice_desktop = holders["alice"].desktop_id
            assert alice_desktop is not None
            desktop = client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(alice_desktop))
            await desktop.execute_update(DesktopWorkflow.release, ReleaseInput(reason="test"))
            served = await eventually(
                lambda: claim_status(client, pool_id, "dave-1"), lambda o: o.status is ClaimStatus.ASSIGNED
            )
            assert served.status is ClaimStatus.ASSIGNED, served
            erin_now = await claim_status(client, pool_id, "erin-1")
            assert (erin_now.status, erin_now.position) == (ClaimStatus.WAITING, 1)
            assert cloud.peak_servers <= pool_spec.max_desktops, f"{cloud.peak_servers} servers in a pool of 3"
        finally:
            await pool.terminate("test over")


async def test_desktop_keeps_its_snapshot_across_continue_as_new(
    can_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    async with rig(can_env.client, task_queue, sqlite_url) as desk:
        handle = await desk.start_desktop(spec(timers=Timers(disconnected_retention_s=2)))
        await wait_status(handle, DesktopStatus.READY)
        await assign(handle, "alice", "alice-r1")
        await wait_status(handle, DesktopStatus.ASSIGNED)
        await session(handle, CONNECT)
        first = await wait_status(handle, DesktopStatus.CONNECTED)
        workflow_id = handle.id

        for _ in range(100):  # 200 session events: a long day of reconnects
            await session(handle, DISCONNECT, CONNECT)
        after = await wait_status(handle, DesktopStatus.CONNECTED)

        assert await runs(can_env.client, workflow_id) >= 3, "the desktop never continued as new twice"
        kept, was = after.snapshot, first.snapshot
        assert (kept.user, kept.request_id) == ("alice", "alice-r1")
        assert (kept.server_id, kept.address, kept.powered_on) == (was.server_id, was.address, True)
        assert kept.assigned_at == was.assigned_at
        assert kept.session_started_at == was.session_started_at, "max session counts from the first connect"
        assert kept.sequence > was.sequence
        assert kept.server_id in desk.cloud.servers and desk.cloud.created == 1

        # And its timers still work in the latest run: retention releases after the last disconnect.
        await session(handle, DISCONNECT)
        latest = can_env.client.get_workflow_handle_for(DesktopWorkflow.run, workflow_id)
        try:
            result = await asyncio.wait_for(latest.result(), timeout=60)
        except TimeoutError:
            stuck = await status(latest)
            raise AssertionError(
                f"retention never released the desktop: {stuck.snapshot.status} {stuck.events[-5:]}"
            ) from None
        assert result.final_status is DesktopStatus.DESTROYED
        assert "disconnected retention expired" in result.reason
        assert desk.cloud.servers == {}


async def test_pending_disconnect_command_survives_continue_as_new(
    can_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    """The inactivity timeout leaves `pending_command == "disconnect"` for the agent to act on.

    Only a reconnect or a release clears it; a continue-as-new in between must not.
    """
    timers = Timers(disconnected_retention_s=3600, inactivity_timeout_s=1)
    async with rig(can_env.client, task_queue, sqlite_url) as desk:
        handle: Rig = desk
        desktop = await handle.start_desktop(spec(timers=timers))
        await wait_status(desktop, DesktopStatus.READY)
        await assign(desktop, "alice")
        await wait_status(desktop, DesktopStatus.ASSIGNED)
        await session(desktop, CONNECT)
        await wait_status(desktop, DesktopStatus.CONNECTED)
        await session(desktop, IDLE)
        cut = await wait_status(desktop, DesktopStatus.DISCONNECTED)
        assert cut.pending_command == "disconnect"
        runs_before = await runs(can_env.client, desktop.id)

        for _ in range(40):  # more agent chatter while disconnected, until the run changes
            await session(desktop, IDLE)
            if await runs(can_env.client, desktop.id) > runs_before:
                break
        assert await runs(can_env.client, desktop.id) > runs_before, "no continue-as-new happened"

        after = await status(desktop)
        assert after.snapshot.status is DesktopStatus.DISCONNECTED
        assert after.pending_command == "disconnect", "the command to disconnect the idle user was dropped"
