"""What every chaos scenario shares: its size, its result, a storm of users, killing and restarting
processes of the stack, and the embedded cloud's admin API.

A storm is `users` signed-in users each claiming a desktop of one floating pool with an
`Idempotency-Key`, like the portal's Connect button: 200 a desktop, 202 a place in line (polled),
503 a clear "come back" (retried after Retry-After with the same key), a dropped connection
(the API killed) retried with the same key. A served user's in-guest agent reports `connect`
with the desktop's own secret, holds it a moment, reports `disconnect`; the pool's retention
then expires and the desktop is destroyed and replaced (refill). Every answer is recorded, so
the invariants can tell a served claim from a lost one (a 500, or no answer at all: a hang).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from activities.agent_secret import agent_secret
from bench.harness import BenchStack, bench_stack, create_pool, password_of, pool_spec, wait_ready
from tools.run import ROOT


@dataclass(frozen=True)
class Scale:
    """How big a run is: `SHORT` inside `make test`, `FULL` for `make chaos`."""

    name: str
    users: int  # C1's storm (the issue's 1,000 at full size)
    storm_users: int  # the other scenarios' storms
    max_desktops: int
    prestarted: int
    faults: int  # kills (C1), restarts, bursts
    hold_s: float  # how long a served user keeps the session before disconnecting
    retention_s: int  # the pool's disconnected retention: then the desktop is destroyed
    outage_s: float  # C3 cloud outage, C4 database outage, C5 directory outage
    claim_deadline_s: float  # a claim with no final answer by then is a hang
    converge_s: float  # the convergence invariant: every pool at its targets this soon after the last fault


SHORT = Scale("short", users=16, storm_users=16, max_desktops=6, prestarted=3, faults=2, hold_s=0.5, retention_s=1,
              outage_s=6, claim_deadline_s=150, converge_s=150)  # fmt: skip
FULL = Scale("full", users=1000, storm_users=300, max_desktops=60, prestarted=20, faults=20, hold_s=2.0, retention_s=2,
             outage_s=60, claim_deadline_s=180, converge_s=60)  # fmt: skip
# C4's outage is 30 s at full scale (the issue's figure).
DATABASE_OUTAGE_FULL_S = 30.0

# What every chaos stack runs with: a reconciler sweeping every 5 s and judging orphans after 10 s,
# so a leaked server would be seen (and removed) within the run instead of after the defaults' minutes.
CHAOS_ENV = {
    "DESKPOOL_RECONCILE_INTERVAL_S": "5",
    "DESKPOOL_ORPHAN_GRACE_S": "10",
    # One address signs in everybody: the failure limit must not be what a scenario measures.
    "DESKPOOL_LOGIN_MAX_FAILURES_PER_ADDRESS": "0",
}
CLOUD_DELAYS = {"build": 0.5, "delete": 0.2, "start": 0.1, "stop": 0.1, "reboot": 0.1, "rebuild": 0.2}


@dataclass
class ClaimRecord:
    user: str
    request_id: str
    outcome: str = "pending"  # served | rejected | gave_up_503 | server_error | hang
    desktop_ids: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0


@dataclass
class ScenarioResult:
    id: str
    title: str
    scale: str
    faults: list[str] = field(default_factory=list)
    claims: dict[str, int] = field(default_factory=dict)
    invariants: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.invariants) and all(self.invariants.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


class FaultLog:
    """Faults as they are injected, with their time (seconds since the scenario began)."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.entries: list[str] = []
        self.last_fault_end = self.began
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self.entries.append(f"{time.monotonic() - self.began:6.1f}s {what}")

    def ended(self) -> None:
        """The last fault is over: convergence is counted from here."""
        self.last_fault_end = time.monotonic()


# --- processes --------------------------------------------------------------------------


def live(bench: BenchStack, name: str) -> subprocess.Popen[bytes]:
    for entry_name, process in bench.stack.processes:
        if entry_name == name and process.poll() is None:
            return process
    raise RuntimeError(f"no running process {name!r}")


def kill(bench: BenchStack, name: str) -> subprocess.Popen[bytes]:
    """SIGKILL: no goodbye, no flush, as a power cut would. The entry leaves the stack's list."""
    process = live(bench, name)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    bench.stack.processes[:] = [(n, p) for n, p in bench.stack.processes if p is not process]
    return process


def restart(bench: BenchStack, name: str, dead: subprocess.Popen[bytes], extra_env: dict[str, str]) -> None:
    """The same command line and settings again, logging to the same file."""
    stack = bench.stack
    logs = stack.data / "logs"
    with open(logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            list(dead.args),  # type: ignore[arg-type]
            cwd=ROOT,
            env={**stack.env, **extra_env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    stack.processes.append((name, process))


def worker_names(bench: BenchStack) -> list[str]:
    return [name for name, process in bench.stack.processes if name.startswith("worker") and process.poll() is None]


# A restarted worker serves no /metrics: its old port may still be held by a sibling's.
WORKER_RESTART_ENV = {"DESKPOOL_METRICS_PORT": "0"}


# --- the embedded cloud's admin API --------------------------------------------------------


def cloud_admin(bench: BenchStack, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{bench.cloud_url}/_admin/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def set_faults(bench: BenchStack, **faults: Any) -> None:
    cloud_admin(bench, "POST", "faults", faults)


# --- the storm ----------------------------------------------------------------------------


@dataclass
class Storm:
    """Users claiming, using and leaving desktops of one pool; `run` returns when every claim has
    its final answer (or was judged a hang)."""

    bench: BenchStack
    pool_id: str
    tokens: dict[str, str]
    scale: Scale
    tag: str
    concurrency: int = 64
    records: dict[str, ClaimRecord] = field(default_factory=dict)
    served_at: list[float] = field(default_factory=list)
    ends_at: float = float("inf")
    # When the last user was done (monotonic): the load is over from here.
    finished_at: float = 0.0

    async def run(self) -> None:
        # However the pool fares (a stuck one answers 503 for ever), the storm ends: a user still
        # without a final answer then is a hang; one who never got to press Connect is "not_started".
        self.ends_at = time.monotonic() + 3 * self.scale.claim_deadline_s
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency + 8, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.bench.base_url, timeout=60, limits=limits) as client:

            async def one(user: str) -> None:
                async with gate:
                    await self._user(client, user)

            await asyncio.gather(*(one(u) for u in self.tokens))
        self.finished_at = time.monotonic()

    async def _call(
        self, client: httpx.AsyncClient, record: ClaimRecord, method: str, url: str, deadline: float, **kw: Any
    ) -> httpx.Response | None:
        """One request, retried through dropped connections (a killed API) and 503s until the deadline."""
        while time.monotonic() < deadline:
            try:
                response = await client.request(method, url, **kw)
            except httpx.TransportError:
                record.transport_errors += 1
                await asyncio.sleep(0.5 + random.random())
                continue
            record.statuses[response.status_code] += 1
            if response.status_code == 503:
                await asyncio.sleep(float(response.headers.get("retry-after", "1")) * (0.5 + random.random()))
                continue
            return response
        return None

    async def _user(self, client: httpx.AsyncClient, user: str) -> None:
        request_id = f"{self.tag}-{user}"
        record = self.records[user] = ClaimRecord(user, request_id)
        auth = {"Authorization": f"Bearer {self.tokens[user]}"}
        if time.monotonic() >= self.ends_at:
            record.outcome = "not_started"
            return
        deadline = min(time.monotonic() + self.scale.claim_deadline_s, self.ends_at)
        claim_url = f"/pools/{self.pool_id}/claims"
        response = await self._call(
            client, record, "POST", claim_url, deadline, headers={**auth, "Idempotency-Key": request_id}
        )
        while response is not None and response.status_code == 202:
            await asyncio.sleep(0.5)
            response = await self._call(client, record, "GET", f"{claim_url}/{request_id}", deadline, headers=auth)
            if response is not None and response.status_code == 200 and response.json()["status"] == "waiting":
                response.status_code = 202
        if response is None:
            record.outcome = "gave_up_503" if record.statuses[503] else "hang"
            return
        if response.status_code >= 500:
            record.outcome = "server_error"
            return
        body = response.json()
        if response.status_code != 200 or body.get("status") != "assigned" or not body.get("desktop_id"):
            record.outcome = "rejected"
            return
        desktop_id = str(body["desktop_id"])
        record.desktop_ids.add(desktop_id)
        record.outcome = "served"
        self.served_at.append(time.monotonic())
        await self._use(client, record, desktop_id, deadline)

    async def _use(self, client: httpx.AsyncClient, record: ClaimRecord, desktop_id: str, deadline: float) -> None:
        """The in-guest agent: connect with the desktop's own secret, a short session, disconnect."""
        secret = agent_secret(self.bench.stack.secret_key.encode(), desktop_id)
        headers = {"X-Desktop-Secret": secret}
        url = f"/desktops/{desktop_id}/events"
        for kind in ("connect", "disconnect"):
            answer = await self._call(client, record, "POST", url, deadline + 120, json={"kind": kind}, headers=headers)
            if answer is None or answer.status_code >= 500:
                record.outcome = "server_error" if answer is not None else "hang"
                return
            if kind == "connect":
                await asyncio.sleep(self.scale.hold_s)

    def claim_counts(self) -> dict[str, int]:
        outcomes = Counter(r.outcome for r in self.records.values())
        statuses: Counter[int] = Counter()
        for record in self.records.values():
            statuses.update(record.statuses)
        return {
            "users": len(self.tokens),
            "served": outcomes["served"],
            **{k: v for k, v in sorted(outcomes.items()) if k != "served"},
            "answers_503": statuses[503],
            "answers_5xx_other": sum(n for s, n in statuses.items() if s >= 500 and s != 503),
            "dropped_connections_retried": sum(r.transport_errors for r in self.records.values()),
        }


def sign_in_users(bench: BenchStack, users: list[str], concurrency: int = 16) -> dict[str, str]:
    """Session tokens through the real login endpoint (retried while the API is not there yet)."""

    async def all_of_them() -> dict[str, str]:
        gate = asyncio.Semaphore(concurrency)
        tokens: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=bench.base_url, timeout=60) as client:

            async def one(user: str) -> None:
                async with gate:
                    for _ in range(20):
                        try:
                            answer = await client.post(
                                "/auth/login", json={"username": user, "password": password_of(user)}
                            )
                        except httpx.TransportError:
                            await asyncio.sleep(1)
                            continue
                        if answer.status_code == 200:
                            tokens[user] = answer.json()["token"]
                            return
                        await asyncio.sleep(1)
                    raise RuntimeError(f"{user} could not sign in")

            await asyncio.gather(*(one(u) for u in users))
        return tokens

    return asyncio.run(all_of_them())


def in_background(target: Callable[[], None]) -> threading.Thread:
    """A fault injector beside the storm; its exception is re-raised by `join_checked`."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to join_checked
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def join_checked(thread: threading.Thread) -> None:
    thread.join()
    errors: list[BaseException] = thread.errors  # type: ignore[attr-defined]
    if errors:
        raise errors[0]


# --- a stack and a pool for a scenario -------------------------------------------------------


@contextmanager
def chaos_stack(
    root: Path,
    scale: Scale,
    *,
    workers: int = 1,
    faults: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    users: int | None = None,
) -> Iterator[BenchStack]:
    cloud = {"delays": CLOUD_DELAYS, "faults": faults or {}, "random_seed": 7}
    environment = {**CHAOS_ENV, **(env or {})}
    with bench_stack(root, users=scale.storm_users if users is None else users, workers=workers, cloud=cloud,
                     env=environment) as bench:  # fmt: skip
        yield bench


def sqlite_url(bench: BenchStack) -> str:
    return f"sqlite:///{bench.stack.data / 'deskpool.db'}"


def floating_pool(bench: BenchStack, scale: Scale, name: str) -> str:
    """A floating pool of the generated users, destroyed after use, at its reserve before the storm."""
    spec = pool_spec(name, prestarted=scale.prestarted, max_desktops=scale.max_desktops,
                     timers={"disconnected_retention_s": scale.retention_s})  # fmt: skip
    admin = bench.admin()
    try:
        pool_id = create_pool(admin, spec)
        wait_ready(admin, pool_id, scale.prestarted, timeout_s=180)
    finally:
        admin.close()
    return pool_id


def storm(bench: BenchStack, pool_id: str, tokens: dict[str, str], scale: Scale, tag: str) -> Storm:
    running = Storm(bench, pool_id, tokens, scale, tag)
    asyncio.run(running.run())
    return running


def judge(
    result: ScenarioResult,
    bench: BenchStack,
    pool_ids: list[str],
    storms: list[Storm],
    faults: FaultLog,
    scale: Scale,
    database_url: str | None = None,
) -> None:
    from bench.chaos.invariants import check

    # A pool cannot be back at its reserve while a storm bigger than the pool goes on: the clock
    # for convergence starts at the later of the last fault's end and the storm's.
    load_end = max([faults.last_fault_end] + [s.finished_at for s in storms])
    verdict = check(bench, pool_ids, storms, database_url or sqlite_url(bench), load_end, scale.converge_s)
    result.faults = faults.entries
    result.claims = storms[0].claim_counts() if len(storms) == 1 else {}
    result.invariants.update(verdict.invariants)
    converged_at = verdict.converged_at
    result.details["storm_outlasted_faults_s"] = round(load_end - faults.last_fault_end, 1)
    result.details["converged_after_last_fault_s"] = (
        None if converged_at is None else round(converged_at - faults.last_fault_end, 1)
    )
    result.details["converged_after_faults_and_storm_s"] = (
        None if converged_at is None else round(converged_at - load_end, 1)
    )
    if verdict.problems:
        result.details["problems"] = verdict.problems
    stats = cloud_admin(bench, "GET", "stats")
    result.details["cloud"] = {k: stats[k] for k in ("creates", "deletes", "faults_injected", "servers_total",
                                                      "peak_requests_per_second")}  # fmt: skip
    result.details["tracebacks_in_logs"] = tracebacks(bench)


def tracebacks(bench: BenchStack) -> dict[str, int]:
    """Python tracebacks in the deskpool processes' logs (a crash or an unhandled error)."""
    found = {}
    for log in sorted((bench.stack.data / "logs").glob("*.log")):
        if log.stem in ("api", "cloud") or log.stem.startswith("worker"):
            count = log.read_text(errors="replace").count("Traceback (most recent call last)")
            if count:
                found[log.stem] = count
    return found
