"""A large pool's workflow tasks stay small (docs/reliability.md, finding 8).

Each signal the pool sends and each desktop it starts comes back as an event while its next
workflow task runs; the server fails a task that meets more than 100 buffered events, and the
worker then replays the whole run. So a turn of the pool's loop sends at most SIGNALS_PER_TURN
signals and starts at most STARTS_PER_TURN desktops, and a run continues as new after
`events_per_run` events, carrying what the desktops are still owed. Read from the pool's own
histories on the real dev server, with runs so short (40 events) that nearly every turn ends one.
"""

from __future__ import annotations

import json

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    ClaimBatchInput,
    ClaimRequest,
    ClaimStatus,
    DesktopStatusInput,
    desktop_workflow_id,
    pool_workflow_id,
)
from workflows.pool_workflow import SIGNALS_PER_TURN, STARTS_PER_TURN, PoolWorkflow

SIZE = 70  # more than a turn's worth of starts and of signals
RUN = 40  # events per run: a turn that sends 50 signals ends the run, 20 signals still owed


def commands_per_task(history: WorkflowHistory, kind: EventType.ValueType) -> list[int]:
    """How many events of `kind` each workflow task's completion recorded."""
    per_task: list[int] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            per_task.append(0)
        elif event.event_type == kind and per_task:
            per_task[-1] += 1
    return per_task


async def runs_of(env: WorkflowEnvironment, pool_id: str) -> list[WorkflowHistory]:
    workflow_id = pool_workflow_id(pool_id)
    run_ids = [w.run_id async for w in env.client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    run_ids.reverse()  # oldest first: visibility lists the newest first
    return [await env.client.get_workflow_handle(workflow_id, run_id=r).fetch_history() for r in run_ids]


async def test_a_pool_fills_and_serves_a_storm_in_bounded_turns_across_runs(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    async with engine_worker(dev_env.client, task_queue, sqlite_url, FakeCloud(), builds=SIZE):
        pool_spec = spec(max_desktops=SIZE, prestarted=SIZE, max_concurrent_creations=SIZE)
        pool = await start_pool(dev_env.client, task_queue, pool_spec, events_per_run=RUN)
        pool_id = pool.id.removeprefix("pool/")
        filled = await eventually(lambda: counts(pool), lambda c: c.ready == SIZE, timeout_s=120)
        assert filled.ready == SIZE

        batch = ClaimBatchInput([ClaimRequest(f"user{n}", f"r{n}") for n in range(SIZE)])
        result = await pool.execute_update(PoolWorkflow.claim, batch)
        assert [o.status for o in result.outcomes] == [ClaimStatus.ASSIGNED] * SIZE
        assert len({o.desktop_id for o in result.outcomes}) == SIZE

        async def users_taken() -> list[str | None]:
            found: list[str | None] = []
            for outcome in result.outcomes:
                desktop = dev_env.client.get_workflow_handle_for(
                    DesktopWorkflow.run, desktop_workflow_id(outcome.desktop_id or "")
                )
                found.append((await desktop.query(DesktopWorkflow.status, DesktopStatusInput())).snapshot.user)
            return found

        # Every assignment is delivered, however many turns it takes.
        taken = await eventually(users_taken, lambda users: users == [o.user for o in result.outcomes], timeout_s=60)
        assert taken == [f"user{n}" for n in range(SIZE)]

    runs = await runs_of(dev_env, pool_id)
    assert len(runs) >= 3, "the pool's runs should have continued as new past 40 events"
    carried = [len(outbox_handed_on(h)) for h in runs[:-1]]
    assert SIZE - SIGNALS_PER_TURN in carried, carried  # the 20 assignments the storm's turn left
    starts = [
        n for h in runs for n in commands_per_task(h, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    ]
    signals = [
        n for h in runs for n in commands_per_task(h, EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    ]
    assert sum(starts) == SIZE and max(starts) == STARTS_PER_TURN
    assert sum(signals) == SIZE and max(signals) == SIGNALS_PER_TURN
    # Continue-as-new came from the pool's own limit, well before Temporal suggests it (4,096).
    assert all(len(h.events) < RUN + 3 * (SIGNALS_PER_TURN + STARTS_PER_TURN) for h in runs)


def outbox_handed_on(history: WorkflowHistory) -> list[object]:
    """The outbox a run handed to the next in its continue-as-new input."""
    last = history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    (payload,) = last.workflow_execution_continued_as_new_event_attributes.input.payloads
    outbox: list[object] = json.loads(payload.data)["state"]["outbox"]
    return outbox
