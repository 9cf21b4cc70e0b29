"""Counters exposed by ``GET /_admin/stats`` (in memory, reset on restart)."""

from __future__ import annotations

import math
from collections import Counter, deque


class RequestStats:
    def __init__(self, now: float) -> None:
        self.started_at = now
        self.requests: Counter[str] = Counter()
        self.responses_by_status: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        # Server actions by name (os-start, reboot, ...), all one route.
        self.server_actions: Counter[str] = Counter()
        self.creates = 0
        # When each create was accepted (clock seconds), for benchmarks' reaction times.
        self.create_times: deque[float] = deque(maxlen=100_000)
        self.deletes = 0
        self.peak_concurrent_builds = 0
        self.peak_requests_per_second = 0
        # The busiest second's requests by client and operation ("deskpool-worker compute.servers.get"):
        # which process, doing what, went over a rate limit.
        self.peak_second: Counter[str] = Counter()
        # Each client's own busiest second (a rate limit is per client process).
        self.peak_by_client: Counter[str] = Counter()
        self._client_in_second: Counter[str] = Counter()
        # Requests seen in the current whole second (for the peak rate).
        self._second = math.floor(now)
        self._in_second: Counter[str] = Counter()

    def count_request(self, operation: str, now: float, client: str = "") -> None:
        self.requests[operation] += 1
        second = math.floor(now)
        if second != self._second:
            self._second, self._in_second, self._client_in_second = second, Counter(), Counter()
        client = client or "?"
        self._in_second[f"{client} {operation}"] += 1
        self._client_in_second[client] += 1
        self.peak_by_client[client] = max(self.peak_by_client[client], self._client_in_second[client])
        seen = self._in_second.total()
        if seen > self.peak_requests_per_second:
            self.peak_requests_per_second = seen
            self.peak_second = Counter(self._in_second)

    def count_response(self, status: int) -> None:
        self.responses_by_status[str(status)] += 1

    def count_fault(self, kind: str) -> None:
        self.faults_injected[kind] += 1

    def observe_builds(self, in_flight: int) -> None:
        self.peak_concurrent_builds = max(self.peak_concurrent_builds, in_flight)

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "uptime_seconds": round(now - self.started_at, 3),
            "requests_total": sum(self.requests.values()),
            "requests": dict(sorted(self.requests.items())),
            "responses_by_status": dict(sorted(self.responses_by_status.items())),
            "server_actions": dict(sorted(self.server_actions.items())),
            "faults_injected": dict(sorted(self.faults_injected.items())),
            "creates": self.creates,
            "deletes": self.deletes,
            "peak_concurrent_builds": self.peak_concurrent_builds,
            "peak_requests_per_second": self.peak_requests_per_second,
            "peak_second": dict(self.peak_second.most_common()),
            "peak_requests_per_second_by_client": dict(sorted(self.peak_by_client.items())),
        }


class SlidingWindowLimiter:
    """At most ``limit`` accepted requests in any trailing 1 s window."""

    def __init__(self) -> None:
        self._accepted: deque[float] = deque()

    def try_acquire(self, limit: float, now: float) -> float | None:
        """None if accepted, else seconds until a slot frees up."""
        while self._accepted and self._accepted[0] <= now - 1.0:
            self._accepted.popleft()
        if len(self._accepted) >= limit:
            return self._accepted[0] + 1.0 - now
        self._accepted.append(now)
        return None
