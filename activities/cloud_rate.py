"""A per-cloud rate limit on the HTTP requests sent to a cloud, shared by every thread of a process.

A login storm or a recreate must never flood a cloud's API. Every HTTP request
takes a token first, at the transport under openstacksdk and keystoneauth, so a
driver operation of several requests and keystoneauth's own retries all count;
when the bucket is empty the caller waits. The limit is per process (a worker,
or the API for its own cloud reads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter


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


class RateLimitedTransport(HTTPAdapter):
    """requests' transport with a token taken before every HTTP request it sends.

    Mounted on an openstacksdk connection's session, it sees each request on the wire: the
    lookups a create makes, Keystone's token requests, and every retry keystoneauth makes of a
    429 or 503 by itself (which an operation-level limit never saw: docs/reliability.md, finding 3).
    """

    def __init__(self, bucket: TokenBucket) -> None:
        super().__init__()
        self._bucket = bucket

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self._bucket.acquire()
        return super().send(request, *args, **kwargs)


def limit_requests(session: requests.Session, bucket: TokenBucket) -> None:
    """Every HTTP request of this session, whatever its URL, takes a token from `bucket` first."""
    transport = RateLimitedTransport(bucket)
    session.mount("http://", transport)
    session.mount("https://", transport)


# Tokens go at this share of the configured rate. Between its token and the wire a request may
# wait (for the GIL, a connection, the network) and then reach the cloud bunched with later ones:
# at 90 %, `rate + 1` tokens span 1.11 s, so no second of the cloud's clock sees more than `rate`
# requests unless their delays differ by more than 111 ms (finding 3: at 100 %, 11 for 10).
SEND_SHARE = 0.9


def request_bucket(requests_per_s: float, **clock: Any) -> TokenBucket:
    """A bucket of one: requests at least 1/(0.9 rate) apart, so no second of the cloud's clock
    sees more than `requests_per_s` of them (a fuller bucket would let a burst double that)."""
    return TokenBucket(requests_per_s * SEND_SHARE, burst=1, **clock)
