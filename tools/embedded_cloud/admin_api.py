"""``/_admin``: change faults and delays at run time, read statistics.

Request bodies are partial ``config.Faults`` / ``config.Delays`` documents.
Not part of any OpenStack API and unauthenticated: bind the embedded cloud
to localhost (the default) so only local tests and operators reach it.
"""

from __future__ import annotations

import random
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from tools.embedded_cloud import lifecycle
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.state import cloud_of, json_body

router = APIRouter(prefix="/_admin")
_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _merged(current: _ModelT, changes: dict[str, Any]) -> _ModelT:
    """Validate a partial update; unknown keys or bad values answer 400."""
    try:
        return type(current).model_validate({**current.model_dump(), **changes})
    except ValidationError as err:
        raise ApiError(400, str(err), service="admin") from None


@router.get("/faults", name="admin.faults.get")
async def get_faults(request: Request) -> dict[str, Any]:
    return cloud_of(request).faults.model_dump()


@router.post("/faults", name="admin.faults.update")
async def update_faults(request: Request) -> dict[str, Any]:
    """Partial update, e.g. ``{"outage": true}``; ``random_seed`` re-seeds."""
    cloud = cloud_of(request)
    changes = await json_body(request, "admin")
    seed = changes.pop("random_seed", None)
    faults = _merged(cloud.faults, changes)
    if seed is not None:
        cloud.rng = random.Random(int(seed))
    cloud.faults = faults
    return faults.model_dump()


@router.delete("/faults", name="admin.faults.reset")
async def reset_faults(request: Request) -> dict[str, Any]:
    """Back to the faults the cloud was started with (and its random seed)."""
    cloud = cloud_of(request)
    cloud.faults = cloud.config.faults.model_copy(deep=True)
    cloud.rng = random.Random(cloud.config.random_seed)
    return cloud.faults.model_dump()


@router.get("/delays", name="admin.delays.get")
async def get_delays(request: Request) -> dict[str, Any]:
    return cloud_of(request).delays.model_dump()


@router.post("/delays", name="admin.delays.update")
async def update_delays(request: Request) -> dict[str, Any]:
    """Applies to actions started from now on; running tasks keep their due time."""
    cloud = cloud_of(request)
    cloud.delays = _merged(cloud.delays, await json_body(request, "admin"))
    return cloud.delays.model_dump()


@router.delete("/delays", name="admin.delays.reset")
async def reset_delays(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    cloud.delays = cloud.config.delays.model_copy(deep=True)
    return cloud.delays.model_dump()


@router.get("/stats", name="admin.stats.get")
async def get_stats(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    servers = cloud.live_servers()
    by_status: dict[str, int] = {}
    for server in servers:
        status = lifecycle.status(server)
        by_status[status] = by_status.get(status, 0) + 1
    return {
        **cloud.stats.snapshot(cloud.now()),
        "servers_total": len(servers),
        "servers_by_status": dict(sorted(by_status.items())),
        "builds_in_flight": sum(1 for s in servers if lifecycle.is_building(s)),
    }


@router.get("/stats/creates", name="admin.stats.creates")
async def get_create_times(request: Request) -> dict[str, Any]:
    """When each accepted create arrived (the cloud's clock, epoch seconds), oldest first."""
    return {"create_times": list(cloud_of(request).stats.create_times)}


@router.post("/stats/reset", name="admin.stats.reset")
async def reset_stats(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    cloud.stats = type(cloud.stats)(cloud.now())
    return cloud.stats.snapshot(cloud.now())


@router.get("/servers", name="admin.servers.list")
async def dump_servers(request: Request) -> dict[str, Any]:
    """Raw records (scheduler hints, pending task, fault) for debugging."""
    cloud = cloud_of(request)
    return {"servers": [{**s.model_dump(), "status": lifecycle.status(s)} for s in cloud.live_servers()]}


@router.get("/health", name="admin.health")
async def health(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    return {"ok": True, "persistent": cloud.store.persistent}
