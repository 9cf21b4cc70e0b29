"""Fill one pool of N desktops on a fake cloud, claim them all, and time the pool's workflow tasks.

    .venv/bin/python -m tests.workflows.scale_probe [N (default 1000)] [--keep FILE] [--profile]

Finding 8 of docs/reliability.md: at 1,000 desktops the pool's workflow tasks took seconds each and
a replay crossed the SDK's 2 s deadlock limit. This probe prints, from the pool's own history, how
long its workflow tasks took (started -> completed), the largest task, the events per run, and
with --profile replays the history under cProfile to show where the workflow's time goes.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import dev_server
from worker.main import WORKFLOW_RUNNER, WORKFLOWS
from workflows.messages import ClaimBatchInput, ClaimRequest, ClaimStatus, pool_workflow_id
from workflows.pool_workflow import MAX_CLAIMS_PER_BATCH, PoolWorkflow


def task_seconds(history: WorkflowHistory) -> list[tuple[float, int]]:
    """(seconds from WorkflowTaskStarted to its completion or failure, event id of the start)."""
    started: dict[int, tuple[float, int]] = {}
    spans = []
    ends = (EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)  # fmt: skip
    for event in history.events:
        at = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started[event.event_id] = (at, event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed = event.workflow_task_failed_event_attributes
            print(f"  task failed at event {event.event_id}: {WorkflowTaskFailedCause.Name(failed.cause)}")
        if event.event_type in ends:
            attrs = (event.workflow_task_completed_event_attributes
                     if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                     else event.workflow_task_failed_event_attributes
                     if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                     else None)  # fmt: skip
            start_id = attrs.started_event_id if attrs is not None else max(started, default=0)
            if start_id in started:
                begin, event_id = started.pop(start_id)
                spans.append((at - begin, event_id))
    return spans


async def fill_and_claim(client: Client, queue: str, database_url: str, size: int) -> tuple[str, float]:
    async with engine_worker(client, queue, database_url, FakeCloud(), builds=200):
        digits, ceiling = max(3, len(str(size))), max(1000, size)
        pool_spec = spec(max_desktops=size, prestarted=size, naming_digits=digits, max_desktops_ceiling=ceiling)
        pool = await start_pool(client, queue, pool_spec)
        began = time.monotonic()
        filled = await eventually(lambda: counts(pool), lambda c: c.ready == size, timeout_s=600)
        print(f"fill: {filled.ready}/{size} ready in {time.monotonic() - began:.1f} s")
        requests = [ClaimRequest(f"user{n}", f"r{n}-{uuid.uuid4().hex[:6]}") for n in range(size)]
        batches = [requests[i : i + MAX_CLAIMS_PER_BATCH] for i in range(0, size, MAX_CLAIMS_PER_BATCH)]
        began = time.monotonic()
        results = await asyncio.gather(*(pool.execute_update(PoolWorkflow.claim, ClaimBatchInput(b)) for b in batches))
        claimed = time.monotonic() - began
        assigned = sum(o.status is ClaimStatus.ASSIGNED for r in results for o in r.outcomes)
        print(f"claims: {assigned}/{size} assigned in {claimed:.2f} s")
        await asyncio.sleep(5)
        return pool.id.removeprefix("pool/"), claimed


def report(history: WorkflowHistory) -> None:
    spans = sorted(task_seconds(history), reverse=True)
    total = sum(s for s, _ in spans)
    print(f"pool history: {len(history.events)} events, {len(spans)} workflow tasks, {total:.1f} s in tasks")
    for seconds, event_id in spans[:5]:
        before = [e for e in history.events if event_id - 12 <= e.event_id < event_id]
        kinds = sorted({EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in before})
        print(f"  task at event {event_id}: {seconds * 1000:.0f} ms (after {', '.join(kinds)})")


async def main(size: int, keep: Path | None, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            queue = f"scale-{uuid.uuid4().hex[:8]}"
            pool_id, _ = await fill_and_claim(env.client, queue, f"sqlite:///{tmp}/s.db", size)
            workflow_id = pool_workflow_id(pool_id)
            runs = [w.run_id async for w in env.client.list_workflows(f'WorkflowId = "{workflow_id}"')]
            print(f"runs of the pool: {len(runs)}")
            for number, run_id in enumerate(reversed(runs), start=1):
                history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
                report(history)
                if keep is not None:
                    keep.with_suffix(f".run{number}.json").write_text(history.to_json() + "\n")
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)
    profiler = cProfile.Profile() if profile else None
    began = time.monotonic()
    if profiler:
        profiler.enable()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if profiler:
        profiler.disable()
    print(f"replay: {time.monotonic() - began:.2f} s, failure: {result.replay_failure}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    args = sys.argv[1:]
    keep_file = Path(args[args.index("--keep") + 1]) if "--keep" in args else None
    numbers = [a for a in args if a.isdigit()]
    asyncio.run(main(int(numbers[0]) if numbers else 1000, keep_file, "--profile" in args))
