"""The five invariants, checked after each scenario against the cloud itself (its servers, listed
with openstacksdk), the workflows (their status queries) and the read model (SQL):

1. no leak: after convergence every deskpool server in the cloud belongs to exactly one live desktop
   (its desktop workflow runs and names that server), and every live desktop's server exists;
2. no double assignment: no desktop was ever given to two users (claims' answers, and the workflows
   now); no user holds more desktops of a pool than its per-user maximum;
3. no lost claim: every claim ended with a desktop, an explicit wait or a clear 503 — never a hang
   (no final answer by the deadline) or another 5xx;
4. convergence: within `converge_s` of the last fault every pool is back at its targets (its
   prestarted desktops ready, nothing building, releasing or removing, not restrained); when the
   storm goes on after the last fault, from the storm's end (`judge` in common.py says why);
5. the read model agrees with the workflows: the same live desktops, in the same states, held by
   the same users.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.cloud_driver import DESKPOOL_TAG, connect
from activities.store.models import DesktopRecord
from bench.chaos.common import Storm
from bench.harness import BenchStack
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import DesktopStatusInput, PoolStatusInput, PoolStatusResult, pool_workflow_id
from workflows.pool_workflow import PoolWorkflow

FINAL_ROW_STATES = ("destroyed", "failed", "detached")
HELD = ("assigned", "starting", "connected", "disconnected")


@dataclass
class LiveDesktop:
    desktop_id: str
    pool_id: str
    status: str
    server_id: str | None
    user: str | None


@dataclass
class World:
    """One look at the three sources of truth."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # server id -> {desktop, status}
    desktops: dict[str, LiveDesktop] = field(default_factory=dict)  # running desktop workflows
    pools: dict[str, PoolStatusResult] = field(default_factory=dict)
    silent_pools: dict[str, str] = field(default_factory=dict)  # pool id -> why its query failed
    rows: dict[str, DesktopRecord] = field(default_factory=dict)  # live read-model rows


async def _workflows(
    bench: BenchStack, pool_ids: list[str]
) -> tuple[dict[str, LiveDesktop], dict[str, Any], dict[str, str]]:
    client = await Client.connect(bench.temporal_address)
    query = "DeskpoolKind = 'desktop' AND ExecutionStatus = 'Running'"
    ids = [w.id async for w in client.list_workflows(query)]

    async def read(workflow_id: str) -> LiveDesktop | None:
        handle = client.get_workflow_handle_for(DesktopWorkflow.run, workflow_id)
        try:
            status = await handle.query(DesktopWorkflow.status, DesktopStatusInput())
        except (RPCError, WorkflowQueryFailedError):  # ended since the listing, or not answering
            return None
        snap = status.snapshot
        return LiveDesktop(status.desktop_id, status.pool_id, snap.status.value, snap.server_id, snap.user)

    found = [d for d in await asyncio.gather(*(read(i) for i in ids)) if d is not None]
    pools, silent = {}, {}
    for pool_id in pool_ids:
        handle = client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
        try:
            pools[pool_id] = await handle.query(
                PoolWorkflow.status, PoolStatusInput(), rpc_timeout=timedelta(seconds=20)
            )
        except (RPCError, WorkflowQueryFailedError) as err:  # a stuck pool: judged, not a crash of the check
            silent[pool_id] = f"{type(err).__name__}: {err}"[:300]
    return {d.desktop_id: d for d in found}, pools, silent


def look(bench: BenchStack, pool_ids: list[str], cloud: Any, engine: Engine) -> World:
    """The cloud's servers, the workflows and the read model's rows, as they are now."""
    world = World()
    for server in cloud.compute.servers(details=True):
        if DESKPOOL_TAG in (server.tags or []):
            world.servers[server.id] = {
                "desktop": (server.metadata or {}).get("deskpool_desktop"),
                "status": server.status,
            }
    world.desktops, world.pools, world.silent_pools = asyncio.run(_workflows(bench, pool_ids))
    with Session(engine) as session:
        rows = session.exec(select(DesktopRecord).where(col(DesktopRecord.state).not_in(FINAL_ROW_STATES))).all()
        world.rows = {row.id: row for row in rows}
    return world


def converged(world: World) -> list[str]:
    """Why the pools are not yet at their targets (empty: converged)."""
    why = [f"{pool_id} does not answer its status query: {err}" for pool_id, err in world.silent_pools.items()]
    for pool_id, status in world.pools.items():
        c, spec = status.counts, status.spec
        if status.restrained_reason:
            why.append(f"{pool_id} restrained: {status.restrained_reason}")
        if c.provisioning or c.releasing or c.removing or c.waiting:
            why.append(f"{pool_id} busy: {c}")
        in_use = c.assigned + c.awaiting_return
        if c.ready + c.standby < min(spec.prestarted, spec.max_desktops - in_use):
            why.append(f"{pool_id} reserve {c.ready + c.standby} of {spec.prestarted}")
    return why


def leaks(world: World) -> list[str]:
    problems = []
    by_desktop: dict[str, list[str]] = defaultdict(list)
    for server_id, server in world.servers.items():
        owner = server["desktop"]
        by_desktop[str(owner)].append(server_id)
        desktop = world.desktops.get(str(owner))
        if desktop is None:
            problems.append(f"server {server_id} ({server['status']}) of {owner}: no live desktop owns it")
        elif desktop.server_id != server_id:
            problems.append(f"server {server_id}: its desktop {owner} names server {desktop.server_id}")
    problems += [f"desktop {d} has {len(s)} servers: {s}" for d, s in by_desktop.items() if len(s) > 1]
    for desktop in world.desktops.values():
        if desktop.server_id and desktop.server_id not in world.servers and desktop.status != "provisioning":
            problems.append(f"desktop {desktop.desktop_id} ({desktop.status}) names server {desktop.server_id}: gone")
    return problems


def double_assignments(storms: list[Storm], world: World) -> list[str]:
    problems = []
    holders: dict[str, set[str]] = defaultdict(set)
    for storm in storms:
        for record in storm.records.values():
            if len(record.desktop_ids) > 1:
                problems.append(f"claim {record.request_id} answered with {sorted(record.desktop_ids)}")
            for desktop_id in record.desktop_ids:
                holders[desktop_id].add(record.user)
    problems += [f"desktop {d} given to {sorted(u)}" for d, u in holders.items() if len(u) > 1]
    held: dict[tuple[str, str], int] = defaultdict(int)
    for desktop in world.desktops.values():
        if desktop.user and desktop.status in HELD:
            held[(desktop.pool_id, desktop.user)] += 1
    for (pool_id, user), count in held.items():
        status = world.pools.get(pool_id)
        limit = status.spec.max_desktops_per_user if status else 1
        if count > limit:
            problems.append(f"{user} holds {count} desktops of {pool_id} (at most {limit})")
    return problems


def lost_claims(storms: list[Storm]) -> list[str]:
    return [
        f"{r.request_id}: {r.outcome} {dict(r.statuses)}"
        for storm in storms
        for r in storm.records.values()
        if r.outcome in ("server_error", "hang", "pending")
    ]


def disagreements(world: World) -> list[str]:
    problems = []
    for desktop_id, desktop in world.desktops.items():
        row = world.rows.get(desktop_id)
        if row is None:
            if desktop.status != "provisioning":  # a desktop's first projection may still be on its way
                problems.append(f"{desktop_id} ({desktop.status}) has no live row")
            continue
        if row.state != desktop.status or row.user != desktop.user:
            problems.append(f"{desktop_id}: workflow {desktop.status}/{desktop.user}, row {row.state}/{row.user}")
    problems += [
        f"row {i} ({r.state}) has no running workflow" for i, r in world.rows.items() if i not in world.desktops
    ]
    return problems


@dataclass
class Verdict:
    invariants: dict[str, bool]
    problems: dict[str, list[str]]
    converged_at: float | None  # time.monotonic() of the look that found every pool at its targets


def check(
    bench: BenchStack,
    pool_ids: list[str],
    storms: list[Storm],
    database_url: str,
    quiet_from: float,
    converge_s: float,
    settle_s: float = 120,
) -> Verdict:
    """Wait (up to `converge_s` after `quiet_from`, the end of the faults and of the load, and
    `settle_s` more for the read model to catch up) and judge the five invariants."""
    # One cloud connection and one engine for every look: a look a second must not sign in to
    # the cloud again each time (C3 counts the cloud's requests).
    cloud = connect(bench.stack.data / "clouds.yaml", "embedded", app_name="chaos-judge")
    engine = create_engine(database_url)
    try:
        return _judge(bench, pool_ids, storms, quiet_from, converge_s, settle_s, cloud, engine)
    finally:
        cloud.close()
        engine.dispose()


def _judge(
    bench: BenchStack,
    pool_ids: list[str],
    storms: list[Storm],
    quiet_from: float,
    converge_s: float,
    settle_s: float,
    cloud: Any,
    engine: Engine,
) -> Verdict:
    deadline = quiet_from + converge_s
    world = look(bench, pool_ids, cloud, engine)
    while (converged(world) or leaks(world)) and time.monotonic() < deadline:
        time.sleep(1)
        world = look(bench, pool_ids, cloud, engine)
    converged_at = time.monotonic() if not (converged(world) or leaks(world)) else None
    # Judged now: while the read model is awaited below, the pools go on living (a retention
    # timer ends, a desktop is released), and a later look may find one busy again.
    not_converged = converged(world)
    agreement_deadline = time.monotonic() + settle_s
    while disagreements(world) and time.monotonic() < agreement_deadline:
        time.sleep(1)
        world = look(bench, pool_ids, cloud, engine)
    late = [] if converged_at is not None else [f"not at the targets {converge_s:.0f} s after the last fault and storm"]
    problems = {
        "no_leak": leaks(world),
        "no_double_assignment": double_assignments(storms, world),
        "no_lost_claim": lost_claims(storms),
        "convergence": late + not_converged,
        "read_model_agrees": disagreements(world),
    }
    return Verdict(
        {name: not found for name, found in problems.items()},
        {name: found[:20] for name, found in problems.items() if found},
        converged_at,
    )
