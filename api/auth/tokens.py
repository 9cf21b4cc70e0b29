"""Session tokens (signed, expiring JWTs via PyJWT) and administrators' API tokens (stored hashed).

Session tokens carry the user's groups as the directory reported them at
sign-in, so a request needs no directory round trip; they expire after
`session_ttl_s` and a new sign-in picks up group changes. API tokens are
random 256-bit secrets: a fast SHA-256 of such a secret cannot be reversed
or guessed, so a slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import Engine
from sqlmodel import Session

from activities.store.models import ApiToken
from api.auth.roles import Principal

ALGORITHM = "HS256"
AUDIENCE = "deskpool"
API_TOKEN_PREFIX = "dpat"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class SessionTokens:
    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self._ttl = timedelta(seconds=ttl_s)

    def issue(self, principal: Principal, now: datetime | None = None) -> IssuedToken:
        issued_at = now or datetime.now(UTC)
        expires_at = issued_at + self._ttl
        claims = {
            "sub": principal.username,
            "name": principal.display_name,
            "groups": sorted(principal.groups),
            "aud": AUDIENCE,
            "iat": issued_at,
            "exp": expires_at,
        }
        return IssuedToken(jwt.encode(claims, self._key, algorithm=ALGORITHM), expires_at)

    def verify(self, token: str) -> Principal | None:
        """The token's principal, or None when it is forged, expired or malformed."""
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError:
            return None
        groups = claims.get("groups", [])
        if not isinstance(claims["sub"], str) or not isinstance(groups, list):
            return None
        return Principal(claims["sub"], frozenset(str(g) for g in groups), str(claims.get("name", "")))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_token(engine: Engine, owner: str, name: str, days: int | None) -> tuple[ApiToken, str]:
    """A new token for `owner`; the plaintext is returned once and never stored."""
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(days=days) if days else None
    row = ApiToken(id=token_id, name=name, owner=owner, secret_sha256=_digest(secret), expires_at=expires_at)
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row, f"{API_TOKEN_PREFIX}_{token_id}_{secret}"


def api_token_owner(engine: Engine, token: str) -> str | None:
    """The owner of a valid, unexpired API token, or None."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != API_TOKEN_PREFIX or not token_id or not secret or len(token_id) > 32:
        return None
    with Session(engine) as session:
        row = session.get(ApiToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    if row.expires_at is not None and _aware(row.expires_at) <= datetime.now(UTC):
        return None
    return row.owner


def _aware(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_api_token(token: str) -> bool:
    return token.startswith(f"{API_TOKEN_PREFIX}_")
