"""A per-cloud rate limit on cloud operations, shared by every thread of a worker.

A login storm or a recreate must never flood a cloud's API. Each driver
operation takes a token first (a find-or-create or a status poll is one
operation; openstacksdk may send one to three HTTP requests for it); when the
bucket is empty the caller waits. The limit is per worker process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # the driver module builds these; no import cycle at run time
    from activities.cloud_driver import CloudDriver


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate_per_s
        self._capacity = float(burst if burst is not None else max(1, int(rate_per_s)))
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                # A tolerance: 0.9999999 tokens must not ask for a wait too small to pass.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self._rate
            self.waited_s += wait
            self._sleep(wait)


class RateLimitedDriver:
    """The same driver, each operation behind the cloud's bucket."""

    def __init__(self, inner: CloudDriver, bucket: TokenBucket) -> None:
        self._inner = inner
        self._bucket = bucket

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def limited(*args: Any, **kwargs: Any) -> Any:
            self._bucket.acquire()
            return attribute(*args, **kwargs)

        return limited


def rate_limited(inner: CloudDriver, bucket: TokenBucket) -> CloudDriver:
    return cast("CloudDriver", RateLimitedDriver(inner, bucket))
