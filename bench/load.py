"""Users pressing Connect, over HTTP, and what each of them waited.

A claim is timed from the moment its user presses Connect (the request leaves
the client) to the moment the user holds a desktop: a 200 from the claim, or,
after a 202 "wait in line", the poll of `GET .../claims/{request_id}` that says
assigned. A 503 (overloaded) is retried by the client with the same request id,
as the CLI and the portal do, and is counted; anything else is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass

import httpx

from bench.harness import percentile


@dataclass
class ClaimSample:
    user: str
    # Seconds from the start of the storm when the user pressed Connect.
    sent_at: float
    # Seconds until the user held a desktop (or gave up).
    seconds: float
    desktop_id: str | None
    retries_503: int = 0
    error: str = ""
    # When the user pressed Connect, on the wall clock (to compare with the cloud's own times).
    sent_epoch: float = 0.0


def poisson_arrivals(n: int, duration_s: float, seed: int = 1) -> list[float]:
    """n arrival times of a Poisson process over `duration_s` (given n arrivals, they are uniform order statistics)."""
    rng = random.Random(seed)
    return sorted(rng.uniform(0, duration_s) for _ in range(n))


def http_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits)


async def connect(
    client: httpx.AsyncClient, pool_id: str, user: str, token: str, started: float, timeout_s: float = 120
) -> ClaimSample:
    """One user's Connect, until they hold a desktop, are refused, or `timeout_s` passes."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    sent = time.perf_counter()
    sample = ClaimSample(user, sent - started, 0.0, None, sent_epoch=time.time())
    deadline = sent + timeout_s
    try:
        response = await client.post(f"/pools/{pool_id}/claims", headers=headers)
        while response.status_code == 503 and time.perf_counter() < deadline:
            sample.retries_503 += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            response = await client.post(f"/pools/{pool_id}/claims", headers=headers)
        while response.status_code == 202 and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            response = await client.get(f"/pools/{pool_id}/claims/{headers['Idempotency-Key']}", headers=headers)
            if response.status_code == 200 and response.json()["status"] == "waiting":
                response.status_code = 202
        body = response.json()
        if response.status_code == 200 and body.get("desktop_id"):
            sample.desktop_id = body["desktop_id"]
        else:
            sample.error = f"{response.status_code} {str(body)[:200]}"
    except (httpx.HTTPError, ValueError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    sample.seconds = time.perf_counter() - sent
    return sample


# Connections per httpx client. One client with a connection per user (1,000) spent the load
# generator's whole CPU in httpcore's connection assignment, which walks every connection of
# its pool for each request: a storm then measured the client, not deskpool (docs/benchmarks.md).
CONNECTIONS_PER_CLIENT = 50


async def storm(
    base_url: str, pool_id: str, tokens: dict[str, str], arrivals: list[float], concurrency: int = 1000
) -> list[ClaimSample]:
    """Each user (in `tokens` order) presses Connect at their arrival time (seconds from now)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(http_client(base_url, CONNECTIONS_PER_CLIENT))
            for _ in range(max(1, -(-concurrency // CONNECTIONS_PER_CLIENT)))
        ]
        started = time.perf_counter()

        async def user_at(n: int, user: str, token: str, at: float) -> ClaimSample:
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            return await connect(clients[n % len(clients)], pool_id, user, token, started)

        users = zip(tokens.items(), arrivals, strict=False)
        return list(await asyncio.gather(*(user_at(n, u, t, a) for n, ((u, t), a) in enumerate(users))))


def summarize(samples: list[ClaimSample]) -> dict[str, float | int]:
    """claims/s over the whole storm, time-to-desktop percentiles in ms, errors and double assignments."""
    served = [s for s in samples if s.desktop_id and not s.error]
    seconds = [s.seconds for s in served]
    span = max((s.sent_at + s.seconds for s in samples), default=0.0) - min((s.sent_at for s in samples), default=0.0)
    desktops = [s.desktop_id for s in served]
    return {
        "claims": len(samples),
        "served": len(served),
        "errors": len(samples) - len(served),
        "retries_503": sum(s.retries_503 for s in samples),
        "desktops_given_twice": len(desktops) - len(set(desktops)),
        "claims_per_s": round(len(served) / span, 1) if span else 0.0,
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds, default=0.0) * 1000, 1),
    }


RELEASE_ATTEMPTS = 10


async def release_all(base_url: str, tokens: dict[str, str], desktops: dict[str, str], concurrency: int = 50) -> int:
    """Each user releases the desktop they hold; the number of releases accepted."""
    gate = asyncio.Semaphore(concurrency)
    async with http_client(base_url, concurrency) as client:

        async def one(user: str, desktop_id: str) -> bool:
            for _ in range(RELEASE_ATTEMPTS):
                async with gate:
                    response = await client.post(
                        f"/desktops/{desktop_id}/release", headers={"Authorization": f"Bearer {tokens[user]}"}
                    )
                if response.status_code != 503:
                    break
                # As a client should: a busy service says when to come back.
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            return response.status_code < 300

        results = await asyncio.gather(*(one(u, d) for u, d in desktops.items()))
    return sum(results)
