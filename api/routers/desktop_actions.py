"""Acting on one desktop: its user releases or disconnects it; administrators also return and power it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from api.audit_log import record_action
from api.auth.deps import AccessDep
from api.deps import EngineDep, TemporalDep
from api.desktop_access import desktop_for
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    DesktopStatus,
    DesktopStatusInput,
    PowerInput,
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
    desktop_for(access, engine, desktop_id)
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    who = access.principal.username
    result: ReleaseResult = await handle.execute_update(
        DesktopWorkflow.release, ReleaseInput(reason=f"released by {who}")
    )
    record_action(engine, who, "desktop.released", desktop_id=desktop_id)
    return result


@router.post("/disconnect", response_model=ReleaseResult)
async def disconnect_desktop(
    desktop_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> ReleaseResult:
    """Leave the desktop for now: the disconnected-retention buffer starts; reconnecting within it keeps it."""
    desktop_for(access, engine, desktop_id)
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    request = ReleaseInput(reason=f"disconnected by {access.principal.username}", immediate=False)
    result: ReleaseResult = await handle.execute_update(DesktopWorkflow.release, request)
    return result


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


class PowerBody(BaseModel):
    on: bool


@router.post("/power", status_code=status.HTTP_202_ACCEPTED)
async def power_desktop(
    desktop_id: str, body: PowerBody, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> dict[str, str]:
    """Power an idle desktop on or off (a desktop in use is never powered off under its user)."""
    row = desktop_for(access, engine, desktop_id, owner_may=False)
    if row.state not in (DesktopStatus.READY.value, DesktopStatus.STANDBY.value):
        raise HTTPException(status.HTTP_409_CONFLICT, f"desktop is {row.state}: only an idle desktop is powered")
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    await handle.signal(DesktopWorkflow.power, PowerInput(on=body.on))
    record_action(engine, access.principal.username, "desktop.power", desktop_id=desktop_id, detail={"on": body.on})
    return {"status": "powering on" if body.on else "powering off"}
