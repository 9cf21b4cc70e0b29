"""Claim-status polls answered by one pool query at a time (docs/reliability.md, finding 7).

Every user waiting in line polls `GET /pools/{id}/claims/{request_id}`, and each poll used to be a
query of the one pool workflow. Temporal answers a workflow's queries one workflow task at a time
and keeps a short buffer of them; under a storm the buffer filled ("consistent query buffer is
full") and users got 503s until some gave up. Here the polls of one pool that arrive while its
query is out wait for the next one, which asks for all of their request ids at once
(`PoolWorkflow.claim_statuses`): one query in flight per pool per API process, however many poll.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from workflows.messages import ClaimOutcome, ClaimStatusesInput, pool_workflow_id
from workflows.pool_workflow import PoolWorkflow

# A query carries at most this many request ids; more wait for the next one.
MAX_IDS_PER_QUERY = 500


class ClaimStatusBoard:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._waiting: dict[str, dict[str, list[asyncio.Future[ClaimOutcome]]]] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}
        self.queries = 0  # pool queries sent (tests read it)

    async def status(self, pool_id: str, request_id: str) -> ClaimOutcome:
        answer: asyncio.Future[ClaimOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(pool_id, {}).setdefault(request_id, []).append(answer)
        if pool_id not in self._asking:
            self._asking[pool_id] = asyncio.create_task(self._ask(pool_id))
        return await answer

    async def _ask(self, pool_id: str) -> None:
        """Query for everyone waiting on this pool, again while more came meanwhile."""
        handle = self._client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
        try:
            while waiting := self._waiting.get(pool_id):
                batch = dict(list(waiting.items())[:MAX_IDS_PER_QUERY])
                for request_id in batch:
                    del waiting[request_id]
                if not waiting:
                    del self._waiting[pool_id]
                try:
                    self.queries += 1
                    result = await handle.query(PoolWorkflow.claim_statuses, ClaimStatusesInput(list(batch)))
                except Exception as err:  # noqa: BLE001 - every poll in the batch gets the error, mapped by the router
                    _settle(batch, error=err)
                else:
                    _settle(batch, outcomes={o.request_id: o for o in result.outcomes})
        finally:
            del self._asking[pool_id]


def _settle(
    batch: dict[str, list[asyncio.Future[ClaimOutcome]]],
    *,
    outcomes: dict[str, ClaimOutcome] | None = None,
    error: BaseException | None = None,
) -> None:
    for request_id, answers in batch.items():
        for answer in answers:
            if answer.done():  # the client went away
                continue
            if outcomes is not None:
                answer.set_result(outcomes[request_id])
            else:
                answer.set_exception(error or RuntimeError("no answer"))
