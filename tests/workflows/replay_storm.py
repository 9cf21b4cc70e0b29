"""Storm a pool with claims, releases and agent reports at once, then replay every history it made.

    .venv/bin/python -m tests.workflows.replay_storm [rounds] [--keep DIR] [--cache N (default 0)]

Finding 5 of docs/reliability.md: a pool history recorded live did not always replay (a claim
Update and the desktops' reports sharing one workflow task). This probe makes many such tasks on
purpose (small claim batches, Releases and agent connects fired together) and replays the pool's
and the desktops' histories with the worker's own Replayer. It prints each failure and keeps the
failing histories (--keep) to become fixtures of test_replay.py.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import uuid
from pathlib import Path

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


async def storm(client: Client, task_queue: str, database_url: str, rounds: int, seed: int, cached: int) -> str:
    rng = random.Random(seed)
    # With no workflow cache every task is handled cold, as after a worker restart: the case of
    # temporalio/sdk-python#1591, where a task handled cold recorded a history that did not replay.
    async with engine_worker(client, task_queue, database_url, FakeCloud(), cached_workflows=cached):
        pool = await start_pool(client, task_queue, spec(max_desktops=12, prestarted=8))
        pool_id = pool.id.removeprefix("pool/")
        await eventually(lambda: counts(pool), lambda c: c.ready == 8)
        for round_number in range(rounds):
            users = [f"u{round_number}-{n}" for n in range(rng.randint(4, 10))]
            await asyncio.gather(*(user_session(client, pool, pool_id, u, rng) for u in users))
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


def keep_history(folder: Path, history: WorkflowHistory) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{history.workflow_id.replace('/', '_')}.json").write_text(history.to_json() + "\n")


async def main(rounds: int, keep: Path | None, cached: int) -> int:
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server() as env:
            queue = f"storm-{uuid.uuid4().hex[:8]}"
            pool_id = await storm(env.client, queue, f"sqlite:///{tmp}/s.db", rounds, 1, cached)
            found = await histories(env.client, pool_id)
            for history in found:
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
    cache = int(args[args.index("--cache") + 1]) if "--cache" in args else 0
    numbers = [a for i, a in enumerate(args) if a.isdigit() and (i == 0 or args[i - 1] != "--cache")]
    sys.exit(asyncio.run(main(int(numbers[0]) if numbers else 20, keep_dir, cache)))
