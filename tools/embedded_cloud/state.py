"""Everything a running embedded cloud knows, shared by all API routers."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request

from tools.embedded_cloud import lifecycle, microversion
from tools.embedded_cloud.catalog import SEED_EPOCH, SeedCatalog, stable_id
from tools.embedded_cloud.config import CloudConfig
from tools.embedded_cloud.errors import ApiError, Service
from tools.embedded_cloud.records import (
    ProjectRecord,
    SecurityGroupRecord,
    SecurityGroupRule,
    ServerRecord,
)
from tools.embedded_cloud.stats import RequestStats, SlidingWindowLimiter
from tools.embedded_cloud.store import CloudStore
from tools.embedded_cloud.tokens import TokenInfo, TokenSigner


class CloudState:
    def __init__(self, config: CloudConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.catalog = SeedCatalog.build(config.seed)
        self.store = CloudStore(config.data_dir)
        self.signer = TokenSigner(self.store.token_key)
        # Run-time copies; /_admin changes these, never the start config.
        self.faults = config.faults.model_copy(deep=True)
        self.delays = config.delays.model_copy(deep=True)
        # One seeded generator for every fault decision, so a test that
        # replays the same requests with the same seed sees the same faults.
        self.rng = random.Random(config.random_seed)
        self.stats = RequestStats(clock())
        self.limiter = SlidingWindowLimiter()
        # Console URL token -> server id (in memory, like Nova's short-lived
        # console auth tokens).
        self.console_tokens: dict[str, str] = {}
        self.max_microversion = microversion.parse(config.nova_max_microversion)
        self._seed_projects = {
            pid: ProjectRecord(id=pid, name=name, description="Seeded project")
            for pid, name in self.catalog.projects.items()
        }
        # Seeded groups belong to the first seeded project (like a default
        # group created by the operator) but are visible to every project.
        owner = next(iter(self.catalog.projects), "")
        self._seed_groups = {
            gid: _seed_group(gid, owner, seed.name, seed.description, seed.ingress_tcp_ports)
            for gid, seed in self.catalog.security_groups.items()
        }

    def now(self) -> float:
        return self.clock()

    def chance(self, rate: float) -> bool:
        """A seeded coin flip; draws nothing when the rate is 0."""
        return rate > 0 and self.rng.random() < rate

    # --- servers -----------------------------------------------------------
    def live_servers(self) -> list[ServerRecord]:
        """All servers after settling due tasks; deleted ones are purged."""
        now = self.now()
        alive: list[ServerRecord] = []
        for server in list(self.store.servers.values()):
            if lifecycle.settle(server, now):
                alive.append(server)
            else:
                self.store.remove_server(server.id)
        return alive

    def server(self, server_id: str, auth: TokenInfo) -> ServerRecord:
        """A visible server or Nova's 404 (other projects' are hidden)."""
        found = self.store.servers.get(server_id)
        if found is not None and not lifecycle.settle(found, self.now()):
            self.store.remove_server(found.id)
            found = None
        if found is None or not (auth.is_admin or found.project_id == auth.project_id):
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return found

    # --- identity / network ------------------------------------------------
    def projects(self) -> dict[str, ProjectRecord]:
        return {**self._seed_projects, **self.store.projects}

    def security_groups(self) -> dict[str, SecurityGroupRecord]:
        return {**self._seed_groups, **self.store.security_groups}

    def base_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def _seed_group(group_id: str, project_id: str, name: str, description: str, ports: list[int]) -> SecurityGroupRecord:
    rules = [
        SecurityGroupRule(
            id=stable_id("rule", f"{name}:egress:{ethertype}"),
            direction="egress",
            ethertype=ethertype,
        )
        for ethertype in ("IPv4", "IPv6")
    ]
    rules += [
        SecurityGroupRule(
            id=stable_id("rule", f"{name}:tcp:{port}"),
            direction="ingress",
            protocol="tcp",
            port_range_min=port,
            port_range_max=port,
            remote_ip_prefix="0.0.0.0/0",
        )
        for port in ports
    ]
    return SecurityGroupRecord(
        id=group_id,
        name=name,
        description=description,
        project_id=project_id,
        rules=rules,
        created_at=SEED_EPOCH,
    )


# --- request helpers used by every router -----------------------------------
def cloud_of(request: Request) -> CloudState:
    state: CloudState = request.app.state.cloud
    return state


def auth_of(request: Request) -> TokenInfo:
    """Token info put on the request by the gatekeeper middleware."""
    auth: TokenInfo = request.state.auth
    return auth


def microversion_of(request: Request) -> microversion.Microversion:
    version: microversion.Microversion = request.state.microversion
    return version


async def json_body(request: Request, service: Service) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Malformed request body", service=service) from None
    if not isinstance(body, dict):
        raise ApiError(400, "Malformed request body", service=service)
    return body
