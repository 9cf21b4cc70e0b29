"""Asking the pool who holds a desktop: a pool that does not exist holds nothing, but a pool too
busy to answer is no answer at all (503 to the caller, never a 404 for their own desktop)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.desktop_access import holder_in_pool
from workflows.messages import DesktopHolderResult


class PoolAnswering:
    def __init__(self, answer: DesktopHolderResult | RPCError) -> None:
        self.answer = answer

    def get_workflow_handle_for(self, *_: Any) -> PoolAnswering:
        return self

    async def query(self, *_: Any) -> DesktopHolderResult:
        if isinstance(self.answer, RPCError):
            raise self.answer
        return self.answer


async def test_the_pool_names_the_holder() -> None:
    assert await holder_in_pool(PoolAnswering(DesktopHolderResult("ann")), "p", "p.1") == "ann"  # type: ignore[arg-type]


async def test_a_missing_pool_holds_nothing() -> None:
    gone = RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
    assert await holder_in_pool(PoolAnswering(gone), "p", "p.1") is None  # type: ignore[arg-type]


async def test_a_pool_too_busy_to_answer_is_not_a_no() -> None:
    busy = RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
    with pytest.raises(RPCError):
        await holder_in_pool(PoolAnswering(busy), "p", "p.1")  # type: ignore[arg-type]
