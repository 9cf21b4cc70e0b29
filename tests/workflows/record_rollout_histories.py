"""Record RolloutWorkflow histories (and the pool's, with its `recycle` Updates) for
tests/workflows/test_replay.py.

    .venv/bin/python -m tests.workflows.record_rollout_histories

Like record_histories.py (read test_replay.py's docstring first: never re-record to make a
non-determinism go away): a rollout whose canary fails (paused by itself), resumed and
completed, with a desktop in use marked to go once released; one cancelled while its canary
builds; and one resumed after the patch "resume-counts-failures-from-next-look". Writes
tests/histories/rollout_*.json, each scenario its own files; name scenarios to record only those
(histories from before a patch stay, they cover the old path):

    .venv/bin/python -m tests.workflows.record_rollout_histories resumed_counting_from_next_look

record_histories.py deletes every history before it records; run this one after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import HISTORIES, dev_server, save
from workflows.messages import UpdateSpecInput, pool_workflow_id
from workflows.pool_spec import PoolSpec, ReleasePolicy, Template
from workflows.pool_workflow import PoolWorkflow
from workflows.rollout_messages import (
    CanaryResult,
    RolloutCommand,
    RolloutProgress,
    RolloutProgressInput,
    RolloutStatus,
    rollout_workflow_id,
)
from workflows.rollout_workflow import RolloutInput, RolloutWorkflow

V2 = Template(image="win11-v2", flavor="vdi.medium")


async def progress(rollout: WorkflowHandle[Any, Any]) -> RolloutProgress:
    result: RolloutProgress = await rollout.query(RolloutWorkflow.progress, RolloutProgressInput())
    return result


async def new_rollout(
    client: Client, task_queue: str, pool: WorkflowHandle[Any, Any], pool_spec: PoolSpec, **options: Any
) -> WorkflowHandle[Any, Any]:
    update = UpdateSpecInput(dataclasses.replace(pool_spec, template=V2))
    version = (await pool.execute_update(PoolWorkflow.update_spec, update)).template_version
    pool_id = pool.id.removeprefix("pool/")
    return await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(pool_id, version, poll_s=0.2, **options),
        id=rollout_workflow_id(pool_id),
        task_queue=task_queue,
    )


async def paused_resumed_completed(client: Client, task_queue: str, database_url: str) -> None:
    cloud = FakeCloud()
    async with engine_worker(client, task_queue, database_url, cloud):
        pool_spec = spec(max_desktops=5, prestarted=2, release=ReleasePolicy.REVERT)
        pool = await start_pool(client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        await claim(pool, "alice")
        await eventually(lambda: counts(pool), lambda c: c.ready == 2 and c.assigned == 1)
        cloud.fail_all = True
        rollout = await new_rollout(client, task_queue, pool, pool_spec, recycle_assigned=True)
        await eventually(lambda: progress(rollout), lambda p: p.status is RolloutStatus.PAUSED, 30)
        cloud.fail_all = False
        await rollout.execute_update(RolloutWorkflow.resume, RolloutCommand("recorder"))
        final = await rollout.result()
        assert final.status is RolloutStatus.COMPLETED and final.deferred == 1, final
        await save(client, rollout.id, "rollout_paused_resumed")
        await pool.terminate("recorded")
        await save(client, pool_workflow_id(pool.id.removeprefix("pool/")), "rollout_recycled.pool")


async def cancelled_while_the_canary_builds(client: Client, task_queue: str, database_url: str) -> None:
    cloud = FakeCloud()
    async with engine_worker(client, task_queue, database_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2)
        pool = await start_pool(client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        cloud.build_polls = 10**9
        rollout = await new_rollout(client, task_queue, pool, pool_spec)
        await eventually(lambda: progress(rollout), lambda p: p.canary.result is CanaryResult.BUILDING, 30)
        await rollout.execute_update(RolloutWorkflow.cancel, RolloutCommand("recorder"))
        assert (await rollout.result()).status is RolloutStatus.CANCELLED
        await save(client, rollout.id, "rollout_cancelled")
        await pool.terminate("recorded")


async def resumed_counting_from_next_look(client: Client, task_queue: str, database_url: str) -> None:
    """Paused by its first failure (at most 0), resumed once the cloud builds again: completes."""
    cloud = FakeCloud()
    async with engine_worker(client, task_queue, database_url, cloud):
        pool_spec = spec(max_desktops=4, prestarted=2)
        pool = await start_pool(client, task_queue, pool_spec)
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
        cloud.fail_all = True
        rollout = await new_rollout(client, task_queue, pool, pool_spec, max_failures=0)
        await eventually(lambda: progress(rollout), lambda p: p.status is RolloutStatus.PAUSED, 30)
        cloud.fail_all = False
        await rollout.execute_update(RolloutWorkflow.resume, RolloutCommand("recorder"))
        final = await rollout.result()
        assert final.status is RolloutStatus.COMPLETED and final.failures >= 1, final
        await save(client, rollout.id, "rollout_resumed_from_next_look")
        await pool.terminate("recorded")


SCENARIOS = (paused_resumed_completed, cancelled_while_the_canary_builds, resumed_counting_from_next_look)


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    named = set(sys.argv[1:])
    chosen = [s for s in SCENARIOS if not named or s.__name__ in named]
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            for number, scenario in enumerate(chosen):
                await scenario(env.client, f"record-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp}/rollout{number}.db")
    for path in sorted(HISTORIES.glob("rollout_*.json")):
        print(f"{path.stat().st_size:>8}  {path.relative_to(HISTORIES.parent.parent)}")


if __name__ == "__main__":
    asyncio.run(main())
