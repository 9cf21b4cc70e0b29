"""B2 claim overhead: an API claim (HTTP, sign-in check, entitlement, batching, the pool's
Update) against a bare Temporal Update round trip, both one at a time, in the same run.

Target: claim p50 / bare Update p50 <= 3.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.echo import update_round_trips
from bench.harness import bench_stack, create_pool, percentile, pool_spec, sign_in_all, wait_ready
from bench.load import connect, http_client
from bench.scenarios.b1_storm import FAST_CLOUD


async def sequential_claims(base_url: str, pool_id: str, tokens: dict[str, str]) -> list[float]:
    async with http_client(base_url, 4) as client:
        seconds = []
        for user, token in tokens.items():
            sample = await connect(client, pool_id, user, token, time.perf_counter())
            if sample.error:
                raise RuntimeError(f"claim of {user} failed: {sample.error}")
            seconds.append(sample.seconds)
        return seconds


def gateway_seconds(admin: httpx.Client) -> tuple[float, int]:
    """(sum of seconds, count) of the API's claim latency histogram, every pool and outcome."""
    total, count = 0.0, 0
    for family in text_string_to_metric_families(admin.get("/metrics").text):
        if family.name == "deskpool_claim_seconds":
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += int(sample.value)
    return total, count


def run(root: Path, quick: bool) -> dict[str, Any]:
    users = 30 if quick else 200
    with bench_stack(root, users=users + 1, cloud=FAST_CLOUD) as stack:
        admin = stack.admin()
        pool_id = create_pool(admin, pool_spec("Overhead", prestarted=users + 1, max_desktops=users + 1))
        wait_ready(admin, pool_id, users + 1, timeout_s=600)
        tokens = asyncio.run(sign_in_all(stack.base_url, stack.users))
        # One claim first, so neither side pays for a cold connection.
        warm_user = stack.users[-1]
        asyncio.run(sequential_claims(stack.base_url, pool_id, {warm_user: tokens.pop(warm_user)}))
        before = gateway_seconds(admin)
        claims = asyncio.run(sequential_claims(stack.base_url, pool_id, tokens))
        after = gateway_seconds(admin)
        bare = asyncio.run(update_round_trips(stack.temporal_address, users))
    in_gateway = (after[0] - before[0]) / max(1, after[1] - before[1])
    claim_p50, bare_p50 = percentile(claims, 50), percentile(bare, 50)
    ratio = claim_p50 / bare_p50 if bare_p50 else float("inf")
    return {
        "claims": len(claims),
        "claim_p50_ms": round(claim_p50 * 1000, 2),
        "claim_p99_ms": round(percentile(claims, 99) * 1000, 2),
        # Of a claim's time, the mean spent from the API's claim gateway to the pool's answer.
        "gateway_mean_ms": round(in_gateway * 1000, 2),
        "bare_update_p50_ms": round(bare_p50 * 1000, 2),
        "bare_update_p99_ms": round(percentile(bare, 99) * 1000, 2),
        "ratio": round(ratio, 2),
        "target": "claim p50 / bare Update p50 <= 3",
        "target_met": ratio <= 3,
    }
