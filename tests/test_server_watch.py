"""The worker starts afresh when the Temporal server goes away (worker/server_watch.py, finding 5).

A real dev server on its own database file is SIGKILLed and started again on the same file and port,
as in chaos scenario C2 (which runs the pools through it: tests/chaos).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.cloud import CloudActivities
from activities.cloud_limits import CloudLimits
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from tests.engine import counts, eventually, spec, start_pool
from tests.fakes import FakeCloud
from tests.served_api import free_port
from tools.run import SQLITE_PRAGMAS
from tools.temporal_binaries import temporal_cli
from worker.main import build_worker
from worker.server_watch import ServerWatch, serve_until_server_lost
from worker.settings import WorkerSettings
from workflows.search_attributes import dev_server_flags

ROOT = Path(__file__).resolve().parents[1]


def _start_server(port: int, db: Path) -> subprocess.Popen[bytes]:
    command = [temporal_cli(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
               "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--db-filename", str(db),
               "--log-level", "error", *SQLITE_PRAGMAS, *dev_server_flags()]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the Temporal dev server did not listen within 60 s")


@pytest.fixture
def server_files(tmp_path: Path) -> Iterator[tuple[int, Path, list[subprocess.Popen[bytes]]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield free_port(), tmp_path / "temporal.db", started
    for server in started:
        server.kill()
        server.wait()


async def test_watch_tells_a_dead_server_from_a_live_one(server_files) -> None:
    port, db, started = server_files
    started.append(_start_server(port, db))
    watch = ServerWatch(await Client.connect(f"127.0.0.1:{port}"), interval_s=0.05)
    assert await watch.reachable()
    started[0].kill()
    started[0].wait()
    await asyncio.wait_for(watch.until_lost(), timeout=10)
    assert not await watch.reachable()
    started.append(_start_server(port, db))
    assert await watch.reachable()


async def test_server_loss_is_reported_at_once_and_the_worker_left_running(server_files, tmp_path: Path) -> None:
    port, db, started = server_files
    started.append(_start_server(port, db))
    client = await Client.connect(f"127.0.0.1:{port}")
    database_url = f"sqlite:///{tmp_path / 'deskpool.db'}"
    upgrade(database_url)
    settings = WorkerSettings(task_queue=f"watch-{uuid.uuid4().hex[:8]}", database_url=database_url)
    cloud = CloudActivities(FakeCloud().driver, sleep=lambda _s: time.sleep(0.005), limits=CloudLimits(30, 15))
    lost = asyncio.Event()
    with ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(client, settings, executor, engine=make_engine(database_url), cloud=cloud)
        serving = asyncio.create_task(serve_until_server_lost(worker, ServerWatch(client, interval_s=0.05), lost.set))
        pool = await start_pool(client, settings.task_queue, spec(max_desktops=4, prestarted=2))
        assert (await eventually(lambda: counts(pool), lambda c: c.ready == 2)).ready == 2
        assert not lost.is_set() and not serving.done()  # a live server: nothing to report
        started[0].kill()
        started[0].wait()
        await asyncio.wait_for(lost.wait(), timeout=10)
        await asyncio.wait_for(serving, timeout=5)  # it returned: the caller decides what happens next
        assert worker.is_running  # not shut down: a graceful shutdown would go on serving from the cache
        started.append(_start_server(port, db))
        await worker.shutdown()


def _worker_env(port: int, data: Path) -> dict[str, str]:
    return {**os.environ, "DESKPOOL_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "DESKPOOL_DATABASE_URL": f"sqlite:///{data / 'deskpool.db'}", "DESKPOOL_METRICS_PORT": "0",
            "DESKPOOL_TASK_QUEUE": f"watch-{uuid.uuid4().hex[:8]}", "DESKPOOL_CLOUDS_YAML": str(data / "clouds.yaml"),
            "DESKPOOL_SECRET_KEY": "x" * 32}  # fmt: skip


def test_worker_process_starts_afresh_in_place_after_a_server_restart(server_files, tmp_path: Path) -> None:
    port, db, started = server_files
    started.append(_start_server(port, db))
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "worker"], env=_worker_env(port, tmp_path), stdout=log,
                                  stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
    try:
        assert _wait_for_lines(log_path, "worker polling", 1) == 1
        started[0].kill()
        started[0].wait()
        assert _wait_for_lines(log_path, "restarts with an empty workflow cache", 1) == 1
        time.sleep(1)
        started.append(_start_server(port, db))
        assert _wait_for_lines(log_path, "worker polling", 2) == 2, log_path.read_text()[-2000:]
        assert worker.poll() is None  # the same process (pid) went on: nobody had to start it again
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _wait_for_lines(path: Path, text: str, count: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    found = 0
    while time.monotonic() < deadline:
        found = path.read_text(errors="replace").count(text)
        if found >= count:
            return found
        time.sleep(0.1)
    return found
