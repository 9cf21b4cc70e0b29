"""Liveness and readiness: /healthz says the process is up, /readyz what it depends on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.store.database import ping
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.settings import ApiSettings

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 3.0


class CheckResult(BaseModel):
    ok: bool
    detail: str = ""


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, CheckResult]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(settings: SettingsDep, engine: EngineDep, temporal: TemporalDep) -> JSONResponse:
    database, temporal_check, worker = await asyncio.gather(
        _check_database(engine), _check_temporal(temporal), _check_worker(temporal, settings)
    )
    checks = {"database": database, "temporal": temporal_check, "worker": worker}
    body = Readiness(ready=all(c.ok for c in checks.values()), checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


async def _check_database(engine: EngineDep) -> CheckResult:
    try:
        await asyncio.wait_for(asyncio.to_thread(ping, engine), CHECK_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type
        return CheckResult(ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return CheckResult(ok=True)


async def _check_temporal(client: Client) -> CheckResult:
    try:
        await client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001
        return CheckResult(ok=False, detail=f"Temporal unreachable: {type(exc).__name__}")
    return CheckResult(ok=True)


async def _check_worker(client: Client, settings: ApiSettings) -> CheckResult:
    """A worker is polling when Temporal saw a poller on our task queue recently."""
    window = timedelta(seconds=settings.worker_poll_window_s)
    now = datetime.now(UTC)
    try:
        for queue_type in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=settings.task_queue),
                    task_queue_type=queue_type,
                ),
                timeout=timedelta(seconds=CHECK_TIMEOUT_S),
            )
            for poller in response.pollers:
                seen = poller.last_access_time.ToDatetime(tzinfo=UTC)
                if now - seen <= window:
                    return CheckResult(ok=True, detail=f"poller {poller.identity}")
    except Exception as exc:  # noqa: BLE001
        return CheckResult(ok=False, detail=f"could not describe task queue: {type(exc).__name__}")
    return CheckResult(ok=False, detail=f"no worker polling task queue {settings.task_queue!r}")
