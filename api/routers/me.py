"""A user's own view: one card per pool they may use, with what they hold or where they wait."""

from __future__ import annotations

import asyncio
from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import Session, col, select

from activities.store.models import DesktopRecord, PoolRecord
from api.auth.deps import AccessDep
from api.deps import DirectoryDep, EngineDep, TemporalDep
from api.routers.claims import may_use
from workflows.messages import ClaimStatus, UserClaimsInput, pool_workflow_id
from workflows.pool_workflow import PoolWorkflow

router = APIRouter(prefix="/me", tags=["me"])


class CardState(StrEnum):
    UNASSIGNED = "unassigned"
    PREPARING = "preparing"
    READY = "ready"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    WAITING = "waiting"


# The read model's desktop state, as the user's card shows it.
HELD = {
    "starting": CardState.PREPARING,
    "assigned": CardState.READY,
    "connected": CardState.CONNECTED,
    "disconnected": CardState.DISCONNECTED,
}


class DesktopCard(BaseModel):
    pool_id: str
    pool_name: str
    pool_description: str
    enabled: bool
    state: CardState
    desktop_id: str | None = None
    desktop_name: str | None = None
    request_id: str | None = None
    position: int | None = None


@router.get("/desktops", response_model=list[DesktopCard])
async def my_desktops(
    access: AccessDep, engine: EngineDep, directory: DirectoryDep, temporal: TemporalDep
) -> list[DesktopCard]:
    """Unassigned, preparing, ready, connected, disconnected, or waiting with a place in line."""
    user = access.principal.username
    with Session(engine) as session:
        pools = list(session.exec(select(PoolRecord).order_by(PoolRecord.name)))
        held = list(
            session.exec(
                select(DesktopRecord).where(DesktopRecord.user == user, col(DesktopRecord.state).in_(list(HELD)))
            )
        )
    allowed = await asyncio.gather(*(may_use(access, p, directory) for p in pools))
    by_pool = {d.pool_id: d for d in held}
    cards = await asyncio.gather(
        *(
            _card(p, by_pool.get(p.id), user, temporal)
            for p, ok in zip(pools, allowed, strict=True)
            if ok or p.id in by_pool
        )
    )
    return list(cards)


async def _card(pool: PoolRecord, desktop: DesktopRecord | None, user: str, temporal: TemporalDep) -> DesktopCard:
    card = DesktopCard(
        pool_id=pool.id,
        pool_name=pool.name,
        pool_description=str(pool.spec.get("description", "")),
        enabled=pool.enabled,
        state=CardState.UNASSIGNED,
    )
    if desktop is not None:
        card.state, card.desktop_id, card.desktop_name = HELD[desktop.state], desktop.id, desktop.name
        return card
    if pool.waiting == 0:
        return card  # nobody waits in this pool: no need to ask its workflow
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool.id))
    claims = (await handle.query(PoolWorkflow.user_claims, UserClaimsInput(user))).claims
    waiting = [c for c in claims if c.status is ClaimStatus.WAITING]
    if waiting:
        first = min(waiting, key=lambda c: c.position or 0)
        card.state = CardState.PREPARING if first.preparing else CardState.WAITING
        card.request_id, card.position = first.request_id, first.position
    return card
