"""Sign-in with directory credentials: a signed, expiring session token (and the portal's cookie);
administrators' API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, SecretStr
from sqlmodel import Session, col, select

from activities.directory import InvalidCredentials
from activities.store.models import ApiToken
from api.auth.deps import SESSION_COOKIE, AccessDep, PrincipalDep, get_tokens
from api.auth.login_limits import LoginLimiterDep, client_address
from api.auth.roles import Principal
from api.auth.tokens import SessionTokens, create_api_token
from api.deps import DirectoryDep, EngineDep, SettingsDep
from api.routers.roles import GrantView, grant_views

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=1024)


class SignedInUser(BaseModel):
    username: str
    display_name: str
    email: str
    groups: list[str]


class LoginResult(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: SignedInUser


class Me(BaseModel):
    username: str
    display_name: str
    groups: list[str]
    super_user: bool
    grants: list[GrantView]


@router.post(
    "/login",
    response_model=LoginResult,
    responses={401: {"description": "wrong credentials"}, 403: {"description": "account locked or disabled"},
               429: {"description": "too many failed sign-ins for this user or address (Retry-After)"},
               503: {"description": "directory unavailable"}},
)  # fmt: skip
async def login(
    body: LoginBody,
    directory: DirectoryDep,
    settings: SettingsDep,
    tokens: Annotated[SessionTokens, Depends(get_tokens)],
    limiter: LoginLimiterDep,
    request: Request,
    response: Response,
) -> LoginResult:
    """Search the user's DN with the service account, bind as the user, issue a session token.
    Failed attempts are limited per user and per address (429 with Retry-After); successes never count."""
    address = client_address(request)
    async with limiter.attempt(body.username, address):
        try:
            user = await directory.authenticate(body.username, body.password.get_secret_value())
        except InvalidCredentials:
            await limiter.failed(body.username, address)
            raise
    await limiter.succeeded(body.username)
    principal = Principal(user.username, frozenset(user.groups), user.display_name)
    issued = tokens.issue(principal)
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(settings.session_ttl_s),
        httponly=True,
        secure=settings.cookie_secure,
        # Strict: the cookie never rides on a request another site starts (no CSRF).
        samesite="strict",
    )
    signed_in = SignedInUser(
        username=user.username, display_name=user.display_name, email=user.email, groups=sorted(user.groups)
    )
    return LoginResult(token=issued.token, expires_at=issued.expires_at, user=signed_in)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(response: Response) -> None:
    """Forget the portal's cookie. Bearer tokens simply expire."""
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")


@router.get("/me", response_model=Me)
def me(access: AccessDep) -> Me:
    who = access.principal
    return Me(
        username=who.username,
        display_name=who.display_name,
        groups=sorted(who.groups),
        super_user=access.is_super,
        grants=grant_views(access.grants),
    )


class TokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="null: never expires")


class TokenView(BaseModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime | None


class NewToken(TokenView):
    token: str = Field(description="shown once; only its hash is stored")


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def create_token(body: TokenBody, access: AccessDep, engine: EngineDep) -> NewToken:
    """API tokens are for administrators' scripts; plain users sign in."""
    if not access.administers_anything():
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forbidden: API tokens are for administrators")
    if access.principal.via_api_token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forbidden: an API token cannot make more tokens")
    row, plaintext = await run_in_threadpool(
        create_api_token, engine, access.principal.username, body.name, body.expires_in_days
    )
    return NewToken(id=row.id, name=row.name, created_at=row.created_at, expires_at=row.expires_at, token=plaintext)


@router.get("/tokens", response_model=list[TokenView])
def list_tokens(principal: PrincipalDep, engine: EngineDep) -> list[TokenView]:
    with Session(engine) as session:
        rows = session.exec(
            select(ApiToken).where(ApiToken.owner == principal.username).order_by(col(ApiToken.created_at))
        ).all()
    return [TokenView(id=r.id, name=r.name, created_at=r.created_at, expires_at=r.expires_at) for r in rows]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, access: AccessDep, engine: EngineDep) -> None:
    """Owners revoke their own tokens; a super user revokes anyone's."""
    with Session(engine) as session:
        row = session.get(ApiToken, token_id)
        if row is None or (row.owner != access.principal.username and not access.is_super):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"token {token_id} not found")
        session.delete(row)
        session.commit()
