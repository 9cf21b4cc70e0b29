"""Who is calling, and may they: the dependencies every protected route declares.

A caller proves who they are with `Authorization: Bearer <token>` (a session
token from POST /auth/login, or an administrator's API token) or with the
portal's session cookie. Routes then ask `require(access, action, target)`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.store.models import PoolRecord, RoleGrant
from api.auth.roles import Access, Action, Grant, Principal, PrincipalKind, Role, ScopeKind, Target
from api.auth.tokens import SessionTokens, api_token_owner, is_api_token
from api.deps import DirectoryDep, EngineDep, SettingsDep

SESSION_COOKIE = "deskpool_session"
_bearer = HTTPBearer(auto_error=False, description="a session token from POST /auth/login, or an API token")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="the portal's session cookie")


def unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def get_tokens(request: Request) -> SessionTokens:
    tokens: SessionTokens = request.app.state.tokens
    return tokens


async def current_principal(
    engine: EngineDep,
    directory: DirectoryDep,
    tokens: Annotated[SessionTokens, Depends(get_tokens)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    token = bearer.credentials if bearer is not None else cookie
    if not token:
        raise unauthenticated("authentication required: sign in with POST /auth/login, send Authorization: Bearer")
    if not is_api_token(token):
        principal = tokens.verify(token)
        if principal is None:
            raise unauthenticated("token invalid or expired: sign in again")
        return principal
    owner = await run_in_threadpool(api_token_owner, engine, token)
    if owner is None:
        raise unauthenticated("API token invalid, revoked or expired")
    # An API token acts for its owner with the groups the directory gives them now.
    user = await directory.lookup_user(owner)
    if user is None:
        raise unauthenticated(f"API token owner {owner} is no longer an active directory user")
    return Principal(user.username, frozenset(user.groups), user.display_name, via_api_token=True)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def load_grants(engine: Engine) -> list[Grant]:
    with Session(engine) as session:
        rows = session.exec(select(RoleGrant)).all()
    return [grant_of(row) for row in rows]


def grant_of(row: RoleGrant) -> Grant:
    return Grant(Role(row.role), PrincipalKind(row.principal_kind), row.principal, ScopeKind(row.scope_kind), row.scope)


async def current_access(principal: PrincipalDep, engine: EngineDep, settings: SettingsDep) -> Access:
    grants = await run_in_threadpool(load_grants, engine)
    return Access.of(principal, grants, settings.super_users, settings.super_groups)


AccessDep = Annotated[Access, Depends(current_access)]


def pool_target(record: PoolRecord) -> Target:
    region = record.spec.get("region")
    return Target(record.id, str(record.spec.get("cloud", "")), str(region) if region else None)


def require(access: Access, action: Action, target: Target | None = None) -> None:
    """403 naming who, what and where, when the caller's roles do not allow it."""
    if access.permits(action, target):
        return
    where = f" on pool {target.pool_id}" if target and target.pool_id else ""
    where = where or (f" on cloud {target.cloud}" if target and target.cloud else "")
    raise HTTPException(
        status.HTTP_403_FORBIDDEN, f"forbidden: {access.principal.username} may not {action.value}{where}"
    )
