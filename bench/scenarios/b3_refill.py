"""B3 refill: ready desktops claimed away while the cloud takes 4 s to build a server and
allows 30 builds at once. Two figures, each measured against the cloud's own clock:

- reaction: claims one per second; for each, the time from the claim to the pool's create
  call for its replacement (the cloud records when each create arrived; matched in order);
- throughput: the whole reserve claimed at once; replacements per second, from the first
  replacement's create to the last one's build done, against the cloud's ceiling 30 / 4 s.

Targets: reaction p99 <= 1 s; throughput ratio >= 0.9. (Anchors from the seeds: one
creation per pool per 19 s; five per 5 minutes.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from bench.harness import bench_stack, create_pool, percentile, pool_spec, sign_in_all, wait_for, wait_ready
from bench.load import storm, summarize

BUILD_S = 4.0
CONCURRENCY = 30
CEILING = CONCURRENCY / BUILD_S


def create_times(cloud: httpx.Client) -> list[float]:
    times: list[float] = cloud.get("/_admin/stats/creates").json()["create_times"]
    return times


def run(root: Path, quick: bool) -> dict[str, Any]:
    reserve = 30 if quick else 300
    paced = 5 if quick else 30
    users = reserve + paced
    cloud_config = {
        "delays": {"build": 0.0, "delete": 0.0},
        "faults": {"max_builds_in_flight": CONCURRENCY, "build_limit_status": 403},
    }
    with (
        bench_stack(root, users=users, cloud=cloud_config) as stack,
        httpx.Client(base_url=f"{stack.cloud_url}", timeout=30) as cloud,
    ):
        admin = stack.admin()
        pool_id = create_pool(admin, pool_spec("Refill", prestarted=reserve, max_desktops=users * 2))
        wait_ready(admin, pool_id, reserve, timeout_s=900)
        cloud.post("/_admin/delays", json={"build": BUILD_S})
        tokens = asyncio.run(sign_in_all(stack.base_url, stack.users))
        paced_tokens = dict(list(tokens.items())[:paced])
        storm_tokens = dict(list(tokens.items())[paced:])

        # Reaction: one claim a second, well under the cloud's ceiling.
        before = len(create_times(cloud))
        samples = asyncio.run(storm(stack.base_url, pool_id, paced_tokens, [float(i) for i in range(paced)]))
        # Each claim's own send time: the storm's start comes after its HTTP clients are made
        # (~1 s for 20 clients), which a time taken before the storm had counted as reaction.
        claimed = sorted(s.sent_epoch for s in samples)
        wait_for(lambda: len(create_times(cloud)) - before, lambda n: n >= paced, timeout_s=120)
        creates = create_times(cloud)[before : before + paced]
        reactions = [max(0.0, c - s) for s, c in zip(claimed, creates, strict=True)]
        wait_ready(admin, pool_id, reserve, timeout_s=300)

        # Throughput: the whole reserve at once.
        before = len(create_times(cloud))
        burst = summarize(asyncio.run(storm(stack.base_url, pool_id, storm_tokens, [0.0] * reserve)))
        wait_for(lambda: len(create_times(cloud)) - before, lambda n: n >= reserve, timeout_s=900, interval_s=1)
        creates = create_times(cloud)[before : before + reserve]
        wait_ready(admin, pool_id, reserve, timeout_s=300)
        stats = cloud.get("/_admin/stats").json()
    elapsed = creates[-1] + BUILD_S - creates[0]
    rate = reserve / elapsed
    reaction_p99 = percentile(reactions, 99)
    return {
        "reserve": reserve,
        "reaction_claims": paced,
        "reaction_p50_ms": round(percentile(reactions, 50) * 1000, 1),
        "reaction_p99_ms": round(reaction_p99 * 1000, 1),
        "burst_claims": burst,
        "replacements": reserve,
        "refill_elapsed_s": round(elapsed, 1),
        "creates_per_s": round(rate, 2),
        "ceiling_per_s": CEILING,
        "ratio": round(rate / CEILING, 3),
        "cloud_peak_builds": stats["peak_concurrent_builds"],
        "cloud_peak_requests_per_s": stats["peak_requests_per_second"],
        "cloud_requests": stats["requests"],
        "target": "reaction p99 <= 1 s; creates/s / (30 / 4 s) >= 0.9",
        "target_met": reaction_p99 <= 1.0 and rate / CEILING >= 0.9,
    }
