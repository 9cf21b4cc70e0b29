"""Record CapacityChangeWorkflow histories for tests/workflows/test_replay.py.

    .venv/bin/python -m tests.workflows.record_capacity_histories

Like record_histories.py (read test_replay.py's docstring first: never re-record to make a
non-determinism go away), for the change workflow's three endings: a sizing applied to a running
pool, a sizing the pool refuses (the run fails), and a pool that is gone (the run ends quietly).
Writes tests/histories/capacity_*.json, replacing only those. record_histories.py deletes every
history before it records; run this one after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid

from temporalio.client import Client, WorkflowFailureError

from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import HISTORIES, dev_server, save
from workflows.capacity_rules import CapacityChangeInput, CapacitySizing, capacity_schedule_id
from workflows.capacity_workflow import CapacityChangeWorkflow


async def change(client: Client, task_queue: str, pool_id: str, rule: str, sizing: CapacitySizing) -> str:
    workflow_id = f"{capacity_schedule_id(pool_id, rule)}-recorded"
    handle = await client.start_workflow(
        CapacityChangeWorkflow.run, CapacityChangeInput(pool_id, rule, sizing), id=workflow_id, task_queue=task_queue
    )
    with contextlib.suppress(WorkflowFailureError):  # the refused sizing: its failure is what gets recorded
        await handle.result()
    return workflow_id


async def capacity_changes(client: Client, task_queue: str, database_url: str) -> None:
    async with engine_worker(client, task_queue, database_url, FakeCloud()):
        pool = await start_pool(client, task_queue, spec(max_desktops=3, prestarted=1))
        await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        pool_id = pool.id.removeprefix("pool/")
        applied = await change(client, task_queue, pool_id, "Mornings", CapacitySizing(max_desktops=4, prestarted=2))
        await save(client, applied, "capacity_applied")
        refused = await change(client, task_queue, pool_id, "Evening", CapacitySizing(prestarted=9))
        await save(client, refused, "capacity_refused")
        gone = await change(client, task_queue, f"gone-{uuid.uuid4().hex[:6]}", "Nights", CapacitySizing(prestarted=1))
        await save(client, gone, "capacity_pool_gone")
        await pool.terminate("recorded")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    for old in HISTORIES.glob("capacity_*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            await capacity_changes(env.client, f"record-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp}/capacity.db")
    for path in sorted(HISTORIES.glob("capacity_*.json")):
        print(f"{path.stat().st_size:>8}  {path.relative_to(HISTORIES.parent.parent)}")


if __name__ == "__main__":
    asyncio.run(main())
