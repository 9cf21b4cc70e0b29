"""Nova: version discovery and server create/list/get/update/delete."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tools.embedded_cloud import lifecycle, microversion
from tools.embedded_cloud.compute_views import server_summary, server_view
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import ServerRecord
from tools.embedded_cloud.server_request import build_server
from tools.embedded_cloud.state import (
    CloudState,
    auth_of,
    cloud_of,
    json_body,
    microversion_of,
)
from tools.embedded_cloud.tokens import TokenInfo

router = APIRouter(prefix="/compute")

# Nova's osapi_max_limit: longer listings are paged with a "next" link,
# which openstacksdk follows transparently.
MAX_PAGE = 1000
_FALSE = ("0", "false", "f", "no", "n", "off")


def _version_doc(cloud: CloudState, base: str) -> dict[str, Any]:
    # keystoneauth reads "version" (max) and "min_version" to negotiate
    # microversions; without them openstacksdk falls back to 2.1.
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": microversion.render(cloud.max_microversion),
        "min_version": microversion.render(microversion.MIN_MICROVERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


@router.get("", name="compute.versions")
@router.get("/", name="compute.versions")
async def versions(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    return {"versions": [_version_doc(cloud, cloud.base_url(request))]}


@router.get("/v2.1", name="compute.version")
@router.get("/v2.1/", name="compute.version")
async def version(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    return {"version": _version_doc(cloud, cloud.base_url(request))}


def _check_capacity(cloud: CloudState, auth: TokenInfo) -> int:
    """Raise like Nova when over quota; returns the builds in flight."""
    faults = cloud.faults
    servers = cloud.live_servers()
    quota = faults.instances_quota
    if quota is not None:
        used = sum(1 for s in servers if s.project_id == auth.project_id)
        if used + 1 > quota:
            cloud.stats.count_fault("quota_exceeded")
            raise ApiError(
                403,
                f"Quota exceeded for instances: Requested 1, but already used {used} of {quota} instances",
            )
    in_flight = sum(1 for s in servers if lifecycle.is_building(s))
    limit = faults.max_builds_in_flight
    if limit is not None and in_flight >= limit:
        cloud.stats.count_fault("build_limit")
        headers = {}
        if faults.build_limit_status == 429:
            headers["Retry-After"] = str(faults.retry_after_seconds)
        raise ApiError(
            faults.build_limit_status,
            f"Quota exceeded for concurrent builds: Requested 1, but already {in_flight} of {limit} builds in flight",
            headers=headers,
        )
    return in_flight


@router.post("/v2.1/servers", name="compute.servers.create")
async def create_server(request: Request) -> Response:
    cloud, auth, mv = cloud_of(request), auth_of(request), microversion_of(request)
    body = await json_body(request, "compute")
    now = cloud.now()
    server = build_server(cloud, auth, body, mv, now)
    in_flight = _check_capacity(cloud, auth)
    fail = cloud.chance(cloud.faults.create_error_rate)
    stuck = not fail and cloud.chance(cloud.faults.stuck_build_rate)
    lifecycle.begin_build(server, now, cloud.delays.build, fail=fail, stuck=stuck)
    cloud.store.save_server(server)
    cloud.stats.creates += 1
    cloud.stats.create_times.append(now)
    cloud.stats.observe_builds(in_flight + 1)
    if fail:
        cloud.stats.count_fault("create_error")
    if stuck:
        cloud.stats.count_fault("stuck_build")
    base = cloud.base_url(request)
    created = {
        **server_summary(server, base),
        "OS-DCF:diskConfig": "MANUAL",
        "adminPass": secrets.token_urlsafe(9),
    }
    if server.security_groups:
        created["security_groups"] = [{"name": n} for n in server.security_groups]
    location = f"{base}/compute/v2.1/servers/{server.id}"
    return JSONResponse({"server": created}, status_code=202, headers={"Location": location})


def _name_matches(pattern: str, name: str) -> bool:
    # Nova filters names with a regular expression (SQL REGEXP), unanchored.
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _tag_filter(params: Any, server: ServerRecord) -> bool:
    tags = set(server.tags)

    def wanted(key: str) -> set[str] | None:
        # Nova takes a comma-separated list; repeated parameters are merged.
        values = params.getlist(key)
        return {t for v in values for t in v.split(",") if t} if values else None

    if (all_of := wanted("tags")) is not None and not all_of <= tags:
        return False
    if (any_of := wanted("tags-any")) is not None and not any_of & tags:
        return False
    if (not_all := wanted("not-tags")) is not None and not_all <= tags:
        return False
    return not ((not_any := wanted("not-tags-any")) is not None and not_any & tags)


def _timestamp_param(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(400, f"Invalid filter field: changes-since. Value: {value}") from None


def _filtered(request: Request) -> list[ServerRecord]:
    cloud, auth = cloud_of(request), auth_of(request)
    params = request.query_params
    all_tenants = "all_tenants" in params and params["all_tenants"].lower() not in _FALSE
    if all_tenants and not auth.is_admin:
        raise ApiError(403, "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.")
    project = params.get("project_id") or params.get("tenant_id")
    statuses = {s.upper() for s in params.getlist("status")}
    since_ts = _timestamp_param(params.get("changes-since"))
    result = []
    for server in cloud.live_servers():
        if not all_tenants and server.project_id != auth.project_id:
            continue
        if all_tenants and project and server.project_id != project:
            continue
        if "name" in params and not _name_matches(params["name"], server.name):
            continue
        if statuses and lifecycle.status(server) not in statuses:
            continue
        if "image" in params and server.image_id != params["image"]:
            continue
        if "flavor" in params and server.flavor_id != params["flavor"]:
            continue
        if "availability_zone" in params and server.availability_zone != params["availability_zone"]:
            continue
        if "ip" in params and not any(_name_matches(params["ip"], p.ip) for p in server.ports):
            continue
        if since_ts is not None and server.updated_at < since_ts:
            continue
        if _tag_filter(params, server):
            result.append(server)
    # Nova's default order: newest first.
    result.sort(key=lambda s: (-s.created_at, s.id))
    return result


def _page(request: Request, servers: list[ServerRecord]) -> tuple[list[ServerRecord], str | None]:
    params = request.query_params
    try:
        limit = min(int(params.get("limit", MAX_PAGE)), MAX_PAGE)
    except ValueError:
        raise ApiError(400, "limit param must be an integer") from None
    start = 0
    if marker := params.get("marker"):
        ids = [s.id for s in servers]
        if marker not in ids:
            raise ApiError(400, f"marker [{marker}] not found")
        start = ids.index(marker) + 1
    page = servers[start : start + limit]
    if start + limit >= len(servers) or not page:
        return page, None
    query = {k: v for k, v in params.multi_items() if k not in ("limit", "marker")}
    query.update(limit=str(limit), marker=page[-1].id)
    base = cloud_of(request).base_url(request)
    return page, f"{base}{request.url.path}?{urlencode(query)}"


def _listing(request: Request, detailed: bool) -> dict[str, Any]:
    cloud = cloud_of(request)
    page, next_href = _page(request, _filtered(request))
    base, mv = cloud.base_url(request), microversion_of(request)
    items = [server_view(cloud, s, mv, base) if detailed else server_summary(s, base) for s in page]
    body: dict[str, Any] = {"servers": items}
    if next_href:
        body["servers_links"] = [{"rel": "next", "href": next_href}]
    return body


@router.get("/v2.1/servers", name="compute.servers.list")
async def list_servers(request: Request) -> dict[str, Any]:
    return _listing(request, detailed=False)


@router.get("/v2.1/servers/detail", name="compute.servers.list_detail")
async def list_servers_detail(request: Request) -> dict[str, Any]:
    return _listing(request, detailed=True)


@router.get("/v2.1/servers/{server_id}", name="compute.servers.get")
async def get_server(request: Request, server_id: str) -> dict[str, Any]:
    cloud = cloud_of(request)
    server = cloud.server(server_id, auth_of(request))
    return {"server": server_view(cloud, server, microversion_of(request), cloud.base_url(request))}


@router.put("/v2.1/servers/{server_id}", name="compute.servers.update")
async def update_server(request: Request, server_id: str) -> dict[str, Any]:
    cloud, mv = cloud_of(request), microversion_of(request)
    server = cloud.server(server_id, auth_of(request))
    changes = (await json_body(request, "compute")).get("server") or {}
    if "name" in changes:
        if not isinstance(changes["name"], str) or not changes["name"].strip():
            raise ApiError(400, "Invalid input for field/attribute name.")
        server.name = changes["name"]
    if "description" in changes:
        if mv < (2, 19):
            raise ApiError(400, "Additional properties are not allowed ('description' was unexpected)")
        server.description = changes["description"]
    server.updated_at = cloud.now()
    cloud.store.save_server(server)
    return {"server": server_view(cloud, server, mv, cloud.base_url(request))}


@router.delete("/v2.1/servers/{server_id}", name="compute.servers.delete", status_code=204)
async def delete_server(request: Request, server_id: str) -> Response:
    cloud = cloud_of(request)
    server = cloud.server(server_id, auth_of(request))
    if server.task_state != "deleting":
        cloud.stats.deletes += 1
    lifecycle.begin_delete(server, cloud.now(), cloud.delays.delete)
    cloud.store.save_server(server)
    return Response(status_code=204)
