"""Per-cloud build and delete slots bound what one worker asks of a cloud at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from temporalio.testing import WorkflowEnvironment

from activities.cloud_limits import CloudLimits
from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud


def test_slots_never_exceed_their_size_and_are_per_cloud() -> None:
    limits = CloudLimits(builds=3, deletes=1)
    beats: list[str] = []
    running = {"a": 0, "b": 0}
    peaks = {"a": 0, "b": 0}
    lock = threading.Lock()

    def work(cloud: str) -> None:
        with limits.slot(cloud, "build", heartbeat=beats.append):
            with lock:
                running[cloud] += 1
                peaks[cloud] = max(peaks[cloud], running[cloud])
            time.sleep(0.02)
            with lock:
                running[cloud] -= 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, ["a"] * 12 + ["b"] * 12))
    assert peaks == {"a": 3, "b": 3}
    assert limits.peak[("a", "build")] == 3 and limits.peak[("b", "build")] == 3


def test_waiting_for_a_slot_heartbeats() -> None:
    limits = CloudLimits(builds=1)
    beats: list[str] = []
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with limits.slot("c", "build", heartbeat=beats.append):
            holder.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holder.wait(5)
    timer = threading.Timer(1.5, release.set)
    timer.start()
    with limits.slot("c", "build", heartbeat=beats.append):
        pass
    thread.join()
    assert beats and "waiting for a build slot of cloud c" in beats[0]


async def test_pool_fills_through_at_most_the_cloud_build_slots(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud(build_polls=20)
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud, builds=2) as (_worker, _):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=6, prestarted=6, min_desktops=0))
        filled = await eventually(lambda: counts(pool), lambda c: c.ready == 6, timeout_s=40)
    assert filled.ready == 6
    assert cloud.peak_building <= 2  # never more than two servers building at once
    assert cloud.created == 6
