"""One desktop for its pool's administrators: state, power buttons, the console, the console log and
its event history, on the API's own routes (a user gets the 404 the API gives them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.auth.deps import AccessDep
from api.cloud_access import CloudsDep
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.portal.common import PortalRoute, age, flash, form_of, render
from api.routers import desktop_actions, desktops
from api.routers.desktop_actions import POWER_STATUS, PowerBody
from workflows.messages import PowerOperation

router = APIRouter(prefix="/portal/admin/desktops", route_class=PortalRoute, include_in_schema=False)
POWER_LABELS = {
    PowerOperation.ON: "Power on",
    PowerOperation.OFF: "Power off",
    PowerOperation.RESTART: "Restart",
    PowerOperation.FORCE_RESTART: "Forced restart",
}


@router.get("/{desktop_id}", response_class=HTMLResponse)
def desktop_page(
    request: Request, desktop_id: str, access: AccessDep, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    detail = desktops.get_desktop(desktop_id, access, engine, settings)
    return render(request, "desktop.html", access=access, section="pools", desktop=detail,
                  age=age(detail.created_at, datetime.now(UTC)), power=POWER_LABELS)  # fmt: skip


@router.get("/{desktop_id}/state", response_class=HTMLResponse)
def desktop_state(
    request: Request, desktop_id: str, access: AccessDep, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    detail = desktops.get_desktop(desktop_id, access, engine, settings)
    return render(request, "_desktop_state.html", desktop=detail, age=age(detail.created_at, datetime.now(UTC)))


@router.post("/{desktop_id}/power", response_class=HTMLResponse)
async def power(
    request: Request, desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> Response:
    form = await form_of(request)
    body = PowerBody.model_validate({"action": (form.get("action") or [""])[0]})
    result = await desktop_actions.power_desktop(desktop_id, body, access, engine, temporal)
    message = f"{desktop_id}: {POWER_STATUS[result.action]}" + ("" if result.queued else " (already under way)")
    response = flash(request, message)
    response.headers["HX-Trigger"] = "desktop-changed"
    return response


@router.get("/{desktop_id}/console", response_class=HTMLResponse)
async def console(
    request: Request,
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    clouds: CloudsDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """A link to the remote console, fetched from the cloud now (its URL carries a token: it is only
    put in this answer, never logged)."""
    view = await desktop_actions.desktop_console(desktop_id, access, engine, temporal, clouds, settings)
    return render(request, "_console.html", console=view)


@router.get("/{desktop_id}/log", response_class=HTMLResponse)
async def console_log(
    request: Request,
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    clouds: CloudsDep,
    settings: SettingsDep,
    lines: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> HTMLResponse:
    text = await desktop_actions.desktop_log(desktop_id, access, engine, temporal, clouds, settings, lines)
    return render(request, "_log.html", text=bytes(text.body).decode(errors="replace"), lines=lines)
