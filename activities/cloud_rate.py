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
        # The line of waiters: tickets handed out, the one served next, those that gave up.
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self.waited_s = 0.0

    def acquire(self, while_waiting: Callable[[], None] | None = None) -> None:
        """Take a token, waiting for it if need be; `while_waiting` is called before each sleep
        (at most a second long), so a long wait can tell someone it is alive.

        Waiters are served in the order they came: each takes a ticket, and only the head of the
        line may take a token, when the bucket has one. (Waiters that all slept and then raced
        for the next token could lose that race again and again: after an outage, with every
        build thread queueing, a create took 32 s to reach the cloud, docs/reliability.md
        finding 9.) A token is taken only when its request goes, never booked ahead, so a waiter
        that wakes late (the GIL) cannot bunch with the ones after it.
        """
        with self._lock:
            ticket = self._next_ticket
            self._next_ticket += 1
        try:
            while True:
                with self._lock:
                    wait = self._take(ticket)
                if wait <= 0:
                    return
                if while_waiting is not None:
                    while_waiting()
                slept = min(wait, 1.0)
                self.waited_s += slept
                self._sleep(slept)
        except BaseException:
            with self._lock:  # cancelled while in line: the ones behind must not wait for it
                self._abandoned.add(ticket)
                self._skip_abandoned()
            raise

    def _take(self, ticket: int) -> float:
        """Under the lock: take a token for `ticket` (0 returned) or say how long to wait."""
        self._skip_abandoned()
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if ticket != self._serving:  # not at the head: at least one token's time per waiter ahead
            return (ticket - self._serving) / self._rate
        # A tolerance: 0.9999999 tokens must not ask for a wait too small to pass.
        if self._tokens >= 1 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            self._serving += 1
            return 0.0
        return (1 - self._tokens) / self._rate

    def _skip_abandoned(self) -> None:
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1


class CloudTransport(HTTPAdapter):
    """requests' transport with a token taken before every HTTP request it sends.

    Mounted on an openstacksdk connection's session, it sees each request on the wire: the
    lookups a create makes, Keystone's token requests, and every retry keystoneauth makes of a
    429 or 503 by itself (which an operation-level limit never saw: docs/reliability.md, finding 3).
    `before_send` runs before each request and while it waits for its token (the worker's
    activities heartbeat there: `heartbeats.keep_alive`).
    """

    def __init__(self, bucket: TokenBucket | None, before_send: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._bucket = bucket
        self._before_send = before_send

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if self._before_send is not None:
            self._before_send()
        if self._bucket is not None:
            self._bucket.acquire(self._before_send)
        return super().send(request, *args, **kwargs)


def limit_requests(
    session: requests.Session, bucket: TokenBucket | None, before_send: Callable[[], None] | None = None
) -> None:
    """Every HTTP request of this session, whatever its URL, takes a token from `bucket` first
    (none: no limit) and calls `before_send`."""
    transport = CloudTransport(bucket, before_send)
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
