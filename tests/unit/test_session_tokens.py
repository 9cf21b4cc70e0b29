"""Session tokens: signed and expiring (PyJWT); forged, expired or foreign tokens are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from api.auth.roles import Principal
from api.auth.tokens import SessionTokens

KEY = b"k" * 32
ALICE = Principal("alice", frozenset({"callcentre", "staff"}), "Alice Archer")


def test_issued_token_verifies_to_the_same_principal() -> None:
    tokens = SessionTokens(KEY, ttl_s=60)
    issued = tokens.issue(ALICE)
    assert tokens.verify(issued.token) == ALICE
    assert issued.expires_at > datetime.now(UTC)


def test_expired_token_is_refused() -> None:
    tokens = SessionTokens(KEY, ttl_s=60)
    old = tokens.issue(ALICE, now=datetime.now(UTC) - timedelta(minutes=5))
    assert tokens.verify(old.token) is None


def test_token_signed_with_another_key_is_refused() -> None:
    forged = SessionTokens(b"x" * 32, ttl_s=60).issue(ALICE)
    assert SessionTokens(KEY, ttl_s=60).verify(forged.token) is None


def test_tampered_or_unsigned_tokens_are_refused() -> None:
    tokens = SessionTokens(KEY, ttl_s=60)
    good = tokens.issue(ALICE).token
    header, payload, signature = good.split(".")
    assert tokens.verify(f"{header}.{payload}.{signature[::-1]}") is None
    claims = {"sub": "mallory", "aud": "deskpool", "exp": datetime.now(UTC) + timedelta(hours=1)}
    unsigned = jwt.encode(claims, key="", algorithm="none")
    assert tokens.verify(unsigned) is None
    assert tokens.verify("not a token") is None


def test_token_for_another_audience_is_refused() -> None:
    claims = {"sub": "alice", "aud": "someone-else", "exp": datetime.now(UTC) + timedelta(hours=1)}
    assert SessionTokens(KEY, ttl_s=60).verify(jwt.encode(claims, KEY, algorithm="HS256")) is None
