"""B6 growth: one pool at 10, 100, 1,000 and 5,000 desktops; at each size a burst of claims.

At each size (the pool grown to it, every desktop ready): a burst of up to 100 Connects
(10 at reduced sizes) in one second; claims/s, p99 time-to-desktop, the CPU the worker and the Temporal server
spent per claim, and the worker's RSS. Target: the cost of a claim stays flat (no
superlinear growth): CPU per claim at the largest size at most twice that at the smallest
size with an equal burst (100 desktops; 10 at reduced sizes), and p99 likewise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil

from bench.harness import bench_stack, create_pool, pool_spec, pool_view, sign_in_all, wait_ready
from bench.load import poisson_arrivals, storm, summarize
from bench.scenarios.b1_storm import FAST_CLOUD

GROWTH_LIMIT = 2.0


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def run(root: Path, quick: bool) -> dict[str, Any]:
    sizes = [10, 30, 100] if quick else [10, 100, 1000, 5000]
    # Equal bursts wherever they are compared: a bigger burst queues longer whatever the pool's size.
    most = 10 if quick else 100
    bursts = [min(size, most) for size in sizes]
    env = {"DESKPOOL_CLOUD_MAX_CALLS_PER_SECOND": "0"}  # filling the pool is not what B6 measures
    curve: list[dict[str, Any]] = []
    with bench_stack(root, users=sum(bursts), cloud=FAST_CLOUD, env=env) as stack:
        admin = stack.admin(timeout_s=120)
        tokens = asyncio.run(sign_in_all(stack.base_url, stack.users))
        users = iter(tokens.items())
        engine = stack.processes("worker")[:1] + stack.processes("temporal")[:1]
        worker = engine[0]
        pool_id = create_pool(admin, pool_spec("Growth", prestarted=sizes[0], max_desktops=sizes[0]))
        held = 0
        for size, burst in zip(sizes, bursts, strict=True):
            spec = pool_view(admin, pool_id)["spec"]
            total = size + held  # the desktops still held from earlier bursts stay
            admin.put(f"/pools/{pool_id}", json={**spec, "prestarted": size, "max_desktops": total}).raise_for_status()
            wait_ready(admin, pool_id, size, timeout_s=3600)
            batch = dict(next(users) for _ in range(burst))
            before = cpu_seconds(engine)
            figures = summarize(asyncio.run(storm(stack.base_url, pool_id, batch, poisson_arrivals(burst, 1.0, size))))
            spent = cpu_seconds(engine) - before
            held += int(figures["served"])
            curve.append(
                {
                    "desktops": size,
                    **figures,
                    "engine_cpu_ms_per_claim": round(spent / max(1, burst) * 1000, 1),
                    "worker_rss_mib": round(worker.memory_info().rss / 2**20, 1),
                }
            )
    top = curve[-1]
    # The smallest pool that took a burst as big as the largest one's (reduced sizes: 10; full: 100).
    # Comparing the largest size with itself would make the target one that cannot be missed.
    base = next(point for point in curve if point["claims"] == top["claims"])
    if base is top:
        raise RuntimeError(f"B6 needs two sizes with equal bursts to compare; bursts were {bursts}")
    cost_growth = top["engine_cpu_ms_per_claim"] / max(0.001, base["engine_cpu_ms_per_claim"])
    p99_growth = top["p99_ms"] / max(0.001, base["p99_ms"])
    errors = sum(point["errors"] for point in curve)
    return {
        "curve": curve,
        "cpu_per_claim_growth": round(cost_growth, 2),
        "p99_growth": round(p99_growth, 2),
        "target": (
            f"CPU per claim and p99 at {sizes[-1]} desktops <= {GROWTH_LIMIT} x those at {base['desktops']}; no errors"
        ),
        "target_met": cost_growth <= GROWTH_LIMIT and p99_growth <= GROWTH_LIMIT and errors == 0,
    }
