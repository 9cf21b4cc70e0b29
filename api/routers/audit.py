"""The audit log: who did what to which pool or desktop, when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import Session, col, select

from activities.store.models import AuditEvent, PoolRecord
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action
from api.deps import EngineDep

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditView(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    pool_id: str | None
    desktop_id: str | None
    detail: dict[str, Any]


@router.get("", response_model=list[AuditView])
def list_events(
    access: AccessDep,
    engine: EngineDep,
    pool: Annotated[str | None, Query(max_length=64)] = None,
    desktop: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[AuditView]:
    """Newest first. Super users see everything; pool administrators the events of their pools."""
    if not access.administers_anything():
        require(access, Action.VIEW_AUDIT)
    query = select(AuditEvent).order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
    for column, value in ((AuditEvent.pool_id, pool), (AuditEvent.desktop_id, desktop),
                          (AuditEvent.actor, actor), (AuditEvent.action, action)):  # fmt: skip
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    with Session(engine) as session:
        if not access.is_super:
            pools = session.exec(select(PoolRecord)).all()
            visible = [p.id for p in pools if access.permits(Action.VIEW_AUDIT, pool_target(p))]
            query = query.where(col(AuditEvent.pool_id).in_(visible))
        rows = session.exec(query.limit(limit)).all()
    return [
        AuditView(
            id=r.id or 0,
            at=r.at,
            actor=r.actor,
            action=r.action,
            pool_id=r.pool_id,
            desktop_id=r.desktop_id,
            detail=r.detail,
        )
        for r in rows
    ]
