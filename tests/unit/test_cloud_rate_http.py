"""The rate limit is on HTTP requests: every request a session sends takes a token, retries too."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from keystoneauth1 import session as ks_session

from activities.cloud_rate import TokenBucket, limit_requests, request_bucket
from tests.unit.test_cloud_rate import Clock


class Cloud(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then 200; counts what it got."""

    seen = 0
    failures = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        code = 503 if type(self).seen <= type(self).failures else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cloud() -> Iterator[str]:
    Cloud.seen, Cloud.failures = 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Cloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/servers"
    server.shutdown()


def test_each_request_of_a_session_takes_a_token(cloud: str) -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=4, burst=1, clock=clock, sleep=clock.sleep)
    session = requests.Session()
    limit_requests(session, bucket)
    for _ in range(5):
        assert session.get(cloud, timeout=5).status_code == 200
    assert Cloud.seen == 5
    assert abs(clock.now - 1.0) < 1e-6  # one free, four more at 4/s


def test_keystoneauth_retries_of_503_take_tokens_too(cloud: str) -> None:
    """openstacksdk's sessions retry 429 and 503 inside keystoneauth: each retry is on the wire."""
    Cloud.failures = 2
    clock = Clock()
    bucket = TokenBucket(rate_per_s=10, burst=1, clock=clock, sleep=clock.sleep)
    session = ks_session.Session()
    limit_requests(session.session, bucket)
    answer = session.get(
        cloud, authenticated=False, status_code_retries=2, retriable_status_codes=[503], status_code_retry_delay=0.01
    )
    assert answer.status_code == 200
    assert Cloud.seen == 3
    assert abs(clock.now - 0.2) < 1e-6  # three requests: one free, two at 10/s


def test_a_bucket_of_one_never_lets_a_second_see_more_than_the_rate() -> None:
    """The cloud counts requests per second of its clock: with a bucket of one, requests are
    1/rate apart, so any such second holds at most `rate` of them (a full bucket of `rate`
    tokens would let it see nearly twice that)."""
    clock = Clock()
    bucket = request_bucket(10, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(95):
        bucket.acquire()
        times.append(clock.now + 0.05)  # seconds of the cloud's clock, not aligned to ours
    per_second: dict[int, int] = {}
    for t in times:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    assert max(per_second.values()) <= 10


def test_requests_delayed_on_their_way_still_reach_the_cloud_within_the_rate() -> None:
    """Each request reaches the cloud up to 100 ms after its token (threads, the GIL, the
    network): the bucket's headroom keeps every second of the cloud's clock within the rate."""
    rng = random.Random(3)
    clock = Clock()
    bucket = request_bucket(10, clock=clock, sleep=clock.sleep)
    per_second: dict[int, int] = {}
    for _ in range(400):
        bucket.acquire()
        arrival = clock.now + 0.05 + rng.uniform(0.0, 0.1)  # the cloud's clock is not aligned to ours
        per_second[int(arrival)] = per_second.get(int(arrival), 0) + 1
    assert max(per_second.values()) <= 10
    assert sum(per_second.values()) / (clock.now + 1) > 8.5  # the headroom costs ~10 %, not more
