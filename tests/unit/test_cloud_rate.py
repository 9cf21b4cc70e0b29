from __future__ import annotations

import threading
import time

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


def test_a_request_waiting_for_its_token_is_told_between_waits() -> None:
    """The worker heartbeats there (heartbeats.keep_alive): a long wait must not look like a dead attempt."""
    clock = Clock()
    bucket = TokenBucket(rate_per_s=2, burst=1, clock=clock, sleep=clock.sleep)
    told: list[float] = []
    bucket.acquire(lambda: told.append(clock.now))
    assert told == []  # a token was there: no wait
    bucket.acquire(lambda: told.append(clock.now))
    assert told == [0.0] and clock.now == 0.5  # told once, before its one wait


def line_up(bucket: TokenBucket, count: int, gives_up: int | None = None) -> list[int]:
    """`count` threads ask `bucket` for a token, one after another (each once the one before
    it is in line); `gives_up` is cancelled while it waits. Returns the order they got through."""
    through: list[int] = []

    def ask(i: int) -> None:
        def cancelled() -> None:
            if i == gives_up:
                raise RuntimeError("cancelled")  # as Temporal raises into a cancelled activity's thread

        try:
            bucket.acquire(cancelled)
        except RuntimeError:
            return
        through.append(i)

    threads = []
    for i in range(count):
        in_line = bucket._next_ticket + 1
        threads.append(threading.Thread(target=ask, args=(i,)))
        threads[-1].start()
        while bucket._next_ticket < in_line:
            time.sleep(0.001)
    for t in threads:
        t.join(timeout=10)
    return through


def test_waiters_are_served_in_the_order_they_came() -> None:
    """Racing waiters could starve one for 30 s (finding 9): the line is first come, first served."""
    bucket = TokenBucket(rate_per_s=200, burst=1)
    assert line_up(bucket, 12) == list(range(12))


def test_a_waiter_that_gives_up_does_not_hold_up_the_line() -> None:
    bucket = TokenBucket(rate_per_s=200, burst=1)
    assert line_up(bucket, 6, gives_up=2) == [0, 1, 3, 4, 5]


def test_a_long_wait_is_slept_in_pieces_and_counted_once() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=0.5, burst=1, clock=clock, sleep=clock.sleep)
    told: list[float] = []
    bucket.acquire()
    bucket.acquire(lambda: told.append(clock.now))
    assert told == [0.0, 1.0]  # two sleeps of at most a second, each after a word to the caller
    assert abs(clock.now - 2.0) < 1e-6 and abs(bucket.waited_s - 2.0) < 1e-6
