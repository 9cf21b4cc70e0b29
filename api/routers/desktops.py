"""Desktops: list and filter, detail with event history, release, agent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from pydantic import BaseModel
from sqlmodel import Session, col, select

from activities.agent_secret import agent_secret_matches
from activities.store.models import AuditEvent, DesktopRecord
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.views import LIVE_STATES, DesktopView, desktop_view
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    DesktopStatus,
    DesktopStatusInput,
    ReleaseInput,
    ReleaseResult,
    ReturnInput,
    SessionEvent,
    SessionEventKind,
    desktop_workflow_id,
)

router = APIRouter(prefix="/desktops", tags=["desktops"])


class DesktopEvent(BaseModel):
    at: str
    action: str
    actor: str


class DesktopDetail(DesktopView):
    events: list[DesktopEvent]


class AgentEvent(BaseModel):
    kind: SessionEventKind


@router.get("", response_model=list[DesktopView])
def list_desktops(
    engine: EngineDep,
    settings: SettingsDep,
    pool: str | None = None,
    state: str | None = None,
    user: str | None = None,
    template_version: int | None = None,
    include_gone: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[DesktopView]:
    query = select(DesktopRecord).order_by(DesktopRecord.pool_id, DesktopRecord.name).limit(limit)
    if pool is not None:
        query = query.where(DesktopRecord.pool_id == pool)
    if state is not None:
        query = query.where(DesktopRecord.state == state)
    elif not include_gone:
        query = query.where(col(DesktopRecord.state).in_(LIVE_STATES))
    if user is not None:
        query = query.where(DesktopRecord.user == user)
    if template_version is not None:
        query = query.where(DesktopRecord.template_version == template_version)
    with Session(engine) as session:
        rows = list(session.exec(query))
    return [desktop_view(r, settings.temporal_ui_url, settings.temporal_namespace) for r in rows]


@router.get("/{desktop_id}", response_model=DesktopDetail)
def get_desktop(desktop_id: str, engine: EngineDep, settings: SettingsDep) -> DesktopDetail:
    with Session(engine) as session:
        row = session.get(DesktopRecord, desktop_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"desktop {desktop_id} not found")
        events = session.exec(
            select(AuditEvent).where(AuditEvent.desktop_id == desktop_id).order_by(col(AuditEvent.id))
        ).all()
    view = desktop_view(row, settings.temporal_ui_url, settings.temporal_namespace)
    return DesktopDetail(
        **view.model_dump(),
        events=[DesktopEvent(at=e.at.isoformat(), action=e.action, actor=e.actor) for e in events],
    )


@router.post("/{desktop_id}/release", response_model=ReleaseResult)
async def release_desktop(desktop_id: str, temporal: TemporalDep) -> ReleaseResult:
    """Give the desktop back now (no retention buffer): destroyed, reverted or held for return."""
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    result: ReleaseResult = await handle.execute_update(
        DesktopWorkflow.release, ReleaseInput(reason="released by user")
    )
    return result


@router.post("/{desktop_id}/return", status_code=status.HTTP_202_ACCEPTED)
async def return_desktop(desktop_id: str, temporal: TemporalDep) -> dict[str, str]:
    """Manual pools: return a used desktop; it is reverted to its template and goes back to the pool."""
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    current = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
    if current.snapshot.status is not DesktopStatus.AWAITING_RETURN:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"desktop is {current.snapshot.status.value}, not awaiting return"
        )
    await handle.signal(DesktopWorkflow.return_desktop, ReturnInput())
    return {"status": "returning"}


@router.post("/{desktop_id}/events", status_code=status.HTTP_202_ACCEPTED)
async def agent_event(
    desktop_id: str,
    event: AgentEvent,
    temporal: TemporalDep,
    settings: SettingsDep,
    x_desktop_secret: Annotated[str, Header(max_length=128)],
) -> dict[str, str]:
    """From the in-guest agent or a gateway: connect, disconnect, logoff, idle, active, ready.
    Authenticated by the desktop's own secret (in its server metadata)."""
    key = settings.secret_key_bytes()
    if key is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "agent events are off: no DESKPOOL_SECRET_KEY set")
    if not agent_secret_matches(key, desktop_id, x_desktop_secret):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "x-desktop-secret: not this desktop's secret")
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    await handle.signal(DesktopWorkflow.session_event, SessionEvent(kind=event.kind))
    return {"status": "accepted"}
