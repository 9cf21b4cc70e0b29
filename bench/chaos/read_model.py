"""C4: the read-model database is unavailable during a storm; workflows go on, projections catch up
afterwards, read endpoints answer meanwhile with a clear 503 (never a 500).

- PostgreSQL: a database of the scenario's own on the machine's server (127.0.0.1:5432); the
  outage is `ALTER DATABASE … ALLOW_CONNECTIONS false` plus terminating its sessions, so every
  connection deskpool tries is refused until it is allowed again (the server itself keeps running).
- SQLite: a file has no server to lose; its outage is another process holding the database's
  write lock (BEGIN IMMEDIATE) — a long backup or a stuck writer. Writers wait (busy_timeout 30 s)
  and then fail; readers keep reading the last committed state (WAL), so reads may answer 200.

"Workflows go on" is measured in the cloud with a probe: a user who holds a desktop before the
outage has their agent report `disconnect` once it has begun (agent events go to Temporal, not to the
database); the pool's retention expires and the desktop must be destroyed — its server gone from the
cloud — before the database is back. The cloud's creates and deletes during the outage are reported.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from activities.agent_secret import agent_secret
from bench.chaos.common import (
    DATABASE_OUTAGE_FULL_S,
    FaultLog,
    Scale,
    ScenarioResult,
    chaos_stack,
    cloud_admin,
    floating_pool,
    in_background,
    join_checked,
    judge,
    sign_in_users,
    sqlite_url,
    storm,
)
from bench.harness import BenchStack

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _outage_s(scale: Scale) -> float:
    # At least 12 s: with SQLite each projection attempt waits out its 1 s busy timeout before it
    # backs off, and the probe's desktop projects three transitions on its way to deletion.
    return DATABASE_OUTAGE_FULL_S if scale.name == "full" else max(scale.outage_s, 12.0)


@contextmanager
def _postgres_database() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A throwaway database, and a switch that refuses (False) or allows (True) connections to it."""
    name = f"deskpool_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

        def allow(on: bool) -> None:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(on).lower()}')
            if not on:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}", allow
        finally:
            allow(True)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _c4(
    root: Path, scale: Scale, backend: str, database_url: str | None, outage: Callable[[float], None]
) -> ScenarioResult:
    result = ScenarioResult(f"C4-{backend}", f"read-model database ({backend}) unavailable during a storm", scale.name)
    began = time.monotonic()
    env = {"DESKPOOL_DATABASE_URL": database_url} if database_url else {}
    outage_s = _outage_s(scale)
    with chaos_stack(root, scale, env=env) as bench:
        pool_id = floating_pool(bench, scale, f"ChaosDb{backend[:2]}")
        tokens = sign_in_users(bench, bench.users)
        probe_user = bench.users[0]
        probe = _hold(bench, pool_id, probe_user, tokens.pop(probe_user))
        faults = FaultLog()
        reads: Counter[int] = Counter()
        cloud_work: dict[str, Any] = {"creates_and_deletes_during_outage": 0}

        def inject() -> None:
            time.sleep(1.0)
            before = cloud_admin(bench, "GET", "stats")
            faults.add(f"read model unavailable for {outage_s:.0f} s")
            watcher = in_background(lambda: _read_while(bench, reads, outage_s))
            prober = in_background(lambda: _release_during(bench, probe, outage_s, cloud_work))
            outage(outage_s)
            join_checked(watcher)
            join_checked(prober)
            faults.add("read model back")
            after = cloud_admin(bench, "GET", "stats")
            cloud_work["creates_and_deletes_during_outage"] = (
                after["creates"] + after["deletes"] - before["creates"] - before["deletes"]
            )
            faults.ended()

        injector = in_background(inject)
        storms = [storm(bench, pool_id, tokens, scale, f"c4{backend[:2]}")]
        join_checked(injector)
        judge(result, bench, [pool_id], storms, faults, scale, database_url or sqlite_url(bench))
        result.details["read_answers_during_outage"] = dict(sorted(reads.items()))
        result.details.update(cloud_work)
        result.invariants["workflows_went_on"] = cloud_work["probe_server_deleted_during_outage"]
        never_500 = not any(s == 0 or (s >= 500 and s != 503) for s in reads)  # 0: no answer
        if backend == "postgresql":
            result.invariants["reads_answer_503_meanwhile"] = never_500 and reads[503] > 0
        else:
            result.invariants["reads_never_500_meanwhile"] = never_500 and sum(reads.values()) > 0
    result.seconds = round(time.monotonic() - began, 1)
    return result


def _hold(bench: BenchStack, pool_id: str, user: str, token: str) -> dict[str, str]:
    """The probe: `user` holds a connected desktop of the pool; its desktop and server ids."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=bench.base_url, timeout=60, headers=auth) as client:
        answer = client.post(f"/pools/{pool_id}/claims", headers={"Idempotency-Key": f"probe-{user}"})
        deadline = time.monotonic() + 120
        while answer.json().get("status") != "assigned" and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = client.get(f"/pools/{pool_id}/claims/probe-{user}")
        desktop_id = str(answer.json()["desktop_id"])
        secret = agent_secret(bench.stack.secret_key.encode(), desktop_id)
        sent = client.post(f"/desktops/{desktop_id}/events", json={"kind": "connect"},
                           headers={"X-Desktop-Secret": secret})  # fmt: skip
        sent.raise_for_status()
        server_id = ""
        while not server_id and time.monotonic() < deadline:
            server_id = client.get(f"/desktops/{desktop_id}").json().get("server_id") or ""
            time.sleep(0.2)
    return {"desktop_id": desktop_id, "server_id": server_id, "secret": secret}


def _release_during(bench: BenchStack, probe: dict[str, str], outage_s: float, seen: dict[str, Any]) -> None:
    """Once the outage has begun, the probe's agent reports disconnect; watch its server in the cloud."""
    time.sleep(0.5)
    until = time.monotonic() + outage_s - 0.5
    began = time.monotonic()
    answer = httpx.post(f"{bench.base_url}/desktops/{probe['desktop_id']}/events", json={"kind": "disconnect"},
                        headers={"X-Desktop-Secret": probe["secret"]}, timeout=60)  # fmt: skip
    seen["probe_disconnect_answer"] = answer.status_code
    seen["probe_server_deleted_during_outage"] = False
    while time.monotonic() < until:
        servers = cloud_admin(bench, "GET", "servers")["servers"]
        if all(server["id"] != probe["server_id"] for server in servers):
            seen["probe_server_deleted_during_outage"] = True
            seen["probe_server_deleted_after_s"] = round(time.monotonic() - began, 1)
            return
        time.sleep(0.3)


def _read_while(bench: BenchStack, reads: Counter[int], seconds: float) -> None:
    """An administrator's screens during the outage: the pool list and the desktop list."""
    admin = bench.admin()
    try:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for path in ("/pools", "/desktops"):
                try:
                    reads[admin.get(path, timeout=60).status_code] += 1
                except httpx.TimeoutException:
                    reads[0] += 1  # no answer at all: counted as a hang
            time.sleep(0.5)
    finally:
        admin.close()


def c4_postgresql(root: Path, scale: Scale) -> ScenarioResult:
    with _postgres_database() as (url, allow):

        def outage(seconds: float) -> None:
            allow(False)
            time.sleep(seconds)
            allow(True)

        return _c4(root, scale, "postgresql", url, outage)


def c4_sqlite(root: Path, scale: Scale) -> ScenarioResult:
    database = root / "deskpool.db"

    def outage(seconds: float) -> None:
        locker = sqlite3.connect(database, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN IMMEDIATE")
            time.sleep(seconds)
            locker.execute("ROLLBACK")
        finally:
            locker.close()

    return _c4(root, scale, "sqlite", None, outage)
