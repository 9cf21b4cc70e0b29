"""Admission control and batching in front of each pool workflow.

Measured on the 2-core dev server: a bare Update round trip is ~9 ms, one pool
serves ~300-370 single claims/s but ~1,200/s in batches of 50, and the server
rejects more than 10 in-flight Updates per workflow. So claims for a pool are
gathered into batches, at most `max_in_flight` batches are outstanding per pool
from this process, and past `max_pending` waiting claims the caller gets a 503
with Retry-After instead of a timeout.

Each claim is timed from its arrival here to its answer (or refusal) and
handed to an optional observer, `(pool id, outcome, seconds)`: the API's
metrics (api/metrics.py). Outcomes are the pool's `ClaimStatus` values and
`overloaded`, `rejected` (the Update refused), `not_found` and `error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.messages import ClaimBatchInput, ClaimOutcome, ClaimRequest, pool_workflow_id
from workflows.pool_workflow import MAX_CLAIMS_PER_BATCH, PoolWorkflow

log = logging.getLogger("deskpool.api.claims")

# Errors around a continue-as-new or a server restart are brief; retry them.
TRANSIENT = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.DEADLINE_EXCEEDED)

# (pool id, outcome, seconds): told once per claim, whatever its end.
ClaimObserver = Callable[[str, str, float], None]


class Overloaded(Exception):
    """The pool's line in this process is full: answer 503 with Retry-After."""


class PoolNotFound(Exception):
    pass


class ClaimRejected(Exception):
    pass


@dataclass
class _Pending:
    request: ClaimRequest
    future: asyncio.Future[ClaimOutcome]


@dataclass
class _PoolLane:
    pending: list[_Pending] = field(default_factory=list)
    in_flight: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class ClaimGateway:
    def __init__(
        self,
        client: Client,
        *,
        max_in_flight: int = 4,
        max_pending: int = 5000,
        batch_size: int = 50,
        attempts: int = 5,
        observer: ClaimObserver | None = None,
    ) -> None:
        self._client = client
        self._observer = observer
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending
        self._batch_size = min(batch_size, MAX_CLAIMS_PER_BATCH)
        self._attempts = attempts
        self._lanes: dict[str, _PoolLane] = {}

    async def claim(self, pool_id: str, request: ClaimRequest) -> ClaimOutcome:
        if self._observer is None:
            return await self._claim(pool_id, request)
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await self._claim(pool_id, request)
            outcome = str(result.status)
            return result
        except Overloaded:
            outcome = "overloaded"
            raise
        except ClaimRejected:
            outcome = "rejected"
            raise
        except PoolNotFound:
            outcome = "not_found"
            raise
        except asyncio.CancelledError:
            outcome = ""  # the caller went away: no answer to measure
            raise
        finally:
            if outcome:
                self._observe(pool_id, outcome, time.perf_counter() - start)

    def _observe(self, pool_id: str, outcome: str, seconds: float) -> None:
        assert self._observer is not None
        try:
            self._observer(pool_id, outcome, seconds)
        except Exception:  # a metrics fault must never fail a claim
            log.exception("claim observer failed")

    async def _claim(self, pool_id: str, request: ClaimRequest) -> ClaimOutcome:
        lane = self._lanes.setdefault(pool_id, _PoolLane())
        if len(lane.pending) >= self._max_pending:
            raise Overloaded(f"{len(lane.pending)} claims already waiting to reach pool {pool_id}")
        future: asyncio.Future[ClaimOutcome] = asyncio.get_running_loop().create_future()
        lane.pending.append(_Pending(request, future))
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._drain(pool_id, lane))
        lane.wakeup.set()
        return await future

    def pending(self, pool_id: str) -> int:
        lane = self._lanes.get(pool_id)
        return len(lane.pending) if lane else 0

    async def close(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()

    async def _drain(self, pool_id: str, lane: _PoolLane) -> None:
        """Send batches while claims wait, never more than max_in_flight at once."""
        sends: set[asyncio.Task[None]] = set()
        while lane.pending or sends:
            if lane.pending and lane.in_flight < self._max_in_flight:
                batch, lane.pending = lane.pending[: self._batch_size], lane.pending[self._batch_size :]
                lane.in_flight += 1
                task = asyncio.create_task(self._send(pool_id, lane, batch))
                sends.add(task)
                task.add_done_callback(sends.discard)
                continue
            lane.wakeup.clear()
            await lane.wakeup.wait()

    async def _send(self, pool_id: str, lane: _PoolLane, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._update(pool_id, [p.request for p in batch])
            for pending, outcome in zip(batch, outcomes, strict=True):
                if not pending.future.done():
                    pending.future.set_result(outcome)
        except Exception as exc:  # noqa: BLE001 - every caller in the batch gets the reason
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        finally:
            lane.in_flight -= 1
            lane.wakeup.set()

    async def _update(self, pool_id: str, requests: list[ClaimRequest]) -> list[ClaimOutcome]:
        handle = self._client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
        delay = 0.05
        for attempt in range(1, self._attempts + 1):
            try:
                result = await handle.execute_update(PoolWorkflow.claim, ClaimBatchInput(requests))
                return result.outcomes
            except WorkflowUpdateFailedError as err:
                raise ClaimRejected(str(err.cause or err)) from err
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:
                    raise PoolNotFound(pool_id) from err
                if err.status not in TRANSIENT or attempt == self._attempts:
                    raise
                log.info("claim batch for %s: %s, retrying", pool_id, err.status.name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")
