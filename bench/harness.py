"""Real processes for benchmarks and chaos runs: the stack `make run` starts, on free ports.

`BenchStack.start` writes a built-in directory of generated users, a cloud config
(delays, faults, limits) and settings, then starts the Temporal dev server, the
embedded cloud, N workers and the API (uvicorn) through `tools.run`. Everything
is driven over HTTP as users and administrators would, with httpx.

Generated users sign in with password ``pw-<name>``; their argon2 hashes use cheap
parameters, because a benchmark of claims must not spend its minutes hashing
1,000 passwords (the verifier reads the cost from each hash, so nothing else changes).
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import yaml
from argon2 import PasswordHasher

from tools.run import Stack, launch, stack_on_free_ports

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin"
GROUP = "bench-users"


def user_names(n: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def password_of(user: str) -> str:
    return f"pw-{user}"


def write_directory(path: Path, users: list[str]) -> None:
    """A built-in directory: `admin` plus `users`, all in group `bench-users`."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    everyone = [ADMIN, *users]
    data = {
        "users": {name: {"password_hash": hasher.hash(password_of(name))} for name in everyone},
        "groups": {GROUP: {"users": list(users)}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def machine() -> dict[str, Any]:
    """What a figure was measured on, recorded next to it."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        revision = ""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "openstacksdk": version("openstacksdk"),
        "deskpool_revision": revision,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class BenchStack:
    stack: Stack
    users: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.api_port}"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.cloud_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.stack.temporal_port}"

    def processes(self, prefix: str) -> list[psutil.Process]:
        """The running processes whose name in the stack starts with `prefix` (worker, api, temporal, cloud)."""
        return [
            psutil.Process(p.pid) for name, p in self.stack.processes if name.startswith(prefix) and p.poll() is None
        ]

    def admin(self, timeout_s: float = 60) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        client.headers["Authorization"] = f"Bearer {sign_in(client, ADMIN)}"
        return client


@contextmanager
def bench_stack(
    root: Path,
    *,
    users: int = 0,
    workers: int = 1,
    cloud: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[BenchStack]:
    """Start the stack under `root` (a fresh folder), yield it, stop it whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    names = user_names(users)
    write_directory(root / "directory.yaml", names)
    (root / "cloud.yaml").write_text(yaml.safe_dump(cloud or {}))
    stack = stack_on_free_ports(
        root,
        cloud_args=["--config", str(root / "cloud.yaml"), "--log-level", "warning"],
        workers=workers,
        extra_env={
            "DESKPOOL_DIRECTORY_BACKEND": "builtin",
            "DESKPOOL_DIRECTORY_BUILTIN_FILE": str(root / "directory.yaml"),
            **(env or {}),
        },
    )
    try:
        launch(stack)
        yield BenchStack(stack, names)
    finally:
        stack.stop()


def sign_in(client: httpx.Client, user: str) -> str:
    response = client.post("/auth/login", json={"username": user, "password": password_of(user)})
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


async def sign_in_all(base_url: str, users: list[str], concurrency: int = 16) -> dict[str, str]:
    """Session tokens for every user, signed in through the real login endpoint."""
    gate = asyncio.Semaphore(concurrency)
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(user: str) -> None:
            async with gate:
                response = await client.post("/auth/login", json={"username": user, "password": password_of(user)})
                response.raise_for_status()
                tokens[user] = response.json()["token"]

        await asyncio.gather(*(one(u) for u in users))
    return tokens


def pool_spec(name: str, *, prestarted: int, max_desktops: int, min_desktops: int = 0, **extra: Any) -> dict[str, Any]:
    """A floating pool the generated users are entitled to (through group bench-users)."""
    return {
        "name": name,
        # Masks are lowercase letters only: "Scale 007" -> "scaleaah-" (digits spelled as letters).
        "naming_mask": mask_of(name),
        "assignment": "floating",
        "release": "destroy",
        "min_desktops": min_desktops,
        "max_desktops": max_desktops,
        "prestarted": prestarted,
        # Enough digits for every desktop number (the seeds' default of 3 stops at 999).
        "naming_digits": max(3, len(str(max_desktops))),
        "max_desktops_ceiling": max(1000, max_desktops),
        "entitlement": {"groups": [GROUP]},
        "template": {
            "image": "win11-golden",
            "flavor": "vdi.small",
            "networks": ["vdi-net"],
            "security_groups": ["vdi-rdp"],
        },
        **extra,
    }


def mask_of(name: str) -> str:
    letters = "".join(c for c in name.lower() if "a" <= c <= "z")[:8]
    digits = "".join(chr(ord("a") + int(c)) for c in name if c.isdigit())[:6]
    return f"{letters}{digits}-"[:15]


def create_pool(admin: httpx.Client, spec: dict[str, Any]) -> str:
    response = admin.post("/pools", json=spec)
    if response.status_code >= 400:
        raise RuntimeError(f"pool {spec['name']!r} not created: {response.status_code} {response.text}")
    pool_id: str = response.json()["id"]
    return pool_id


def pool_view(admin: httpx.Client, pool_id: str) -> dict[str, Any]:
    response = admin.get(f"/pools/{pool_id}")
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def wait_for(fetch: Callable[[], T], accept: Callable[[T], bool], timeout_s: float, interval_s: float = 0.5) -> T:
    """Poll until `accept(fetch())`; the last value on success, RuntimeError with it on timeout."""
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not accept(value):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout_s:.0f} s; last: {str(value)[:500]}")
        time.sleep(interval_s)
        value = fetch()
    return value


def wait_ready(admin: httpx.Client, pool_id: str, ready: int, timeout_s: float) -> dict[str, Any]:
    return wait_for(lambda: pool_view(admin, pool_id), lambda v: v["counts"]["ready"] >= ready, timeout_s, 1.0)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
