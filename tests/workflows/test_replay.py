"""Determinism guard: every recorded history in tests/histories/ must replay on today's code.

A running pool or desktop workflow is replayed from its history whenever a
worker picks it up again (a restart, a deploy, an evicted cache). If the
workflow code now makes different decisions for the same events, the run is
stuck with a non-determinism error, in production, for every pool at once.
This test catches that before it ships: it replays each recorded PoolWorkflow
and DesktopWorkflow history with the current code and fails on any mismatch.

The histories come from tests/workflows/record_histories.py (representative
scenarios: a pool filled, claimed, waited on, released and serving the line;
desktops through retention after inactivity, first-connect timeout, revert,
manual return, the warm tier and a failed build; runs ending in and starting
from continue-as-new).

When this test fails:
- Never re-record to make it pass. A failure means running workflows would
  break: make the change replay-safe instead, by guarding the new behaviour
  with `workflow.patched("<change-id>")` (old histories take the old path) or
  by shipping it under a new workflow type.
- Re-record (`.venv/bin/python -m tests.workflows.record_histories`) only
  after such a versioned change is in, to add histories that exercise the new
  path; keep the old files that still replay whenever they cover something the
  new ones do not, and delete a `workflow.deprecate_patch` only once no run
  started before the patch can still exist.
- A history-format change or a new scenario is also a reason to re-record,
  once the old histories have been shown to replay on the new code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker.main import WORKFLOW_RUNNER, WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FILES = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    name: str = started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
    return name


def replayer() -> Replayer:
    return Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)


def test_the_recorded_histories_cover_both_workflows_and_continue_as_new() -> None:
    """An empty or one-sided directory would make the replay test pass vacuously."""
    types = [workflow_type(p) for p in FILES]
    assert types.count("PoolWorkflow") >= 2 and types.count("DesktopWorkflow") >= 6, types
    last_events = {json.loads(p.read_text())["events"][-1]["eventType"] for p in FILES}
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in last_events


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_history_replays_deterministically(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure!r}"


async def test_a_changed_decision_is_caught() -> None:
    """The guard itself can fail: a history whose first activity is not what the code schedules."""
    path = HISTORIES / "desktop_failed_build.json"
    history = json.loads(path.read_text())
    scheduled = next(
        e["activityTaskScheduledEventAttributes"]
        for e in history["events"]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    )
    assert scheduled["activityType"]["name"] == "provision_server"
    scheduled["activityType"]["name"] = "delete_server"
    tampered = WorkflowHistory.from_json("tampered", json.dumps(history))
    result = await replayer().replay_workflow(tampered, raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in repr(result.replay_failure).lower(), result.replay_failure
