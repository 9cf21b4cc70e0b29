from __future__ import annotations

import threading

from activities.cloud_rate import TokenBucket


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
