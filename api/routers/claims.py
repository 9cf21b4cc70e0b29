"""Connect: a user's claim on a pool, answered with a desktop or a place in line."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status
from sqlmodel import Session, col, select

from activities.directory import CachedDirectory, DirectoryUnavailable
from activities.store.models import DesktopRecord, PoolRecord
from api.auth.deps import AccessDep, pool_target
from api.auth.roles import Access, Action
from api.deps import ClaimBoardDep, DirectoryDep, EngineDep, GatewayDep
from api.pool_service import load_pool
from workflows.messages import ClaimOutcome, ClaimRequest, ClaimStatus
from workflows.pool_spec import entitlement_from_json

router = APIRouter(prefix="/pools/{pool_id}/claims", tags=["claims"])
HELD_STATES = ("starting", "assigned", "connected", "disconnected")
STATUS_CODES = {
    ClaimStatus.ASSIGNED: status.HTTP_200_OK,
    ClaimStatus.WAITING: status.HTTP_202_ACCEPTED,
    ClaimStatus.REJECTED: status.HTTP_409_CONFLICT,
    ClaimStatus.EXPIRED: status.HTTP_410_GONE,
    ClaimStatus.ENDED: status.HTTP_410_GONE,
}


@router.post(
    "",
    response_model=ClaimOutcome,
    responses={202: {"model": ClaimOutcome}, 409: {"model": ClaimOutcome}, 410: {"model": ClaimOutcome}},
)
async def claim(
    pool_id: str,
    access: AccessDep,
    gateway: GatewayDep,
    engine: EngineDep,
    directory: DirectoryDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ClaimOutcome:
    """Claim a desktop. Send an `Idempotency-Key` header: a retried request with the
    same key never takes a second desktop. 200 assigned, 202 waiting in line
    (poll `GET .../claims/{request_id}`), 403 not entitled, 409 rejected, 410 ended,
    503 overloaded or directory unavailable (retry)."""
    user = access.principal.username
    await require_entitlement(pool_id, access, engine, directory)
    request_id = idempotency_key or uuid.uuid4().hex
    outcome = await gateway.claim(pool_id, ClaimRequest(user=user, request_id=request_id))
    response.status_code = STATUS_CODES[outcome.status]
    return outcome


async def require_entitlement(pool_id: str, access: Access, engine: EngineDep, directory: DirectoryDep) -> None:
    """Only users the pool's entitlement resolves to, or who hold its user role, may claim (answers are cached)."""
    record = load_pool(engine, pool_id)
    user = access.principal.username
    try:
        entitled = await may_use(access, record, directory)
    except DirectoryUnavailable:
        # A directory outage must not cost anyone the desktop they already hold.
        if _holds_desktop(engine, pool_id, user):
            return
        raise
    if not entitled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"user: {user} is not entitled to pool {pool_id}")


async def may_use(access: Access, record: PoolRecord, directory: CachedDirectory) -> bool:
    """The user role on the pool, or the pool's own entitlement (resolved through the cache)."""
    if access.permits(Action.USE_POOL, pool_target(record)):
        return True
    result = await directory.resolve_entitlement(entitlement_from_json(record.spec))
    return result.includes(access.principal.username)


def _holds_desktop(engine: EngineDep, pool_id: str, user: str) -> bool:
    query = select(DesktopRecord).where(
        DesktopRecord.pool_id == pool_id, DesktopRecord.user == user, col(DesktopRecord.state).in_(HELD_STATES)
    )
    with Session(engine) as session:
        return session.exec(query).first() is not None


@router.get("/{request_id}", response_model=ClaimOutcome)
async def claim_status(
    pool_id: str, request_id: str, access: AccessDep, engine: EngineDep, board: ClaimBoardDep
) -> ClaimOutcome:
    """Where a claim stands: assigned, waiting with its place in line, or ended. Callers see their own claims."""
    target = pool_target(load_pool(engine, pool_id))
    outcome = await board.status(pool_id, request_id)
    if (
        outcome.user
        and outcome.user != access.principal.username
        and not access.permits(Action.OPERATE_DESKTOPS, target)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"claim {request_id} not found")
    return outcome
