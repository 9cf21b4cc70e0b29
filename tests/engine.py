"""Helpers to run the engine's real workflows and activities against a fake cloud."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.cloud import CloudActivities
from activities.cloud_limits import CloudLimits
from activities.server_watch import ServerWatches
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from tests.fakes import FakeCloud
from worker.main import build_worker
from worker.settings import WorkerSettings
from workflows.messages import (
    ClaimBatchInput,
    ClaimOutcome,
    ClaimRequest,
    PoolCounts,
    PoolStatusInput,
    pool_workflow_id,
)
from workflows.pool_spec import PoolSpec, Template
from workflows.pool_workflow import EVENTS_PER_RUN, PoolWorkflow, PoolWorkflowInput

T = TypeVar("T")


def spec(**overrides: object) -> PoolSpec:
    fields: dict[str, object] = {
        "name": "Test pool",
        "template": Template(image="win11-golden", flavor="vdi.medium"),
        "naming_mask": "vd-",
        "max_desktops": 5,
        "prestarted": 2,
    }
    fields.update(overrides)
    return PoolSpec(**fields)  # type: ignore[arg-type]


@asynccontextmanager
async def engine_worker(
    client: Client,
    task_queue: str,
    database_url: str,
    cloud: FakeCloud,
    builds: int = 30,
    cached_workflows: int = 1000,
) -> AsyncIterator[tuple[Worker, Engine]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    settings = WorkerSettings(task_queue=task_queue, database_url=database_url, max_cached_workflows=cached_workflows)
    # Fast polls: the fake cloud counts reads, not seconds.
    cloud_activities = CloudActivities(
        cloud.driver,
        sleep=lambda _s: time.sleep(0.005),
        limits=CloudLimits(builds=builds, deletes=15),
        watches=ServerWatches(interval_s=0.0),  # a listing at every look: the fake counts looks
    )
    with ThreadPoolExecutor(max_workers=32) as executor:
        worker = build_worker(client, settings, executor, engine=engine, cloud=cloud_activities)
        async with worker:
            yield worker, engine
    engine.dispose()


async def start_pool(
    client: Client,
    task_queue: str,
    pool_spec: PoolSpec,
    pool_id: str | None = None,
    fault_retry_s: float = 60.0,
    events_per_run: int = EVENTS_PER_RUN,
) -> WorkflowHandle:
    pool_id = pool_id or f"p{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(
        PoolWorkflow.run,
        PoolWorkflowInput(pool_id=pool_id, spec=pool_spec, fault_retry_s=fault_retry_s, events_per_run=events_per_run),
        id=pool_workflow_id(pool_id),
        task_queue=task_queue,
    )


async def counts(handle: WorkflowHandle) -> PoolCounts:
    status = await handle.query(PoolWorkflow.status, PoolStatusInput())
    return status.counts


async def claim(handle: WorkflowHandle, user: str, request_id: str | None = None) -> ClaimOutcome:
    request = ClaimRequest(user=user, request_id=request_id or f"{user}-{uuid.uuid4().hex[:6]}")
    result = await handle.execute_update(PoolWorkflow.claim, ClaimBatchInput([request]))
    return result.outcomes[0]


async def eventually(check: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout_s: float = 20.0) -> T:
    """Poll until `accept(value)`; return the last value for the assertion message."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    value = await check()
    while not accept(value) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        value = await check()
    return value
