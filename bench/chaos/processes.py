"""C1, C2, C6: deskpool's processes die at random moments during a storm of claims.

- C1: two workers on one task queue; one of them is SIGKILLed `faults` times at random moments
  (refills and retention expiries under way) and started again a moment later.
- C2: the Temporal dev server is SIGKILLed mid-run and started again on the same `--db-filename`;
  the API and the workers reconnect by themselves (nobody restarts them).
- C6: the API is SIGKILLed during the storm and started again; clients retry what got no answer
  with the same `Idempotency-Key`, so nothing may be duplicated.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.chaos.common import (
    WORKER_RESTART_ENV,
    FaultLog,
    Scale,
    ScenarioResult,
    chaos_stack,
    floating_pool,
    in_background,
    join_checked,
    judge,
    kill,
    live,
    restart,
    sign_in_users,
    storm,
    worker_names,
)
from bench.harness import BenchStack
from tools.run import wait_for_port, wait_for_ready


def c1_worker_kills(root: Path, scale: Scale) -> ScenarioResult:
    result = ScenarioResult("C1", "SIGKILL a worker at random moments during a storm; two workers", scale.name)
    began = time.monotonic()
    with chaos_stack(root, scale, workers=2, users=scale.users) as bench:
        pool_id = floating_pool(bench, scale, "ChaosOne")
        tokens = sign_in_users(bench, bench.users)
        faults = FaultLog()
        rng = random.Random(1)

        def inject() -> None:
            for n in range(scale.faults):
                time.sleep(rng.uniform(0.5, 2.5))
                name = rng.choice(worker_names(bench))
                dead = kill(bench, name)
                faults.add(f"SIGKILL {name} (pid {dead.pid}), kill {n + 1} of {scale.faults}")
                time.sleep(rng.uniform(0.3, 1.5))
                restart(bench, name, dead, WORKER_RESTART_ENV)
                faults.add(f"{name} started again")
            faults.ended()

        injector = in_background(inject)
        storms = [storm(bench, pool_id, tokens, scale, "c1")]
        join_checked(injector)
        judge(result, bench, [pool_id], storms, faults, scale)
    result.seconds = round(time.monotonic() - began, 1)
    return result


def _restart_temporal(bench: BenchStack, faults: FaultLog, down_s: float) -> None:
    dead = kill(bench, "temporal")
    faults.add(f"SIGKILL the Temporal server (pid {dead.pid})")
    time.sleep(down_s)
    restart(bench, "temporal", dead, {})
    wait_for_port(bench.stack, bench.stack.temporal_port, "Temporal")
    faults.add(f"Temporal started again on the same database after {down_s:.0f} s")


def c2_temporal_restart(root: Path, scale: Scale) -> ScenarioResult:
    result = ScenarioResult("C2", "kill and restart the Temporal server on the same database mid-run", scale.name)
    began = time.monotonic()
    restarts = 1 if scale.name == "short" else 3
    with chaos_stack(root, scale) as bench:
        pool_id = floating_pool(bench, scale, "ChaosTwo")
        tokens = sign_in_users(bench, bench.users)
        faults = FaultLog()
        workers_before = [live(bench, name).pid for name in worker_names(bench)]
        api_before = live(bench, "api").pid

        def inject() -> None:
            for _ in range(restarts):
                time.sleep(2)
                _restart_temporal(bench, faults, down_s=3)
            faults.ended()

        injector = in_background(inject)
        storms = [storm(bench, pool_id, tokens, scale, "c2")]
        join_checked(injector)
        judge(result, bench, [pool_id], storms, faults, scale)
        # Nobody restarted the API or the workers: they reconnected by themselves.
        same = [live(bench, name).pid for name in worker_names(bench)] == workers_before
        result.invariants["api_and_workers_reconnected_by_themselves"] = same and live(bench, "api").pid == api_before
    result.seconds = round(time.monotonic() - began, 1)
    return result


def c6_api_kills(root: Path, scale: Scale) -> ScenarioResult:
    result = ScenarioResult("C6", "SIGKILL the API during a storm; clients retry with the same request id", scale.name)
    began = time.monotonic()
    with chaos_stack(root, scale) as bench:
        pool_id = floating_pool(bench, scale, "ChaosSix")
        tokens = sign_in_users(bench, bench.users)
        faults = FaultLog()
        rng = random.Random(6)

        def inject() -> None:
            for n in range(scale.faults):
                time.sleep(rng.uniform(0.3, 2.0))
                dead = kill(bench, "api")
                faults.add(f"SIGKILL the API (pid {dead.pid}), kill {n + 1} of {scale.faults}")
                time.sleep(rng.uniform(0.5, 1.5))
                restart(bench, "api", dead, {})
                wait_for_ready(bench.stack, f"{bench.base_url}/readyz")
                faults.add("API started again and ready")
            faults.ended()

        injector = in_background(inject)
        storms = [storm(bench, pool_id, tokens, scale, "c6")]
        join_checked(injector)
        judge(result, bench, [pool_id], storms, faults, scale)
        # Nothing duplicated: one desktop per served user, each desktop to one request.
        served = [r for r in storms[0].records.values() if r.outcome == "served"]
        desktops = [d for r in served for d in r.desktop_ids]
        result.invariants["nothing_duplicated"] = len(desktops) == len(set(desktops)) == len(served)
        result.details["retried_after_dropped_connection"] = sum(1 for r in served if r.transport_errors)
    result.seconds = round(time.monotonic() - began, 1)
    return result
