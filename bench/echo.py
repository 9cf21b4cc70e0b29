"""The baseline for B2: a bare Temporal Update round trip, to a workflow that does nothing else.

The bench process runs this workflow on a task queue of its own, against the same
Temporal server as deskpool, so the API's claim can be compared with the least any
Update costs on the same machine at the same moment.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


@dataclass
class EchoInput:
    value: str = ""


@dataclass
class EchoResult:
    value: str = ""


@workflow.defn
class EchoWorkflow:
    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self, _: EchoInput) -> EchoResult:
        await workflow.wait_condition(lambda: self.finished)
        return EchoResult()

    @workflow.update
    def echo(self, request: EchoInput) -> EchoResult:
        return EchoResult(request.value)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


async def update_round_trips(address: str, count: int) -> list[float]:
    """Seconds for each of `count` Updates sent one after the other."""
    client = await Client.connect(address)
    queue = f"bench-echo-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[EchoWorkflow]):
        handle = await client.start_workflow(EchoWorkflow.run, EchoInput(), id=queue, task_queue=queue)
        await handle.execute_update(EchoWorkflow.echo, EchoInput("warm-up"))
        seconds = []
        for n in range(count):
            started = time.perf_counter()
            await handle.execute_update(EchoWorkflow.echo, EchoInput(str(n)))
            seconds.append(time.perf_counter() - started)
        await handle.signal(EchoWorkflow.finish)
        await handle.result()
    return seconds
