"""One listing of the cloud serves every wait of a worker process.

Each wait (a build until ACTIVE, a power change, a rebuild) used to ask the cloud for its
own server every second: 30 builds in flight meant 30 GETs a second, which the worker's
cloud rate limit (20/s by default) turned into the ceiling of how fast a pool refills
(docs/benchmarks.md, B3). Now the waits of one cloud project share a `ServerWatch`: at most
one `changes-since` listing of deskpool's servers per `interval_s`, whatever the number of
waits, and a direct GET only for a server the watch has not fetched for `recheck_s` (its
first look, and to notice a server that vanished: a deleted server leaves the listing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from activities.cloud_driver import CloudDriver, ServerInfo
from activities.cloud_errors import call

# How far back each listing reaches before the previous one began: clocks of the worker
# and the cloud differ, and a change must not fall between two listings.
SINCE_MARGIN_S = 2.0
# How long a look waits for a listing another thread has under way, before it settles for what
# the last listing said (a listing may take up to a request's timeout; the look must heartbeat).
LISTING_WAIT_S = 2.0
# Looks wake this long after a listing falls due, so the first of them finds it due.
WAKE_AFTER_DUE_S = 0.005


@dataclass
class _Entry:
    info: ServerInfo | None
    fetched_at: float  # when a direct GET (or the create) last answered for it
    asked_at: float  # when a wait last asked: entries nobody asks about are dropped


class ServerWatch:
    def __init__(
        self,
        interval_s: float = 0.5,
        recheck_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self.recheck_s = recheck_s
        self._clock = clock
        self._wall = wall_clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._listing = threading.Lock()
        # When the last listing began, whether it answered or failed: one attempt per interval,
        # so a cloud that fails listings is not asked again by every wait in the line.
        self._listed_at = float("-inf")
        self._since: float | None = None
        self.listings = 0

    def note(self, info: ServerInfo) -> None:
        """What the cloud just said about a server (the answer to its create)."""
        now = self._clock()
        with self._lock:
            self._entries[info.id] = _Entry(info, now, now)

    def forget(self, server_id: str) -> None:
        """After asking the cloud to act on the server: its next look is a GET, as what the watch
        holds (ACTIVE, say, before a reboot) would end the wait before the action has begun."""
        with self._lock:
            self._entries.pop(server_id, None)

    def current(self, server_id: str, driver: CloudDriver) -> ServerInfo | None:
        """The server as the cloud last described it, no older than about `interval_s`; None once gone."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(server_id)
            if entry is not None:
                entry.asked_at = now
        if entry is None or now - entry.fetched_at >= self.recheck_s:
            info = call(lambda: driver.get(server_id))
            with self._lock:
                self._entries[server_id] = _Entry(info, self._clock(), now)
            return info
        if now - self._listed_at >= self.interval_s or self._listing.locked():
            self._refresh(driver)
        with self._lock:
            return self._entries[server_id].info

    def next_look_in(self) -> float:
        """Seconds until the next listing falls due: a wait sleeps that long, so all waits of the
        project wake together, one lists and the others take in its answer at once. (Each sleeping
        its own interval, a change reached its wait ~0.5 s after the cloud made it, on average:
        the listing's age plus the wait's own phase. Every build slot was held that much longer.)"""
        return max(0.0, self._listed_at + self.interval_s - self._clock()) + WAKE_AFTER_DUE_S

    def _refresh(self, driver: CloudDriver) -> None:
        # One thread lists; the others wait for its answer (not long: see LISTING_WAIT_S) rather
        # than read what the listing before said and sleep a whole interval on it.
        if not self._listing.acquire(timeout=LISTING_WAIT_S):
            return
        try:
            if self._clock() - self._listed_at < self.interval_s:
                return
            started, began_wall = self._clock(), self._wall()
            self._listed_at = started
            # The first listing reaches back over every entry a GET may have fetched meanwhile.
            since = self._since if self._since is not None else began_wall - SINCE_MARGIN_S - self.recheck_s
            changed = call(lambda: driver.list_changed(since))
            with self._lock:
                for info in changed:
                    entry = self._entries.get(info.id)
                    # A GET answered after this listing began knows better than the listing.
                    if entry is not None and entry.fetched_at <= started:
                        entry.info = info
                self._drop_unasked(started)
            self._since = began_wall - SINCE_MARGIN_S
            self.listings += 1
        finally:
            self._listing.release()

    def _drop_unasked(self, now: float) -> None:
        stale = [sid for sid, e in self._entries.items() if now - e.asked_at > 2 * self.recheck_s]
        for server_id in stale:
            del self._entries[server_id]


class ServerWatches:
    """A watch per (cloud, region, project): a listing is scoped to one project."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self._watches: dict[tuple[str, str | None, str | None], ServerWatch] = {}
        self._lock = threading.Lock()

    def of(self, cloud: str, region: str | None, project_id: str | None) -> ServerWatch:
        with self._lock:
            key = (cloud, region, project_id)
            if key not in self._watches:
                self._watches[key] = ServerWatch(self.interval_s)
            return self._watches[key]
