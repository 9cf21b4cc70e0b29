"""Record the histories of a pool whose cloud is down at first, for tests/workflows/test_replay.py.

    .venv/bin/python -m tests.workflows.record_cloud_trouble_histories

Like record_histories.py (read test_replay.py's docstring first: never re-record to make a
non-determinism go away): the desktops' first creates fail on 503s, they tell the pool
(`desktop-reports-cloud-trouble`), the pool holds its creates (`pool-holds-creates-on-cloud-trouble`),
the cloud comes back and both desktops come up. Writes tests/histories/cloud_trouble.*.json,
replacing only those; run it after record_histories.py, which deletes every history first.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid

from temporalio.client import Client

from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import HISTORIES, dev_server, save_pool
from workflows.messages import PoolStatusInput
from workflows.pool_workflow import PoolWorkflow


async def cloud_down_then_back(client: Client, task_queue: str, database_url: str) -> None:
    cloud = FakeCloud(unavailable=True)
    async with engine_worker(client, task_queue, database_url, cloud):
        pool = await start_pool(client, task_queue, spec(max_desktops=3, prestarted=2))
        reason = await eventually(
            lambda: pool.query(PoolWorkflow.status, PoolStatusInput()),
            lambda s: s.restrained_reason.startswith("cloud unavailable"),
            timeout_s=30,
        )
        assert reason.restrained_reason, "the pool never showed the outage"
        cloud.unavailable = False
        assert (await eventually(lambda: counts(pool), lambda c: c.ready == 2, timeout_s=60)).ready == 2
        await save_pool(client, pool.id.removeprefix("pool/"), "cloud_trouble")
        await pool.terminate("recorded")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    for old in HISTORIES.glob("cloud_trouble.*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            await cloud_down_then_back(env.client, f"record-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp}/trouble.db")
    for path in sorted(HISTORIES.glob("cloud_trouble.*.json")):
        print(f"{path.stat().st_size:>8}  {path.relative_to(HISTORIES.parent.parent)}")


if __name__ == "__main__":
    asyncio.run(main())
