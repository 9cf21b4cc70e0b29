"""The API's own reach into the cloud, for what must not pass through a workflow history.

A remote console URL carries a token: it is fetched here, by the API, straight from the
cloud (its desktop's server found through the desktop workflow's status query) and
handed to the caller, never to Temporal, never to a log. The console log goes the same
way. Calls are blocking (openstacksdk): they run on the thread pool with a bounded wait,
and cloud errors are mapped once (activities/cloud_errors.py) into 404, 409 or 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry
from temporalio.client import Client

from activities.cloud import DriverFactory
from activities.cloud_driver import CloudConnections, CloudDriver
from activities.cloud_errors import CONFLICT, NOT_FOUND, THROTTLED, UNAVAILABLE, map_cloud_error
from activities.cloud_metrics import CloudMetrics
from api.settings import ApiSettings
from workflows.activity_io import ServerRef
from workflows.desktop_workflow import FINAL, DesktopWorkflow
from workflows.messages import DesktopStatusInput, desktop_workflow_id

T = TypeVar("T")

HTTP_OF_CLOUD_ERROR = {NOT_FOUND: status.HTTP_404_NOT_FOUND, CONFLICT: status.HTTP_409_CONFLICT}


def cloud_drivers(settings: ApiSettings, registry: CollectorRegistry) -> DriverFactory:
    """The API process's drivers: its clouds.yaml, its rate limit, its calls counted on the
    API's own registry (deskpool_cloud_calls_total on the API's /metrics)."""
    rate = settings.cloud_max_calls_per_second or None
    connections = CloudConnections(settings.clouds_yaml, rate, CloudMetrics(registry), app_name="deskpool-api")
    return connections.driver


def get_clouds(request: Request) -> DriverFactory:
    clouds: DriverFactory = request.app.state.clouds
    return clouds


CloudsDep = Annotated[DriverFactory, Depends(get_clouds)]


async def server_of(temporal: Client, desktop_id: str) -> ServerRef:
    """Where the desktop's server is, as its workflow says; 409 while it has none."""
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    current = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
    snap = current.snapshot
    if snap.status in FINAL:
        raise HTTPException(status.HTTP_409_CONFLICT, f"desktop is {snap.status.value}: it has no server any more")
    if snap.server_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"desktop is {snap.status.value}: its server is not made yet")
    return ServerRef(current.cloud, desktop_id, snap.server_id, current.region, current.project_id)


async def cloud_call(
    clouds: DriverFactory, ref: ServerRef, operation: Callable[[CloudDriver], T], timeout_s: float
) -> T:
    """Run one driver operation for the server's cloud off the event loop, within `timeout_s`.

    The driver is made inside the worker thread: connections are per thread."""

    def run() -> T:
        return operation(clouds(ref.cloud, ref.region, ref.project_id))

    try:
        return await asyncio.wait_for(run_in_threadpool(run), timeout_s)
    except TimeoutError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"cloud {ref.cloud} did not answer within {timeout_s:g}s",
            headers={"Retry-After": "5"},
        ) from None
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - every cloud failure, mapped once
        mapped = map_cloud_error(exc)
        code = HTTP_OF_CLOUD_ERROR.get(mapped.type or "", status.HTTP_503_SERVICE_UNAVAILABLE)
        retry = {"Retry-After": "5"} if mapped.type in (THROTTLED, UNAVAILABLE) else None
        raise HTTPException(code, f"cloud {ref.cloud}: {mapped.message}", headers=retry) from None
