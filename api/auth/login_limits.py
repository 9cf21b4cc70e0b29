"""Failed sign-ins are rate limited per username and per client address (the `limits` library).

Only failures count (a wrong username or password): a user who signs in correctly a
hundred times is never slowed, and a correct sign-in clears that user's failures. Once
a rule is full, every attempt it covers — a correct password too, or guessing would go
on and learn the password from the one 200 — answers 429 with `Retry-After` and the
rule's name, until the oldest failure leaves the window (a moving window).

- per user: `login_max_failures_per_user` failures of one username (case-insensitive)
  from anywhere, in `login_failure_window_s` — stops guessing one account's password;
- per address: `login_max_failures_per_address` failures from one client address, for
  any usernames — stops password spraying across many accounts.

The address is the one uvicorn gives the request: behind a reverse proxy, uvicorn takes it
from `X-Forwarded-For` only when the proxy's address is in its `FORWARDED_ALLOW_IPS`
(environment; default 127.0.0.1), so set that to the proxy's address or every user shares
the proxy's. The counters live in the API process's memory: with N API processes behind a
balancer an attacker gets up to N times the budget.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from api.settings import ApiSettings


@dataclass(frozen=True)
class _Rule:
    name: str  # what the 429 says: "per user" / "per address"
    item: RateLimitItem | None  # None: the rule is off


class LoginLimiter:
    def __init__(self, per_user: int, per_address: int, window_s: int) -> None:
        self._window_s = window_s
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        # Attempts being checked right now, per rule and key.
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._user = _Rule("per user", RateLimitItemPerSecond(per_user, window_s, "login-user") if per_user else None)
        self._address = _Rule(
            "per address", RateLimitItemPerSecond(per_address, window_s, "login-address") if per_address else None
        )

    @classmethod
    def of(cls, settings: ApiSettings) -> LoginLimiter:
        return cls(
            settings.login_max_failures_per_user,
            settings.login_max_failures_per_address,
            settings.login_failure_window_s,
        )

    @asynccontextmanager
    async def attempt(self, username: str, address: str) -> AsyncIterator[None]:
        """One sign-in attempt: 429 naming the rule when the user's or the address's failures, with
        the attempts still being checked, fill the window. Attempts in flight count, so a burst of
        parallel guesses gets no more answers than the rule allows."""
        rules = [(rule, key) for rule, key in self._keys(username, address) if rule.item is not None]
        stats = [await self._limiter.get_window_stats(rule.item, key) for rule, key in rules if rule.item]
        # No await from here until the in-flight counts are taken: racing attempts see each other.
        for (rule, key), window in zip(rules, stats, strict=True):
            pending = self._in_flight[(rule.name, key)]
            if window.remaining - pending > 0:
                continue
            retry_after = 1 if window.remaining > 0 else max(1, int(window.reset_time - time.time()) + 1)
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many failed sign-ins {rule.name}: at most {rule.item.amount if rule.item else 0} in "
                f"{self._window_s} s; try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        for rule, key in rules:
            self._in_flight[(rule.name, key)] += 1
        try:
            yield
        finally:
            for rule, key in rules:
                self._in_flight[(rule.name, key)] -= 1
                if not self._in_flight[(rule.name, key)]:
                    del self._in_flight[(rule.name, key)]

    def _keys(self, username: str, address: str) -> tuple[tuple[_Rule, str], tuple[_Rule, str]]:
        return (self._user, _user_key(username)), (self._address, address)

    async def failed(self, username: str, address: str) -> None:
        """Count a failed attempt (inside its `attempt` block, so it is never counted twice or not at all)."""
        for rule, key in self._keys(username, address):
            if rule.item is not None:
                await self._limiter.hit(rule.item, key)

    async def succeeded(self, username: str) -> None:
        """The account's own failures are forgiven; the address's stay (a sprayer may own one account)."""
        if self._user.item is not None:
            await self._limiter.clear(self._user.item, _user_key(username))


def _user_key(username: str) -> str:
    # Directory names compare case-insensitively: "Alice" and "alice" share one budget.
    return username.strip().casefold()


def client_address(request: Request) -> str:
    """The caller's address as uvicorn resolved it (proxy headers from trusted proxies only)."""
    return request.client.host if request.client else "unknown"


def get_login_limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


LoginLimiterDep = Annotated[LoginLimiter, Depends(get_login_limiter)]
