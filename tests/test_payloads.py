"""The worker's data converter (worker/payloads.py) decodes a pool's carried state as the SDK would.

pydantic decodes PoolWorkflowInput (the state a pool hands its next run); the values must equal
the SDK converter's, for a state with every kind of field filled, and from JSON the SDK wrote.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from tests.engine import engine_worker
from tests.fakes import FakeCloud
from tests.unit.test_pool_state import T0, add_ready, claim, make_book
from worker.payloads import DATA_CONVERTER, DeskpoolPayloadConverter, FastStateJSONConverter
from workflows.messages import DesktopReport, RemovalMode, ReportKind
from workflows.planning import PoolRemoval
from workflows.pool_model import Outgoing, WaitingClaim
from workflows.pool_workflow import PoolWorkflowInput


def large_input(size: int = 300) -> PoolWorkflowInput:
    book = make_book(max_desktops=size, prestarted=size)
    for number in range(1, size + 1):
        add_ready(book, number, powered_on=number % 3 != 0)
    for n in range(size // 2):
        claim(book, f"u{n}", f"r{n}")
    for desktop in book.state.desktops[:10]:
        book.report(DesktopReport(desktop.desktop_id, ReportKind.RELEASED), T0)
    state = book.state
    state.queue.append(WaitingClaim("late", "r-late", T0 + timedelta(seconds=3)))
    state.outbox.append(Outgoing("p.1", "remove", reason="why", force=True))
    state.aliases["again"] = "r1"
    state.restrained_until, state.restrained_reason = T0, "3 failed"
    state.removal = PoolRemoval(RemovalMode.DETACH, "by admin", T0)
    return PoolWorkflowInput("p", state.spec, state, fault_retry_s=5.0, events_per_run=300)


async def test_the_carried_state_decodes_to_what_the_sdk_decodes() -> None:
    payloads = await DataConverter.default.encode([large_input()])
    (by_sdk,) = await DataConverter.default.decode(payloads, [PoolWorkflowInput])
    (fast,) = await DATA_CONVERTER.decode(payloads, [PoolWorkflowInput])
    assert fast == by_sdk == large_input()
    assert fast.state is not None and fast.state.removal is not None
    assert fast.state.removal.mode is RemovalMode.DETACH  # enums come back as enums, not strings
    assert fast.state.desktops[0].slot is by_sdk.state.desktops[0].slot  # type: ignore[union-attr]


async def test_other_types_keep_the_sdk_decoding() -> None:
    payloads = await DATA_CONVERTER.encode([{"a": 1}, "text"])
    assert await DATA_CONVERTER.decode(payloads, [dict, str]) == [{"a": 1}, "text"]
    converter = DeskpoolPayloadConverter()
    assert any(isinstance(c, FastStateJSONConverter) for c in converter.converters.values())


async def test_the_worker_decodes_with_it(dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str) -> None:
    """The worker swaps in its converter whatever client it is handed (here the test server's default)."""
    assert dev_env.client.data_converter.payload_converter_class is not DeskpoolPayloadConverter
    async with engine_worker(dev_env.client, task_queue, sqlite_url, FakeCloud()) as (worker, _):
        assert worker.client.data_converter.payload_converter_class is DeskpoolPayloadConverter
