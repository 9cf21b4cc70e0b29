"""The pool and desktop workflows end to end on the real dev server (Updates need it)."""

from __future__ import annotations

import asyncio

from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.store.models import DesktopRecord, PoolRecord
from api.desktop_access import release_when_taken
from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimStatus,
    DesktopStatus,
    DesktopStatusInput,
    ReleaseInput,
    SessionEvent,
    SessionEventKind,
    desktop_workflow_id,
)


async def _release(env: WorkflowEnvironment, desktop_id: str) -> None:
    handle: WorkflowHandle = env.client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    await handle.execute_update(DesktopWorkflow.release, ReleaseInput(reason="test"))


async def test_fill_claim_replenish_wait_in_line_and_serve_fifo(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud) as (_, engine):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=3, prestarted=2))
        ready = await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        assert ready.ready == 2 and ready.live == 2

        alice = await claim(pool, "alice")
        assert alice.status is ClaimStatus.ASSIGNED and alice.desktop_ready
        assert alice.desktop_name and alice.desktop_name.startswith("vd-")
        again = await claim(pool, "alice")  # a repeated Connect, new request id
        assert again.desktop_id == alice.desktop_id

        refilled = await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 1)
        assert (refilled.ready, refilled.assigned, refilled.live) == (2, 1, 3)

        bob = await claim(pool, "bob")
        carol = await claim(pool, "carol")
        dave = await claim(pool, "dave")
        erin = await claim(pool, "erin")
        assert bob.status is carol.status is ClaimStatus.ASSIGNED
        assert (dave.status, dave.position, dave.preparing) == (ClaimStatus.WAITING, 1, False)
        assert (erin.status, erin.position) == (ClaimStatus.WAITING, 2)

        assert alice.desktop_id is not None
        await _release(dev_env, alice.desktop_id)
        served = await eventually(
            lambda: claim(pool, "dave", dave.request_id), lambda o: o.status is ClaimStatus.ASSIGNED
        )
        assert served.status is ClaimStatus.ASSIGNED, served
        still = await claim(pool, "erin", erin.request_id)
        assert (still.status, still.position) == (ClaimStatus.WAITING, 1)
        assert cloud.peak_servers <= 3
        assert cloud.deleted >= 1  # alice's desktop was destroyed, not reused

        def rows() -> list[DesktopRecord]:
            with Session(engine) as session:
                return list(session.exec(select(DesktopRecord)).all())

        async def projected() -> list[DesktopRecord]:
            return rows()

        def settled(rs: list[DesktopRecord]) -> bool:
            # Projections are not awaited by the workflows: the two rows land in either order.
            dave_holds = any(r.user == "dave" and r.state == "assigned" for r in rs)
            return dave_holds and any(r.id == alice.desktop_id and r.state == "destroyed" for r in rs)

        final = await eventually(projected, settled)
        assert any(r.user == "dave" and r.state == "assigned" for r in final)
        assert any(r.id == alice.desktop_id and r.state == "destroyed" for r in final)
        with Session(engine) as session:
            pool_row = session.exec(select(PoolRecord)).one()
        assert pool_row.name == "Test pool"


async def test_operator_finds_desktops_by_pool_state_and_user_in_temporal(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=3, prestarted=2))
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        frank = await claim(pool, "frank")
        pool_id = pool.id.removeprefix("pool/")

        async def ids(query: str) -> set[str]:
            return {w.id async for w in dev_env.client.list_workflows(query)}

        by_user = await eventually(
            lambda: ids(f"DeskpoolPool = '{pool_id}' AND DeskpoolUser = 'frank' AND DeskpoolState = 'assigned'"),
            lambda found: len(found) == 1,
        )
        assert by_user == {desktop_workflow_id(frank.desktop_id or "")}
        ready = await eventually(
            lambda: ids(f"DeskpoolPool = '{pool_id}' AND DeskpoolKind = 'desktop' AND DeskpoolState = 'ready'"),
            lambda found: len(found) == 2,
        )
        assert len(ready) == 2 and by_user.isdisjoint(ready)
        versions = await ids(f"DeskpoolPool = '{pool_id}' AND DeskpoolTemplateVersion = 1")
        assert len(versions) == 3
        description = await dev_env.client.get_workflow_handle(desktop_workflow_id(frank.desktop_id or "")).describe()
        assert "vd-" in (await description.static_summary() or "")


async def test_release_right_after_claim_is_not_lost_and_never_hits_the_next_user(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=2, prestarted=1))
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        first = await claim(pool, "gina")
        # At once, as the API does it: the claim's answer may overtake the pool's assign signal.
        desktop = DesktopRecord(id=first.desktop_id or "", pool_id=pool.id.removeprefix("pool/"), name="", user="gina")
        await release_when_taken(dev_env.client, desktop, ReleaseInput(reason="test"))
        gone = await eventually(lambda: counts(pool), lambda c: c.assigned == c.releasing == 0 and c.ready == 1)
        assert (gone.assigned, gone.releasing, gone.ready) == (0, 0, 1)
        assert first.desktop_id not in {s.metadata.get("deskpool_desktop") for s in cloud.servers.values()}
        second = await claim(pool, "hank")
        assert second.status is ClaimStatus.ASSIGNED
        await asyncio.sleep(1.0)
        still = await counts(pool)
        assert still.assigned == 1  # hank's session was not ended by gina's release


async def test_an_agent_connect_that_overtakes_the_assignment_is_kept_for_it(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    """The pool answers a claim before its assignment reaches the desktop: under load the user's
    connect may reach the still idle desktop first. It is kept, not lost, and applies to the
    assignment (without it the first-connect timer would end a session that is under way)."""
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=1, prestarted=1))
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        desktop_id = f"{pool.id.removeprefix('pool/')}.1"
        handle = dev_env.client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
        await handle.signal(DesktopWorkflow.session_event, SessionEvent(SessionEventKind.CONNECT))
        outcome = await claim(pool, "ivy")
        assert outcome.desktop_id == desktop_id

        async def status() -> DesktopStatus:
            result = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
            return result.snapshot.status

        assert await eventually(status, lambda s: s is DesktopStatus.CONNECTED) is DesktopStatus.CONNECTED
