"""Nova server actions (``POST /servers/{id}/action``) and remote consoles."""

from __future__ import annotations

import html
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from tools.embedded_cloud import lifecycle
from tools.embedded_cloud.compute_views import server_view
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import ServerRecord
from tools.embedded_cloud.server_request import validate_metadata, validate_user_data
from tools.embedded_cloud.state import (
    CloudState,
    auth_of,
    cloud_of,
    json_body,
    microversion_of,
)

router = APIRouter()

# Legacy per-type console actions, used by conn.compute.get_server_console_url.
_LEGACY_CONSOLE_ACTIONS = {
    "os-getVNCConsole": ("vnc", ("novnc", "xvpvnc")),
    "os-getSPICEConsole": ("spice", ("spice-html5",)),
    "os-getRDPConsole": ("rdp", ("rdp-html5",)),
    "os-getSerialConsole": ("serial", ("serial",)),
}
# protocol -> console types, for POST /servers/{id}/remote-consoles (2.6+).
_REMOTE_CONSOLE_TYPES = {
    "vnc": ("novnc", "xvpvnc"),
    "spice": ("spice-html5",),
    "rdp": ("rdp-html5",),
    "serial": ("serial",),
    "mks": ("webmks",),
}


def _console_output(cloud: CloudState, server: ServerRecord) -> list[str]:
    """A plausible boot log, so drivers that scrape it have something to read."""
    image = cloud.catalog.images.get(server.image_id)
    source = image.seed.name if image else "volume"
    lines = [
        f"[    0.000000] Booting {server.name} ({server.id}) from {source}",
        f"[    0.000000] Generation {server.generation}, zone {server.availability_zone}",
    ]
    for index, port in enumerate(server.ports):
        lines.append(f"[    2.100000] eth{index}: {port.mac} {port.ip} ({port.network_name})")
    if server.user_data:
        lines.append(f"[    5.000000] cloud-init: user-data {len(server.user_data)} bytes (base64)")
    lines.append(f"[    9.000000] {server.hostname or server.name} login:")
    if server.vm_state == "stopped":
        lines.append("[   99.000000] reboot: Power down")
    return lines


def _console_url(request: Request, server: ServerRecord, console_type: str) -> str:
    cloud = cloud_of(request)
    lifecycle.require_active_for_console(server)
    token = secrets.token_urlsafe(16)
    cloud.console_tokens[token] = server.id
    return f"{cloud.base_url(request)}/_console/{console_type}.html?token={token}"


def _rebuild(cloud: CloudState, server: ServerRecord, args: dict[str, Any]) -> None:
    image = cloud.catalog.image(str(args.get("imageRef", "")))
    if image is None:
        raise ApiError(400, f"Image {args.get('imageRef')} could not be found.")
    if not server.image_id and image.id not in {v.image_id for v in server.volumes}:
        # Nova only learnt to reimage volume-backed servers in 2.93.
        raise ApiError(400, "Rebuilding a volume-backed server with a new image is not supported")
    lifecycle.begin_rebuild(server, cloud.now(), cloud.delays.rebuild)
    if server.image_id:
        server.image_id = image.id
    if "name" in args:
        server.name = str(args["name"])
    if "metadata" in args:
        server.metadata = validate_metadata(args["metadata"])
    if "user_data" in args:  # 2.57+: null removes the user data
        server.user_data = validate_user_data(args["user_data"])
    for field in ("description", "key_name", "hostname"):
        if field in args:
            setattr(server, field, args[field])


def _reboot_type(args: Any) -> bool:
    reboot_type = args.get("type") if isinstance(args, dict) else None
    if not isinstance(reboot_type, str) or reboot_type.upper() not in ("SOFT", "HARD"):
        raise ApiError(400, "Invalid input for field/attribute type. Value must be SOFT or HARD")
    return reboot_type.upper() == "HARD"


@router.post("/compute/v2.1/servers/{server_id}/action", name="compute.servers.action")
async def server_action(request: Request, server_id: str) -> Response:
    cloud, mv = cloud_of(request), microversion_of(request)
    body = await json_body(request, "compute")
    server = cloud.server(server_id, auth_of(request))
    if len(body) != 1:
        raise ApiError(400, "Malformed request body: exactly one action expected")
    action, args = next(iter(body.items()))
    args = args or {}
    cloud.stats.server_actions[action] += 1
    now, delays = cloud.now(), cloud.delays
    try:
        if action == "os-start":
            lifecycle.begin_start(server, now, delays.start)
        elif action == "os-stop":
            lifecycle.begin_stop(server, now, delays.stop)
        elif action == "reboot":
            lifecycle.begin_reboot(server, _reboot_type(args), now, delays.reboot)
        elif action == "rebuild":
            _rebuild(cloud, server, args)
            cloud.store.save_server(server)
            view = server_view(cloud, server, mv, cloud.base_url(request))
            return JSONResponse({"server": view}, status_code=202)
        elif action == "os-getConsoleOutput":
            lifecycle.require_console_output(server)
            lines = _console_output(cloud, server)
            length = args.get("length")
            if length is not None and int(length) >= 0:
                lines = lines[-int(length) :] if int(length) else []
            return JSONResponse({"output": "\n".join(lines) + "\n"})
        elif action in _LEGACY_CONSOLE_ACTIONS:
            protocol, types = _LEGACY_CONSOLE_ACTIONS[action]
            console_type = args.get("type")
            if console_type not in types:
                raise ApiError(400, f"Invalid console type {console_type!r} for {protocol}")
            url = _console_url(request, server, console_type)
            return JSONResponse({"console": {"type": console_type, "url": url}})
        else:
            raise ApiError(400, f"There is no such action: {action}")
    except lifecycle.InvalidState as err:
        raise ApiError(409, str(err)) from None
    cloud.store.save_server(server)
    return Response(status_code=202)


@router.post(
    "/compute/v2.1/servers/{server_id}/remote-consoles",
    name="compute.servers.remote_console",
)
async def remote_console(request: Request, server_id: str) -> dict[str, Any]:
    cloud, mv = cloud_of(request), microversion_of(request)
    if mv < (2, 6):
        raise ApiError(404, "The resource could not be found.")
    server = cloud.server(server_id, auth_of(request))
    spec = (await json_body(request, "compute")).get("remote_console") or {}
    protocol, console_type = spec.get("protocol"), spec.get("type")
    if console_type not in _REMOTE_CONSOLE_TYPES.get(str(protocol), ()):
        raise ApiError(400, f"Unsupported console protocol/type {protocol}/{console_type}")
    try:
        url = _console_url(request, server, console_type)
    except lifecycle.InvalidState as err:
        raise ApiError(409, str(err)) from None
    return {"remote_console": {"protocol": protocol, "type": console_type, "url": url}}


@router.get("/_console/{page}", name="console.page", include_in_schema=False)
async def console_page(request: Request, page: str, token: str = "") -> HTMLResponse:
    """Landing page for console URLs (there is no real VNC/SPICE behind it)."""
    cloud = cloud_of(request)
    server = cloud.store.servers.get(cloud.console_tokens.get(token, ""))
    if server is None:
        return HTMLResponse("<h1>Invalid or expired console token</h1>", status_code=404)
    name = html.escape(server.name)
    return HTMLResponse(
        f"<html><head><title>{name}</title></head><body><h1>{html.escape(page)}: "
        f"{name}</h1><p>Status {lifecycle.status(server)} (embedded cloud, no "
        "real console).</p></body></html>"
    )
