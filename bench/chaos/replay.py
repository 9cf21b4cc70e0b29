"""Replay a workflow history kept by a chaos run on today's code: `python -m bench.chaos.replay FILE`.

bench/chaos/histories/c2_pool_nondeterminism.json.gz is the pool workflow of C2 at full size
(docs/reliability.md, finding 5): the worker that made it cannot replay it after Temporal's restart.
c2_pool_update_after_child_starts.json.gz is the same finding on revision 5b6502e: claim Updates
accepted after the loop's child starts in one task, accepted before them on replay.
Exit 0 when it replays, 1 with the failure when it does not.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker.main import WORKFLOW_RUNNER, WORKFLOWS


def load(path: Path) -> WorkflowHistory:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
    return WorkflowHistory.from_json(path.name.split(".")[0], text)


async def replay(history: WorkflowHistory) -> BaseException | None:
    result = await Replayer(workflows=WORKFLOWS, workflow_runner=WORKFLOW_RUNNER).replay_workflow(
        history, raise_on_replay_failure=False
    )
    return result.replay_failure


def main() -> int:
    failures = 0
    for name in sys.argv[1:]:
        failure = asyncio.run(replay(load(Path(name))))
        print(f"{name}: {'replays' if failure is None else f'does not replay: {failure!r}'[:600]}")
        failures += failure is not None
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
