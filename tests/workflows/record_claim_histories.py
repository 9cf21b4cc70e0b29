"""Record histories of claims answered before their assignments are delivered, for test_replay.py.

    .venv/bin/python -m tests.workflows.record_claim_histories [scenario ...]

Like record_histories.py (read test_replay.py's docstring first: never re-record to make a
non-determinism go away), for the pool's `pool-claim-answers-before-assignments-delivered`
and the desktop's `desktop-idle-keeps-events-for-its-assignment` patches: a storm of claims
in one batch, a Release sent the moment its claim is answered, and an agent's connect that
reaches an idle desktop before its assignment does; and the pool's projection as a regular
activity (`pool-projects-with-a-regular-activity`). Writes tests/histories/<scenario>.*, replacing
only those of the scenarios named (default: all); record_histories.py deletes every history, so
run this one after it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid

from temporalio.client import Client

from activities.store.models import DesktopRecord
from api.desktop_access import release_when_taken
from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import HISTORIES, dev_server, save, save_pool
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimBatchInput,
    ClaimRequest,
    ClaimStatus,
    ReleaseInput,
    SessionEvent,
    SessionEventKind,
    desktop_workflow_id,
)
from workflows.pool_workflow import PoolWorkflow


async def claims_answered_at_once(client: Client, task_queue: str, database_url: str) -> None:
    async with engine_worker(client, task_queue, database_url, FakeCloud()):
        pool = await start_pool(client, task_queue, spec(max_desktops=4, prestarted=3))
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        pool_id = pool.id.removeprefix("pool/")
        # The agent of desktop 1 reports a connect before the pool's assignment gets there.
        first = client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(f"{pool_id}.1"))
        await first.signal(DesktopWorkflow.session_event, SessionEvent(SessionEventKind.CONNECT))
        batch = ClaimBatchInput([ClaimRequest(user=u, request_id=f"{u}-1") for u in ("ann", "ben", "cat", "dan")])
        result = await pool.execute_update(PoolWorkflow.claim, batch)
        assert [o.status for o in result.outcomes].count(ClaimStatus.ASSIGNED) == 3, result
        ben = next(o for o in result.outcomes if o.user == "ben")
        desktop = DesktopRecord(id=ben.desktop_id or "", pool_id=pool_id, name="", user="ben")
        await release_when_taken(client, desktop, ReleaseInput(reason="recording"))
        await eventually(lambda: counts(pool), lambda c: c.assigned == 3 and c.waiting == 0 and c.provisioning == 0)
        await save_pool(client, pool_id, "claim_at_once")
        await pool.terminate("recorded")


async def pool_projects_with_activities(client: Client, task_queue: str, database_url: str) -> None:
    """The pool's projection as a regular activity (`pool-projects-with-a-regular-activity`): a pool
    that fills, serves a burst of claims, refills and is projected all along."""
    async with engine_worker(client, task_queue, database_url, FakeCloud()):
        pool = await start_pool(client, task_queue, spec(max_desktops=6, prestarted=3))
        await eventually(lambda: counts(pool), lambda c: c.ready == 3)
        batch = ClaimBatchInput([ClaimRequest(user=u, request_id=f"{u}-1") for u in ("eve", "fay", "gus")])
        await pool.execute_update(PoolWorkflow.claim, batch)
        await eventually(lambda: counts(pool), lambda c: c.ready == 3 and c.assigned == 3 and c.provisioning == 0)
        await asyncio.sleep(1.5)  # the last projection lands
        await save_pool(client, pool.id.removeprefix("pool/"), "pool_projection_activity")
        await pool.terminate("recorded")


async def pool_in_bounded_turns(client: Client, task_queue: str, database_url: str) -> None:
    """A pool larger than a turn (`pool-starts-at-most-50-desktops-a-turn`,
    `pool-sends-at-most-50-signals-a-turn`) whose runs end early (`pool-continues-as-new-every-2000-events`,
    here every 40) and hand on the signals still owed (`pool-carries-its-outbox-across-continue-as-new`):
    60 desktops built at once, then claimed in one batch."""
    size = 60
    async with engine_worker(client, task_queue, database_url, FakeCloud(), builds=size):
        pool_spec = spec(max_desktops=size, prestarted=size, max_concurrent_creations=size)
        pool = await start_pool(client, task_queue, pool_spec, events_per_run=40)
        await eventually(lambda: counts(pool), lambda c: c.ready == size, timeout_s=120)
        batch = ClaimBatchInput([ClaimRequest(user=f"u{n}", request_id=f"u{n}-1") for n in range(size)])
        await pool.execute_update(PoolWorkflow.claim, batch)
        await eventually(lambda: counts(pool), lambda c: c.assigned == size and not c.provisioning, timeout_s=60)
        await asyncio.sleep(3)  # the assignments delivered, the last projection landed
        await save(client, pool.id, "pool_bounded_turns.pool")  # the pool's runs (its desktops: nothing new)
        await pool.terminate("recorded")


SCENARIOS = {
    "claim_at_once": claims_answered_at_once,
    "pool_projection_activity": pool_projects_with_activities,
    "pool_bounded_turns": pool_in_bounded_turns,
}


async def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            for number, name in enumerate(names or list(SCENARIOS)):
                for old in HISTORIES.glob(f"{name}.*.json"):
                    old.unlink()
                queue = f"record-{uuid.uuid4().hex[:8]}"
                await SCENARIOS[name](env.client, queue, f"sqlite:///{tmp}/c{number}.db")
                for path in sorted(HISTORIES.glob(f"{name}.*.json")):
                    print(f"{path.stat().st_size:>8}  {path.relative_to(HISTORIES.parent.parent)}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
