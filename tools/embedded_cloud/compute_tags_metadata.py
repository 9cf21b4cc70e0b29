"""Nova server tags (2.26+) and server metadata sub-resources.

Like Nova, changing tags or metadata is refused with 409 while the server is
still building (or in ERROR for tags, or has a task running for metadata):
drivers must pass tags/metadata in the create request or wait for ACTIVE.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from tools.embedded_cloud import lifecycle
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import ServerRecord
from tools.embedded_cloud.server_request import (
    MAX_TAGS,
    validate_metadata,
    validate_tag,
    validate_tags,
)
from tools.embedded_cloud.state import auth_of, cloud_of, json_body, microversion_of

router = APIRouter(prefix="/compute/v2.1/servers/{server_id}")

# nova/api/openstack/compute/server_tags.py: tags may change in these states.
_TAG_STATES = ("active", "stopped")
# nova.compute.api.update_instance_metadata's check_instance_state.
_METADATA_STATES = ("active", "stopped")
# Tags only look at vm_state, so any running task is fine.
_ALL_TASKS = (
    "spawning",
    "powering-off",
    "powering-on",
    "rebooting",
    "rebooting_hard",
    "rebuilding",
    "deleting",
)


def _server_for_tags(request: Request, server_id: str, action: str | None) -> ServerRecord:
    if microversion_of(request) < (2, 26):
        raise ApiError(404, "The resource could not be found.")
    server = cloud_of(request).server(server_id, auth_of(request))
    if action is not None:
        try:
            lifecycle.check_state(server, action, _TAG_STATES, (None, *_ALL_TASKS))
        except lifecycle.InvalidState as err:
            raise ApiError(409, str(err)) from None
    return server


def _save(request: Request, server: ServerRecord) -> None:
    cloud = cloud_of(request)
    server.updated_at = cloud.now()
    cloud.store.save_server(server)


@router.get("/tags", name="compute.servers.tags.list")
async def list_tags(request: Request, server_id: str) -> dict[str, Any]:
    return {"tags": list(_server_for_tags(request, server_id, None).tags)}


@router.put("/tags", name="compute.servers.tags.replace")
async def replace_tags(request: Request, server_id: str) -> dict[str, Any]:
    server = _server_for_tags(request, server_id, "update tags")
    server.tags = validate_tags((await json_body(request, "compute")).get("tags"))
    _save(request, server)
    return {"tags": list(server.tags)}


@router.delete("/tags", name="compute.servers.tags.clear", status_code=204)
async def clear_tags(request: Request, server_id: str) -> Response:
    server = _server_for_tags(request, server_id, "delete tags")
    server.tags = []
    _save(request, server)
    return Response(status_code=204)


@router.get("/tags/{tag}", name="compute.servers.tags.check", status_code=204)
async def check_tag(request: Request, server_id: str, tag: str) -> Response:
    if tag not in _server_for_tags(request, server_id, None).tags:
        raise ApiError(404, f"Tag {tag} could not be found.")
    return Response(status_code=204)


@router.put("/tags/{tag}", name="compute.servers.tags.add")
async def add_tag(request: Request, server_id: str, tag: str) -> Response:
    server = _server_for_tags(request, server_id, "update tag")
    if tag in server.tags:
        return Response(status_code=204)
    if len(server.tags) >= MAX_TAGS:
        raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    server.tags.append(validate_tag(tag))
    _save(request, server)
    location = f"{cloud_of(request).base_url(request)}{request.url.path}"
    return Response(status_code=201, headers={"Location": location})


@router.delete("/tags/{tag}", name="compute.servers.tags.delete", status_code=204)
async def delete_tag(request: Request, server_id: str, tag: str) -> Response:
    server = _server_for_tags(request, server_id, "delete tag")
    if tag not in server.tags:
        raise ApiError(404, f"Tag {tag} could not be found.")
    server.tags.remove(tag)
    _save(request, server)
    return Response(status_code=204)


def _server_for_metadata(request: Request, server_id: str, action: str | None) -> ServerRecord:
    server = cloud_of(request).server(server_id, auth_of(request))
    if action is not None:
        try:
            lifecycle.check_state(server, action, _METADATA_STATES)
        except lifecycle.InvalidState as err:
            raise ApiError(409, str(err)) from None
    return server


@router.get("/metadata", name="compute.servers.metadata.list")
async def list_metadata(request: Request, server_id: str) -> dict[str, Any]:
    return {"metadata": dict(_server_for_metadata(request, server_id, None).metadata)}


@router.post("/metadata", name="compute.servers.metadata.update")
@router.put("/metadata", name="compute.servers.metadata.replace")
async def set_metadata(request: Request, server_id: str) -> dict[str, Any]:
    server = _server_for_metadata(request, server_id, "update metadata")
    given = validate_metadata((await json_body(request, "compute")).get("metadata"))
    # POST merges into the existing items, PUT replaces them all.
    merged = {**server.metadata, **given} if request.method == "POST" else given
    server.metadata = validate_metadata(merged)
    _save(request, server)
    return {"metadata": dict(server.metadata)}


@router.get("/metadata/{key}", name="compute.servers.metadata.get")
async def get_metadata_item(request: Request, server_id: str, key: str) -> dict[str, Any]:
    server = _server_for_metadata(request, server_id, None)
    if key not in server.metadata:
        raise ApiError(404, "Metadata item was not found")
    return {"meta": {key: server.metadata[key]}}


@router.put("/metadata/{key}", name="compute.servers.metadata.set_item")
async def set_metadata_item(request: Request, server_id: str, key: str) -> dict[str, Any]:
    server = _server_for_metadata(request, server_id, "update metadata")
    meta = (await json_body(request, "compute")).get("meta")
    if not isinstance(meta, dict) or list(meta) != [key]:
        raise ApiError(400, "Request body and URI mismatch")
    server.metadata = validate_metadata({**server.metadata, **meta})
    _save(request, server)
    return {"meta": {key: server.metadata[key]}}


@router.delete("/metadata/{key}", name="compute.servers.metadata.delete", status_code=204)
async def delete_metadata_item(request: Request, server_id: str, key: str) -> Response:
    server = _server_for_metadata(request, server_id, "delete metadata")
    if key not in server.metadata:
        raise ApiError(404, "Metadata item was not found")
    del server.metadata[key]
    _save(request, server)
    return Response(status_code=204)
