"""Desktops: list and filter, detail with event history, agent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from pydantic import BaseModel
from sqlmodel import Session, col, select

from activities.agent_secret import agent_secret_matches
from activities.store.models import AuditEvent, DesktopRecord, PoolRecord
from api.auth.deps import AccessDep, pool_target
from api.auth.roles import Action
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.desktop_access import desktop_for
from api.views import LIVE_STATES, DesktopView, desktop_view
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import SessionEvent, SessionEventKind, desktop_workflow_id

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
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    pool: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
    user: Annotated[str | None, Query(max_length=256)] = None,
    template_version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    include_gone: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[DesktopView]:
    """Administrators see the desktops of the pools they administer; a user sees their own."""
    query = select(DesktopRecord).order_by(DesktopRecord.pool_id, DesktopRecord.name)
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
        pools = {p.id: pool_target(p) for p in session.exec(select(PoolRecord))}
        managed = {pid for pid, target in pools.items() if access.permits(Action.OPERATE_DESKTOPS, target)}
        if not access.is_super:
            mine = DesktopRecord.user == access.principal.username
            query = query.where(col(DesktopRecord.pool_id).in_(managed) | mine)
        rows = list(session.exec(query.limit(limit)))
    return [desktop_view(r, settings.temporal_ui_url, settings.temporal_namespace) for r in rows]


@router.get("/{desktop_id}", response_model=DesktopDetail)
def get_desktop(desktop_id: str, access: AccessDep, engine: EngineDep, settings: SettingsDep) -> DesktopDetail:
    row = desktop_for(access, engine, desktop_id)
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.desktop_id == desktop_id).order_by(col(AuditEvent.id))
        ).all()
    view = desktop_view(row, settings.temporal_ui_url, settings.temporal_namespace)
    return DesktopDetail(
        **view.model_dump(),
        events=[DesktopEvent(at=e.at.isoformat(), action=e.action, actor=e.actor) for e in events],
    )


@router.post("/{desktop_id}/events", status_code=status.HTTP_202_ACCEPTED)
async def agent_event(
    desktop_id: str,
    event: AgentEvent,
    temporal: TemporalDep,
    settings: SettingsDep,
    x_desktop_secret: Annotated[str, Header(max_length=128)],
) -> dict[str, str]:
    """From the in-guest agent or a gateway: connect, disconnect, logoff, idle, active, ready.
    Authenticated by the desktop's own secret (in its server metadata), not by a user."""
    key = settings.secret_key_bytes()
    if key is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "agent events are off: no DESKPOOL_SECRET_KEY set")
    if not agent_secret_matches(key, desktop_id, x_desktop_secret):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "x-desktop-secret: not this desktop's secret")
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    await handle.signal(DesktopWorkflow.session_event, SessionEvent(kind=event.kind))
    return {"status": "accepted"}
