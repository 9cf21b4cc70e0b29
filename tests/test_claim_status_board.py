"""api/claim_status_board.py: however many clients poll a pool's claims, one query is out at a time,
each caller gets its own claim's answer, and a failed query fails exactly the polls it carried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from api.claim_status_board import ClaimStatusBoard
from tests.engine import claim, counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.messages import ClaimOutcome, ClaimStatus, ClaimStatusesInput, ClaimStatusesResult
from workflows.pool_workflow import PoolWorkflow


class FakePool:
    """A pool workflow handle whose queries wait for the test's go-ahead and are counted."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.go = asyncio.Event()
        self.fail_next: BaseException | None = None

    async def query(self, _query: Any, request: ClaimStatusesInput) -> ClaimStatusesResult:
        self.asked.append(list(request.request_ids))
        await self.go.wait()
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        return ClaimStatusesResult([ClaimOutcome(r, f"user-{r}", ClaimStatus.WAITING) for r in request.request_ids])


class FakeClient:
    def __init__(self) -> None:
        self.pool = FakePool()

    def get_workflow_handle_for(self, _run: Any, _workflow_id: str) -> FakePool:
        return self.pool


async def test_fifty_polls_at_once_make_one_query_and_each_gets_its_own_answer() -> None:
    client = FakeClient()
    board = ClaimStatusBoard(client)  # type: ignore[arg-type]
    client.pool.go.set()
    answers = await asyncio.gather(*(board.status("p", f"r{n}") for n in range(50)))
    assert [a.request_id for a in answers] == [f"r{n}" for n in range(50)]
    assert [a.user for a in answers] == [f"user-r{n}" for n in range(50)]
    assert board.queries == 1 and sorted(client.pool.asked[0]) == sorted(f"r{n}" for n in range(50))


async def test_polls_arriving_while_a_query_is_out_wait_for_the_next_one_together() -> None:
    client = FakeClient()
    board = ClaimStatusBoard(client)  # type: ignore[arg-type]
    first = asyncio.create_task(board.status("p", "early"))
    await asyncio.sleep(0.01)  # the query for "early" is out
    later = [asyncio.create_task(board.status("p", f"late{n}")) for n in range(10)]
    same = asyncio.create_task(board.status("p", "late3"))  # the same claim polled twice
    await asyncio.sleep(0.01)
    assert client.pool.asked == [["early"]]
    client.pool.go.set()
    await asyncio.gather(first, *later, same)
    assert len(client.pool.asked) == 2 and sorted(client.pool.asked[1]) == sorted(f"late{n}" for n in range(10))
    assert same.result().request_id == "late3"


async def test_a_failed_query_fails_its_polls_and_the_next_poll_asks_again() -> None:
    client = FakeClient()
    board = ClaimStatusBoard(client)  # type: ignore[arg-type]
    client.pool.fail_next = RuntimeError("consistent query buffer is full")
    client.pool.go.set()
    results = await asyncio.gather(board.status("p", "a"), board.status("p", "b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert (await board.status("p", "a")).status is ClaimStatus.WAITING
    assert board.queries == 2


async def test_a_poll_that_goes_away_does_not_break_the_others() -> None:
    client = FakeClient()
    board = ClaimStatusBoard(client)  # type: ignore[arg-type]
    gone = asyncio.create_task(board.status("p", "gone"))
    stays = asyncio.create_task(board.status("p", "stays"))
    await asyncio.sleep(0.01)
    gone.cancel()
    client.pool.go.set()
    assert (await stays).request_id == "stays"
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_the_pool_answers_many_claims_in_one_query(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    async with engine_worker(dev_env.client, task_queue, sqlite_url, FakeCloud()):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=1, prestarted=1))
        assert (await eventually(lambda: counts(pool), lambda c: c.ready == 1)).ready == 1
        held = await claim(pool, "alice", "alice-1")
        waiting = await claim(pool, "bob", "bob-1")
        assert (held.status, waiting.status) == (ClaimStatus.ASSIGNED, ClaimStatus.WAITING)
        board = ClaimStatusBoard(dev_env.client)
        answers = await asyncio.gather(
            *(board.status(pool.id.removeprefix("pool/"), r) for r in ("alice-1", "bob-1", "x"))
        )
        assert [a.status for a in answers] == [ClaimStatus.ASSIGNED, ClaimStatus.WAITING, ClaimStatus.REJECTED]
        assert answers[0].desktop_id == held.desktop_id and answers[1].position == 1
        direct = await pool.query(PoolWorkflow.claim_statuses, ClaimStatusesInput(["bob-1"]))
        assert direct.outcomes == [answers[1]]
