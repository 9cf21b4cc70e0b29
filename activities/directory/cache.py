"""Entitlement answers cached with a TTL and refreshed in the background.

A login storm asks the same few entitlements thousands of times: concurrent
askers of one entitlement share one directory query (single flight), a fresh
answer is served from memory, and an answer close to its TTL is served while a
background task refreshes it. That refresh starts when the answer is read in
its last `refresh_ahead_s`, or from the refresher (`start_refresher`), which
renews answers that were read since they were fetched so busy pools never
wait; answers nobody reads simply expire. While the directory is down an
expired answer is served a while longer (`stale_if_error_s`), so already
entitled users keep their desktops; a directory error reaches the caller only
when no answer is left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cachetools import TTLCache

from activities.directory.errors import DirectoryUnavailable
from activities.directory.model import Directory, DirectoryUser, EntitlementResult, entitlement_key
from activities.directory.settings import DirectorySettings
from workflows.pool_spec import Entitlement

log = logging.getLogger(__name__)


@dataclass
class _Cached:
    entitlement: Entitlement
    result: EntitlementResult
    fetched_at: float
    read_since_fetch: bool = False


class CachedDirectory:
    """A Directory in front of another; only entitlement answers are cached
    (never a login, and existence checks are rare administrator actions)."""

    def __init__(
        self,
        inner: Directory,
        *,
        ttl_s: float,
        refresh_ahead_s: float,
        stale_if_error_s: float = 0.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= refresh_ahead_s < ttl_s:
            raise ValueError("refresh_ahead_s must be at least 0 and below ttl_s")
        self.inner = inner
        self._ttl = ttl_s
        self._refresh_at = ttl_s - refresh_ahead_s
        self._clock = clock
        # Entries live until the stale window ends; freshness is judged by fetched_at.
        self._entries: TTLCache[Hashable, _Cached] = TTLCache(max_entries, ttl_s + stale_if_error_s, timer=clock)
        self._in_flight: dict[Hashable, asyncio.Task[EntitlementResult]] = {}
        self._background: set[asyncio.Task[EntitlementResult]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, inner: Directory, settings: DirectorySettings) -> CachedDirectory:
        return cls(
            inner,
            ttl_s=settings.cache_ttl_s,
            refresh_ahead_s=settings.cache_refresh_ahead_s,
            stale_if_error_s=settings.cache_stale_if_error_s,
            max_entries=settings.cache_max_entries,
        )

    async def resolve_entitlement(self, entitlement: Entitlement) -> EntitlementResult:
        key = entitlement_key(entitlement)
        cached = self._entries.get(key)
        if cached is not None:
            cached.read_since_fetch = True
            if self._clock() - cached.fetched_at < self._ttl:
                if self._clock() - cached.fetched_at >= self._refresh_at:
                    self._refresh_in_background(key, entitlement)
                return cached.result
        try:
            return await asyncio.shield(self._in_flight.get(key) or self._fetch(key, entitlement))
        except DirectoryUnavailable as exc:
            if cached is None:
                raise
            age = self._clock() - cached.fetched_at
            log.warning("directory unavailable, serving an entitlement answer %.0fs old: %s", age, exc)
            return cached.result

    def refresh_due(self) -> int:
        """Start a background refresh of every answer in its refresh window that was
        read since it was fetched; returns how many were started."""
        now = self._clock()
        started = 0
        for key, cached in list(self._entries.items()):
            if cached.read_since_fetch and self._refresh_at <= now - cached.fetched_at < self._ttl:
                started += self._refresh_in_background(key, cached.entitlement)
        return started

    def start_refresher(self, interval_s: float) -> None:
        """Call `refresh_due` every `interval_s` until `close` (from the process's event loop)."""

        async def refresh_forever() -> None:
            while True:
                await asyncio.sleep(interval_s)
                self.refresh_due()

        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(refresh_forever())

    def invalidate(self) -> None:
        self._entries.clear()

    async def authenticate(self, username: str, password: str) -> DirectoryUser:
        return await self.inner.authenticate(username, password)

    async def user_exists(self, username: str) -> bool:
        return await self.inner.user_exists(username)

    async def group_exists(self, name: str) -> bool:
        return await self.inner.group_exists(name)

    async def lookup_user(self, username: str) -> DirectoryUser | None:
        return await self.inner.lookup_user(username)

    async def find_users(self, prefix: str, limit: int = 20) -> list[DirectoryUser]:
        return await self.inner.find_users(prefix, limit)

    async def close(self) -> None:
        tasks: list[asyncio.Task[object]] = [*self._background, *self._in_flight.values()]
        if self._refresher is not None:
            tasks.append(self._refresher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.inner.close()

    def _refresh_in_background(self, key: Hashable, entitlement: Entitlement) -> bool:
        if key in self._in_flight:
            return False
        task = self._fetch(key, entitlement)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return True

    def _fetch(self, key: Hashable, entitlement: Entitlement) -> asyncio.Task[EntitlementResult]:
        """One task per key at a time: every concurrent asker awaits the same one."""

        async def fetch() -> EntitlementResult:
            try:
                result = await self.inner.resolve_entitlement(entitlement)
                self._entries[key] = _Cached(entitlement, result, self._clock())
                return result
            finally:
                self._in_flight.pop(key, None)

        task = asyncio.get_running_loop().create_task(fetch())
        self._in_flight[key] = task
        return task

    def _background_done(self, task: asyncio.Task[EntitlementResult]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The old answer stays until it expires; the next asker tries again.
            log.warning("background entitlement refresh failed: %s", task.exception())
