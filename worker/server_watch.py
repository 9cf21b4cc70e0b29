"""The worker process starts afresh whenever the Temporal server goes away (docs/reliability.md, finding 5).

A worker that holds a pool in its workflow cache across a Temporal restart can record a pool history
that no worker can replay (temporalio 1.35.0): the server loses the sticky queues, completions sent
during the outage are retried and land after it, and the task that follows is handled from a cache
that the SDK does not reconcile (its Update acceptances recorded after the loop's commands, the
reverse of what a replay produces). The pool is then stuck for good. A worker that starts with an
empty cache replays every history cold, which is correct: C1 kills workers twenty times and keeps
every invariant.

Shutting the worker down gracefully is not enough: while the server is away the shutdown waits on
polls and completions that the SDK keeps retrying, and when the server returns those polls hand the
old worker more tasks from its cache (seen in C2). So on the first sign that the server is gone the
process replaces itself (`os.execv`, same pid, same arguments), as a crash and a restart would,
before the server is back; the new process waits for the server (`connect_temporal`). Activities in
flight are lost with it and retried by Temporal after their timeouts; they are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

log = logging.getLogger("deskpool.worker")
# Added to the arguments of the process that replaces a worker which lost the server.
RESTARTED_FLAG = "--after-server-loss"

# A busy server answers late or refuses for load; only a refused or broken connection means it is gone.
GONE = {RPCStatusCode.UNAVAILABLE}


@dataclass
class ServerWatch:
    """Asks the server for its system info every `interval_s`, without the client's retries."""

    client: Client
    interval_s: float = 0.25
    timeout_s: float = 5.0

    async def reachable(self) -> bool:
        try:
            await self.client.workflow_service.get_system_info(
                GetSystemInfoRequest(), retry=False, timeout=timedelta(seconds=self.timeout_s)
            )
        except RPCError as err:
            return err.status not in GONE
        return True

    async def until_lost(self) -> None:
        while True:
            if not await self.reachable():
                return
            await asyncio.sleep(self.interval_s)


async def serve_until_server_lost(worker: Worker, watch: ServerWatch, on_lost: Callable[[], None]) -> None:
    """Run `worker`; when the server is gone call `on_lost` at once, without shutting the worker down.

    A worker that ends by itself raises its error here."""
    running = asyncio.create_task(worker.run())
    lost = asyncio.create_task(watch.until_lost())
    await asyncio.wait({running, lost}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        lost.cancel()
        running.result()
        return
    on_lost()


def restart_process() -> None:
    """Replace this process with a fresh worker: same pid, arguments and environment."""
    log.warning("Temporal server unreachable: the worker restarts with an empty workflow cache")
    logging.shutdown()
    arguments = [a for a in sys.orig_argv[1:] if a != RESTARTED_FLAG]
    os.execv(sys.executable, [sys.executable, *arguments, RESTARTED_FLAG])
