"""B5 scale: 100 pools of 100 desktops on one worker.

Figures: time until every pool holds its desktops ready; peak RSS and CPU of the worker
and the Temporal server (sampled each second); the longest workflow history (every pool
workflow and a sample of desktops, from the server's own count). Targets: worker RSS
<= 1 GiB; no history over 10,240 events.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.harness import bench_stack, create_pool, pool_spec, wait_for
from bench.processes import ProcessSampler
from bench.scenarios.b1_storm import FAST_CLOUD

HISTORY_LIMIT = 10_240
MIB_LIMIT = 1024


async def longest_histories(address: str, desktops_sampled: int = 200) -> dict[str, int]:
    """The most events in any pool workflow's run, and in any of a sample of desktops' runs."""
    client = await Client.connect(address)
    longest = {"pool": 0, "desktop": 0, "other": 0}
    desktops = 0
    async for execution in client.list_workflows():
        kind = (
            "pool"
            if execution.id.startswith("pool/")
            else "desktop"
            if execution.id.startswith("desktop/")
            else "other"
        )
        if kind == "desktop":
            desktops += 1
            if desktops > desktops_sampled:
                continue
        described = await client.get_workflow_handle(execution.id, run_id=execution.run_id).describe()
        length = described.raw_description.workflow_execution_info.history_length
        longest[kind] = max(longest[kind], int(length))
    return longest


def run(root: Path, quick: bool) -> dict[str, Any]:
    pools, size = (5, 10) if quick else (100, 100)
    env = {"DESKPOOL_CLOUD_MAX_CALLS_PER_SECOND": "0"}  # the setup is not what B5 measures
    with bench_stack(root, cloud=FAST_CLOUD, env=env) as stack:
        admin = stack.admin(timeout_s=120)
        processes = {name: process for name in ("worker", "temporal", "api") for process in stack.processes(name)[:1]}
        with ProcessSampler(processes, 2.0) as sampler:
            started = time.monotonic()
            ids = [
                create_pool(admin, pool_spec(f"Scale {n:03d}", prestarted=size, max_desktops=size))
                for n in range(pools)
            ]
            created_s = time.monotonic() - started

            def ready() -> int:
                views = admin.get("/pools").json()
                return sum(min(size, v["counts"]["ready"]) for v in views if v["id"] in ids)

            wait_for(ready, lambda n: n >= pools * size, timeout_s=3600, interval_s=5)
            converged_s = time.monotonic() - started
        histories = asyncio.run(longest_histories(stack.temporal_address))
    worker_mib = sampler.peak_rss_mib.get("worker", 0.0)
    longest = max(histories.values())
    return {
        "pools": pools,
        "desktops_per_pool": size,
        "desktops": pools * size,
        "pools_created_s": round(created_s, 1),
        "converged_s": round(converged_s, 1),
        "desktops_per_s": round(pools * size / converged_s, 2),
        "peak_rss_mib": {k: round(v, 1) for k, v in sampler.peak_rss_mib.items()},
        "peak_cpu_percent": sampler.peak_cpu_percent,
        "cpu_seconds": sampler.cpu_seconds,
        "longest_history": histories,
        "series": sampler.series,
        "target": f"worker RSS <= {MIB_LIMIT} MiB; no history over {HISTORY_LIMIT} events",
        "target_met": worker_mib <= MIB_LIMIT and longest <= HISTORY_LIMIT,
    }
