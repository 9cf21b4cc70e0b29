"""Per-cloud concurrency limits for the slow cloud operations, within one worker process.

A build (create until ACTIVE) and a deletion (delete until gone) each hold a
slot of their cloud for their whole duration, so a login storm or a recreate
never has more than `builds` servers building or `deletes` being deleted per
cloud from this worker (the anchors' defaults: 30 and 15). With N workers the
cloud sees at most N times that; size the limits for your worker count.
Waiting for a slot heartbeats, so Temporal knows the activity is alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from temporalio import activity

from activities.heartbeats import beat

SLOT_POLL_S = 1.0


class CloudLimits:
    def __init__(self, builds: int = 30, deletes: int = 15) -> None:
        self._sizes = {"build": builds, "delete": deletes}
        self._semaphores: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._in_use: dict[tuple[str, str], int] = {}
        self.peak: dict[tuple[str, str], int] = {}

    def _semaphore(self, cloud: str, kind: str) -> threading.BoundedSemaphore:
        with self._lock:
            key = (cloud, kind)
            if key not in self._semaphores:
                self._semaphores[key] = threading.BoundedSemaphore(self._sizes[kind])
            return self._semaphores[key]

    def usage(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(cloud, kind) -> (slots in use, limit), for every cloud used so far (the worker's metrics)."""
        with self._lock:
            return {key: (self._in_use.get(key, 0), self._sizes[key[1]]) for key in self._semaphores}

    @contextmanager
    def slot(self, cloud: str, kind: str, heartbeat: Callable[[str], None] | None = None) -> Iterator[None]:
        beat = heartbeat or _heartbeat
        semaphore = self._semaphore(cloud, kind)
        while not semaphore.acquire(timeout=SLOT_POLL_S):
            beat(f"waiting for a {kind} slot of cloud {cloud}")
        key = (cloud, kind)
        with self._lock:
            self._in_use[key] = self._in_use.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self._in_use[key])
        try:
            yield
        finally:
            with self._lock:
                self._in_use[key] -= 1
            semaphore.release()


def _heartbeat(detail: str) -> None:
    if activity.in_activity():
        beat(detail)
