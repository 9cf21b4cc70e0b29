"""Opening a Temporal client from settings, in one place for every process."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.runtime import Runtime

from activities.settings import SharedSettings

log = logging.getLogger("deskpool.temporal")


async def connect_temporal(
    settings: SharedSettings,
    *,
    lazy: bool = False,
    wait_s: float = 120.0,
    runtime: Runtime | None = None,
    max_delay_s: float = 5.0,
) -> Client:
    """Connect, waiting up to `wait_s` for a server that is still starting.

    `lazy=True` (the API) returns at once and connects on first use, so the
    API answers /readyz with the reason while Temporal is down. `runtime` is the
    SDK runtime of the client and of workers on it (the worker's exports the
    SDK's metrics); the SDK's default one when None. `max_delay_s` caps the wait between tries.
    """
    if lazy:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, lazy=True, runtime=runtime
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.2
    while True:
        try:
            return await Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace, runtime=runtime
            )
        except RuntimeError as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("Temporal at %s not reachable yet (%s); retrying", settings.temporal_address, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
