"""Roles: granted on a pool, a cloud[/region] or the whole system, only to existing directory users and groups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from activities.store.models import PoolRecord, RoleGrant
from api.audit_log import record_action
from api.auth.deps import AccessDep, grant_of, pool_target
from api.auth.roles import Access, Action, Grant, PrincipalKind, Role, ScopeKind, Target, validate_grant
from api.deps import DirectoryDep, EngineDep

router = APIRouter(prefix="/roles", tags=["roles"])


class GrantBody(BaseModel):
    role: Role
    principal_kind: PrincipalKind
    principal: str = Field(min_length=1, max_length=256, description="a directory user or group name")
    scope_kind: ScopeKind
    scope: str = Field(default="", max_length=128, description="pool id, 'cloud' or 'cloud/region'; empty: system")


class GrantView(GrantBody):
    id: int | None = None
    granted_by: str = ""
    granted_at: datetime | None = None


def grant_views(grants: list[Grant]) -> list[GrantView]:
    return [
        GrantView(
            role=g.role, principal_kind=g.principal_kind, principal=g.principal, scope_kind=g.scope_kind, scope=g.scope
        )
        for g in grants
    ]


def _view(row: RoleGrant) -> GrantView:
    return GrantView(
        id=row.id,
        role=Role(row.role),
        principal_kind=PrincipalKind(row.principal_kind),
        principal=row.principal,
        scope_kind=ScopeKind(row.scope_kind),
        scope=row.scope,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
    )


def _may_manage(access: Access, grant: Grant, session: Session) -> bool:
    """Pool administrators hand out roles on their pools; everything wider is the super user's."""
    if grant.scope_kind is not ScopeKind.POOL or grant.role is Role.SUPER_USER:
        return access.permits(Action.MANAGE_ROLES)
    pool = session.get(PoolRecord, grant.scope)
    return access.permits(Action.MANAGE_USERS, pool_target(pool) if pool else Target(pool_id=grant.scope))


@router.get("", response_model=list[GrantView])
def list_grants(
    access: AccessDep,
    engine: EngineDep,
    principal: Annotated[str | None, Query(max_length=256)] = None,
    scope_kind: ScopeKind | None = None,
    scope: Annotated[str | None, Query(max_length=128)] = None,
) -> list[GrantView]:
    """The grants the caller may manage (a super user: all of them)."""
    query = select(RoleGrant).order_by(col(RoleGrant.id))
    if principal is not None:
        query = query.where(RoleGrant.principal == principal)
    if scope_kind is not None:
        query = query.where(RoleGrant.scope_kind == scope_kind.value)
    if scope is not None:
        query = query.where(RoleGrant.scope == scope)
    with Session(engine) as session:
        rows = session.exec(query).all()
        return [_view(r) for r in rows if _may_manage(access, grant_of(r), session)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GrantView)
async def grant_role(body: GrantBody, access: AccessDep, engine: EngineDep, directory: DirectoryDep) -> GrantView:
    grant = Grant(body.role, body.principal_kind, body.principal, body.scope_kind, body.scope.strip())
    problem = validate_grant(grant)
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    with Session(engine) as session:
        if grant.scope_kind is ScopeKind.POOL and session.get(PoolRecord, grant.scope) is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"scope: no pool {grant.scope}")
        if not _may_manage(access, grant, session):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"forbidden: {access.principal.username} may not grant this")
    # Roles go only to users and groups that exist in the directory (oVirt seed).
    exists = (
        await directory.user_exists(grant.principal)
        if grant.principal_kind is PrincipalKind.USER
        else await directory.group_exists(grant.principal)
    )
    if not exists:
        kind = grant.principal_kind.value
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"principal: no {kind} {grant.principal!r} in the directory"
        )
    row = RoleGrant(
        role=grant.role.value,
        principal_kind=grant.principal_kind.value,
        principal=grant.principal,
        scope_kind=grant.scope_kind.value,
        scope=grant.scope,
        granted_by=access.principal.username,
    )
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError as err:
            raise HTTPException(status.HTTP_409_CONFLICT, "role: this grant exists already") from err
        session.refresh(row)
    pool_id = grant.scope if grant.scope_kind is ScopeKind.POOL else None
    record_action(
        engine, access.principal.username, "role.granted", pool_id=pool_id, detail=body.model_dump(mode="json")
    )
    return _view(row)


@router.delete("/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_role(grant_id: Annotated[int, Path(ge=1, le=2**31 - 1)], access: AccessDep, engine: EngineDep) -> None:
    with Session(engine) as session:
        row = session.get(RoleGrant, grant_id)
        if row is None or not _may_manage(access, grant_of(row), session):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"grant {grant_id} not found")
        detail = _view(row).model_dump(mode="json")
        session.delete(row)
        session.commit()
    pool_id = detail["scope"] if detail["scope_kind"] == "pool" else None
    record_action(engine, access.principal.username, "role.revoked", pool_id=pool_id, detail=detail)
