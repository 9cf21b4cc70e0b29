from __future__ import annotations

import threading

from activities.cloud_rate import TokenBucket, rate_limited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=10, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.now == 0.0  # the burst needs no wait
    for _ in range(20):
        bucket.acquire()
    assert abs(clock.now - 2.0) < 1e-6  # 20 more at 10/s take two seconds
    assert abs(bucket.waited_s - 2.0) < 1e-6


def test_one_bucket_limits_all_threads_together() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=5, burst=1, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now >= (20 - 1) / 5 - 1e-6  # 20 operations, one free, at 5/s


def test_rate_limited_driver_takes_a_token_per_operation() -> None:
    calls: list[str] = []

    class Driver:
        def get(self, server_id: str) -> str:
            calls.append(server_id)
            return server_id

    clock = Clock()
    bucket = TokenBucket(rate_per_s=1, burst=1, clock=clock, sleep=clock.sleep)
    driver = rate_limited(Driver(), bucket)  # type: ignore[arg-type]
    assert [driver.get(x) for x in ("a", "b", "c")] == ["a", "b", "c"]  # type: ignore[attr-defined]
    assert calls == ["a", "b", "c"] and abs(clock.now - 2.0) < 1e-6
