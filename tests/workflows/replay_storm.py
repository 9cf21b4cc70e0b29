"""Storm a pool with claims, releases and agent reports at once, then replay every history it made.

    .venv/bin/python -m tests.workflows.replay_storm [rounds] [--keep DIR] [--cache N (default 0)]
        [--reset-sticky [--no-query]]

Finding 5 of docs/reliability.md: a pool history recorded live did not always replay (a claim
Update and the desktops' reports sharing one workflow task). This probe makes many such tasks on
purpose (small claim batches, Releases and agent connects fired together) and replays the pool's
and the desktops' histories with the worker's own Replayer. It prints each failure and keeps the
failing histories (--keep) to become fixtures of test_replay.py.

--reset-sticky keeps the pool cached (a cache of 100) and, while it storms, keeps taking the pool's
sticky queue away (ResetStickyTaskQueue) and asking for claim status (queries): the worker then
gets the pool's tasks through the normal queue with the whole history, as after a Temporal
restart, the condition under which C2 recorded the histories that do not replay. `--no-query`
takes the sticky queue away without the queries (a query on a pool whose sticky queue is gone is
answered by a full-history task on the normal queue).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError
from temporalio.worker import Replayer

from activities.store.models import DesktopRecord
from api.desktop_access import release_when_taken
from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.workflows.record_histories import dev_server
from worker.main import WORKFLOW_RUNNER, WORKFLOWS
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimBatchInput,
    ClaimRequest,
    ClaimStatus,
    ClaimStatusInput,
    ReleaseInput,
    SessionEvent,
    SessionEventKind,
    desktop_workflow_id,
    pool_workflow_id,
)
from workflows.pool_workflow import PoolWorkflow


async def user_session(client: Client, pool, pool_id: str, user: str, rng: random.Random) -> None:
    """Connect, report the agent's connect, stay a moment, release."""
    request = ClaimRequest(user=user, request_id=f"{user}-{uuid.uuid4().hex[:6]}")
    result = await pool.execute_update(PoolWorkflow.claim, ClaimBatchInput([request]))
    outcome = result.outcomes[0]
    if outcome.status is not ClaimStatus.ASSIGNED or not outcome.desktop_id:
        return
    desktop = client.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(outcome.desktop_id))
    await desktop.signal(DesktopWorkflow.session_event, SessionEvent(SessionEventKind.CONNECT))
    await asyncio.sleep(rng.uniform(0.0, 0.3))
    record = DesktopRecord(id=outcome.desktop_id, pool_id=pool_id, name="", user=user)
    try:
        await release_when_taken(client, record, ReleaseInput(reason="storm"))
    except Exception as err:  # noqa: BLE001 - a probe: a refused release is not what it looks for
        print(f"  release of {outcome.desktop_id} refused: {err}")


COMMAND_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_TIMER_CANCELED,
}


async def take_sticky_away(client: Client, pool, rng: random.Random, stop: asyncio.Event, query: bool = True) -> None:
    """As after a Temporal restart: the pool's next tasks go to the normal queue, whole history."""
    request = ResetStickyTaskQueueRequest(namespace=client.namespace, execution=WorkflowExecution(workflow_id=pool.id))
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.0, 0.15))
        await client.workflow_service.reset_sticky_task_queue(request)
        if not query:
            continue
        try:
            await pool.query(PoolWorkflow.claim_status, ClaimStatusInput(request_id="probe"))
        except Exception as err:  # noqa: BLE001 - a probe: a failed query is printed, not fatal
            print(f"  query failed: {err}")


async def storm(
    client: Client,
    task_queue: str,
    database_url: str,
    rounds: int,
    seed: int,
    cached: int,
    reset_sticky: bool = False,
    query: bool = True,
) -> str:
    rng = random.Random(seed)
    # With no workflow cache every task is handled cold, as after a worker restart: the case of
    # temporalio/sdk-python#1591, where a task handled cold recorded a history that did not replay.
    async with engine_worker(client, task_queue, database_url, FakeCloud(), cached_workflows=cached):
        pool = await start_pool(client, task_queue, spec(max_desktops=12, prestarted=8))
        pool_id = pool.id.removeprefix("pool/")
        await eventually(lambda: counts(pool), lambda c: c.ready == 8)
        stop = asyncio.Event()
        resets = [
            asyncio.create_task(take_sticky_away(client, pool, rng, stop, query))
            for _ in range(2 if reset_sticky else 0)
        ]
        for round_number in range(rounds):
            users = [f"u{round_number}-{n}" for n in range(rng.randint(4, 10))]
            # Taking the sticky queue away is meant to break things: there a failed session is
            # printed and the storm goes on; otherwise it fails the run.
            results = await asyncio.gather(
                *(user_session(client, pool, pool_id, u, rng) for u in users), return_exceptions=reset_sticky
            )
            for err in (r for r in results if isinstance(r, BaseException)):
                print(f"  session failed: {err!r}")
        stop.set()
        await asyncio.gather(*resets)
        await eventually(lambda: counts(pool), lambda c: c.assigned == 0 and c.provisioning == 0, timeout_s=30)
        return pool_id


async def histories(client: Client, pool_id: str) -> list[WorkflowHistory]:
    found = [await client.get_workflow_handle(pool_workflow_id(pool_id)).fetch_history()]
    for number in range(1, 200):
        try:
            found.append(await client.get_workflow_handle(desktop_workflow_id(f"{pool_id}.{number}")).fetch_history())
        except RPCError:
            if number > 20:
                break
    return found


def updates_after_commands(history: WorkflowHistory) -> list[int]:
    """Completed tasks whose Update acceptances come after another command (finding 5's shape):
    the SDK accepts the Updates of an activation before the loop runs, so on replay they come first."""
    found, events = [], list(history.events)
    for i, event in enumerate(events):
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            continue
        kinds = []
        for later in events[i + 1 :]:
            if later.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                break
            if later.event_type in COMMAND_EVENTS:
                kinds.append(later.event_type)
        accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        if accepted in kinds and kinds[0] != accepted:
            found.append(event.event_id)
    return found


def keep_history(folder: Path, history: WorkflowHistory) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{history.workflow_id.replace('/', '_')}.json").write_text(history.to_json() + "\n")


async def main(rounds: int, keep: Path | None, cached: int, reset_sticky: bool = False, query: bool = True) -> int:
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            queue = f"storm-{uuid.uuid4().hex[:8]}"
            pool_id = await storm(env.client, queue, f"sqlite:///{tmp}/s.db", rounds, 1, cached, reset_sticky, query)
            found = await histories(env.client, pool_id)
            for history in found:
                inverted = updates_after_commands(history)
                if inverted:
                    print(f"{history.workflow_id}: Updates accepted after other commands in tasks {inverted}")
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                if result.replay_failure is not None:
                    failures += 1
                    print(f"FAILED {history.workflow_id}: {result.replay_failure}")
                    if keep is not None:
                        keep_history(keep, history)
            print(f"{len(found)} histories replayed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    keep_dir = Path(args[args.index("--keep") + 1]) if "--keep" in args else None
    reset = "--reset-sticky" in args
    cache = int(args[args.index("--cache") + 1]) if "--cache" in args else (100 if reset else 0)
    numbers = [a for i, a in enumerate(args) if a.isdigit() and (i == 0 or args[i - 1] != "--cache")]
    query = "--no-query" not in args
    sys.exit(asyncio.run(main(int(numbers[0]) if numbers else 20, keep_dir, cache, reset, query)))
