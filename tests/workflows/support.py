"""Helpers shared by the workflow tests: a worker on a fake cloud, desktops started alone, polling.

A DesktopWorkflow runs fine without its pool: its reports to the missing pool
workflow are caught and logged, so each timer rule can be driven directly
with signals and read back with the `status` query.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from tests.engine import engine_worker
from tests.engine import spec as pool_spec
from tests.fakes import FakeCloud
from workflows import search_attributes
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    AssignInput,
    DesktopStatus,
    DesktopStatusInput,
    DesktopStatusResult,
    DesktopWorkflowInput,
    SessionEvent,
    SessionEventKind,
    desktop_workflow_id,
)
from workflows.pool_spec import PoolSpec, Timers

T = TypeVar("T")
DesktopHandle = WorkflowHandle[DesktopWorkflow, Any]
MINUTE = timedelta(minutes=1)


async def register_search_attributes(client: Client) -> None:
    """Declare deskpool's custom search attributes on a server that lacks them.

    The time-skipping test server starts without them and then fails every
    workflow task that upserts DeskpoolState/DeskpoolUser ("search attribute
    ... is not defined"); it does implement the operator call that adds them.
    """
    wanted = {key.name: key.indexed_value_type for key in search_attributes.ALL}
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace="default", search_attributes=wanted)
        )
    except RPCError as err:
        if err.status is not RPCStatusCode.ALREADY_EXISTS:
            raise


def desktop_spec(timers: Timers | None = None, **overrides: Any) -> PoolSpec:
    if timers is not None:
        overrides["timers"] = timers
    return pool_spec(**overrides)


@dataclass
class Rig:
    """One worker on one task queue with one fake cloud; remembers what it started."""

    client: Client
    task_queue: str
    cloud: FakeCloud
    pool_id: str = field(default_factory=lambda: f"lone{uuid.uuid4().hex[:8]}")
    started: list[DesktopHandle] = field(default_factory=list)
    _numbers: int = 0

    async def start_desktop(self, spec: PoolSpec, *, power_on: bool = True, name: str | None = None) -> DesktopHandle:
        self._numbers += 1
        number = self._numbers
        desktop_id = f"{self.pool_id}.{number}"
        handle = await self.client.start_workflow(
            DesktopWorkflow.run,
            DesktopWorkflowInput(
                pool_id=self.pool_id,
                desktop_id=desktop_id,
                name=name or spec.desktop_name(number),
                number=number,
                template_version=1,
                template=spec.template,
                spec=spec,
                power_on=power_on,
            ),
            id=desktop_workflow_id(desktop_id),
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        return handle

    def server(self, server_id: str | None) -> Any:
        assert server_id is not None, "the desktop never got a server"
        return self.cloud.servers.get(server_id)


@asynccontextmanager
async def rig(
    client: Client, task_queue: str, database_url: str, cloud: FakeCloud | None = None, terminate: bool = True
) -> AsyncIterator[Rig]:
    the_rig = Rig(client, task_queue, cloud or FakeCloud())
    async with engine_worker(client, task_queue, database_url, the_rig.cloud):
        try:
            yield the_rig
        finally:
            if not terminate:
                the_rig.started.clear()
            # Leave nothing running: a later test skipping time must not wake these.
            for handle in the_rig.started:
                with contextlib.suppress(RPCError):
                    if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                        await handle.terminate("test over")


async def status(handle: DesktopHandle) -> DesktopStatusResult:
    return await handle.query(DesktopWorkflow.status, DesktopStatusInput())


async def eventually(check: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """Poll until `accept(value)` (wall clock); return the last value for the assertion message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    value = await check()
    while not accept(value) and loop.time() < deadline:
        await asyncio.sleep(0.02)
        value = await check()
    return value


async def wait_status(handle: DesktopHandle, *wanted: DesktopStatus, timeout_s: float = 10.0) -> DesktopStatusResult:
    result = await eventually(lambda: status(handle), lambda r: r.snapshot.status in wanted, timeout_s)
    assert result.snapshot.status in wanted, f"expected {wanted}, got {result.snapshot.status}: {result.events}"
    return result


async def session(handle: DesktopHandle, *kinds: SessionEventKind) -> None:
    for kind in kinds:
        await handle.signal(DesktopWorkflow.session_event, SessionEvent(kind))


async def assign(handle: DesktopHandle, user: str = "alice", request_id: str | None = None) -> None:
    await handle.signal(DesktopWorkflow.assign, AssignInput(user, request_id or f"{user}-{uuid.uuid4().hex[:6]}"))


def event_time(result: DesktopStatusResult, text: str, last: bool = False) -> datetime:
    """When the desktop logged an event containing `text` (its event log is '<iso time> <status>: <event>')."""
    times = [datetime.fromisoformat(e.split(" ", 1)[0]) for e in result.events if text in e]
    assert times, f"no event with {text!r} in {result.events}"
    return times[-1] if last else times[0]


def statuses(results: Iterable[DesktopStatusResult]) -> list[DesktopStatus]:
    return [r.snapshot.status for r in results]
