"""Acting on one desktop: its user releases or disconnects it and opens its console; administrators
also return, power (on, off, restart, forced restart) and detach it, and read its console log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, model_validator

from api.audit_log import record_action
from api.auth.deps import AccessDep
from api.cloud_access import CloudsDep, cloud_call, server_of
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.desktop_access import desktop_for, desktop_of_caller, release_when_taken
from workflows.desktop_rules import IN_USE
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    DesktopStatus,
    DesktopStatusInput,
    DetachInput,
    DetachResult,
    OperatePowerInput,
    OperatePowerResult,
    PowerOperation,
    ReleaseInput,
    ReleaseResult,
    ReturnInput,
    desktop_workflow_id,
)

router = APIRouter(prefix="/desktops/{desktop_id}", tags=["desktops"])


@router.post("/release", response_model=ReleaseResult)
async def release_desktop(
    desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> ReleaseResult:
    """Give the desktop back now (no retention buffer): destroyed, reverted or held for return."""
    desktop = await desktop_of_caller(access, engine, temporal, desktop_id)
    who = access.principal.username
    result = await release_when_taken(temporal, desktop, ReleaseInput(reason=f"released by {who}"))
    record_action(engine, who, "desktop.released", desktop_id=desktop_id)
    return result


@router.post("/disconnect", response_model=ReleaseResult)
async def disconnect_desktop(
    desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> ReleaseResult:
    """Leave the desktop for now: the disconnected-retention buffer starts; reconnecting within it keeps it."""
    desktop = await desktop_of_caller(access, engine, temporal, desktop_id)
    request = ReleaseInput(reason=f"disconnected by {access.principal.username}", immediate=False)
    return await release_when_taken(temporal, desktop, request)


@router.post("/return", status_code=status.HTTP_202_ACCEPTED)
async def return_desktop(
    desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> dict[str, str]:
    """Manual pools: an administrator returns a used desktop; it is reverted and goes back to the pool."""
    desktop_for(access, engine, desktop_id, owner_may=False)
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    current = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
    if current.snapshot.status is not DesktopStatus.AWAITING_RETURN:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"desktop is {current.snapshot.status.value}, not awaiting return"
        )
    await handle.signal(DesktopWorkflow.return_desktop, ReturnInput())
    record_action(engine, access.principal.username, "desktop.returned", desktop_id=desktop_id)
    return {"status": "returning"}


POWER_STATUS = {
    PowerOperation.ON: "powering on",
    PowerOperation.OFF: "powering off",
    PowerOperation.RESTART: "restarting",
    PowerOperation.FORCE_RESTART: "forcing a restart",
}
IN_USE_STATES = {s.value for s in IN_USE}


class PowerBody(BaseModel):
    action: PowerOperation | None = Field(default=None, description="on, off, restart or force_restart")
    on: bool | None = Field(default=None, description='the older form: true is {"action": "on"}, false "off"')

    @model_validator(mode="after")
    def _one_form(self) -> PowerBody:
        if (self.action is None) == (self.on is None):
            raise ValueError('give either "action" (on, off, restart, force_restart) or "on" (true, false)')
        return self

    @property
    def operation(self) -> PowerOperation:
        if self.action is not None:
            return self.action
        return PowerOperation.ON if self.on else PowerOperation.OFF


class PowerView(BaseModel):
    status: str = Field(description="powering on, powering off, restarting, forcing a restart")
    action: PowerOperation
    desktop_state: DesktopStatus = Field(description="the desktop's state when the operation was taken")
    queued: bool = Field(description="false: the same operation was already under way; nothing was added")


@router.post(
    "/power",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PowerView,
    responses={409: {"description": "refused in the desktop's state (power off in use, restart while off...)"}},
)
async def power_desktop(
    desktop_id: str, body: PowerBody, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> PowerView:
    """Power a desktop on or off, restart it or force a restart (administrators of its pool).

    A desktop in use is never powered off under its user (409: release it first); restarting
    it is allowed and interrupts the user's session (audited with the user's name); it stays theirs."""
    desktop_for(access, engine, desktop_id, owner_may=False)
    operation = body.operation
    who = access.principal.username
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    result: OperatePowerResult = await handle.execute_update(
        DesktopWorkflow.operate_power, OperatePowerInput(operation, actor=who)
    )
    current = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
    detail: dict[str, object] = {"action": operation.value, "on": operation is not PowerOperation.OFF}
    if result.status.value in IN_USE_STATES and current.snapshot.user:
        detail["user"] = current.snapshot.user  # their session is interrupted by a restart
    record_action(engine, who, "desktop.power", desktop_id=desktop_id, detail=detail)
    state, queued = result.status, result.queued
    return PowerView(status=POWER_STATUS[operation], action=operation, desktop_state=state, queued=queued)


class DetachView(BaseModel):
    status: str
    desktop_state: DesktopStatus


@router.post(
    "/detach",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DetachView,
    responses={409: {"description": "the desktop is not powered off, is in use or busy"}},
)
async def detach_desktop(desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep) -> DetachView:
    """Take a powered-off desktop out of its pool: its server stays as an independent server (deskpool's
    tags and `deskpool_*` metadata removed, its other metadata, user data and disks untouched), the pool
    counts it gone and replenishes. 409 unless powered off and unheld."""
    desktop_for(access, engine, desktop_id, owner_may=False)
    who = access.principal.username
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    result: DetachResult = await handle.execute_update(DesktopWorkflow.detach, DetachInput(f"detached by {who}"))
    record_action(engine, who, "desktop.detaching", desktop_id=desktop_id)
    return DetachView(status="detaching", desktop_state=result.status)


CONSOLE_EXPIRES_HINT = "soon: the cloud's console token lifetime (Nova's default is 10 minutes); ask again then"


class ConsoleView(BaseModel):
    url: str = Field(description="the remote console; it carries a token: open it, do not share or log it")
    type: str = Field(description="spice-html5 where the cloud offers it, else novnc")
    expires_hint: str


@router.get("/console", response_model=ConsoleView)
async def desktop_console(
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    clouds: CloudsDep,
    settings: SettingsDep,
) -> ConsoleView:
    """A remote console URL for the desktop's user or its pool's administrators, straight from the
    cloud: it never passes through a workflow history or a log. 409 while the server is not running."""
    desktop_for(access, engine, desktop_id)
    ref = await server_of(temporal, desktop_id)
    server_id = ref.server_id or ""
    console_type, url = await cloud_call(
        clouds, ref, lambda driver: driver.console_url(server_id), settings.cloud_call_timeout_s
    )
    record_action(engine, access.principal.username, "desktop.console_opened", desktop_id=desktop_id,
                  detail={"type": console_type})  # fmt: skip
    return ConsoleView(url=url, type=console_type, expires_hint=CONSOLE_EXPIRES_HINT)


@router.get("/log", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
async def desktop_log(
    desktop_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    clouds: CloudsDep,
    settings: SettingsDep,
    lines: Annotated[int, Query(ge=1, le=10_000, description="the last N lines")] = 200,
) -> PlainTextResponse:
    """The server's console log, its last `lines` lines (administrators of the pool)."""
    desktop_for(access, engine, desktop_id, owner_may=False)
    ref = await server_of(temporal, desktop_id)
    server_id = ref.server_id or ""
    text = await cloud_call(
        clouds, ref, lambda driver: driver.console_output(server_id, lines), settings.cloud_call_timeout_s
    )
    return PlainTextResponse(text)
