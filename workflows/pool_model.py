"""A pool's durable state: one dataclass (PoolState) and its parts, carried by continue-as-new.

What changes it lives in pool_state.PoolBook; this module is only the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.messages import ClaimOutcome
from workflows.planning import PoolRemoval, Slot
from workflows.pool_spec import PoolSpec, Template


@dataclass
class PoolDesktop:
    desktop_id: str
    number: int
    name: str
    template_version: int
    slot: Slot
    powered_on: bool = True
    starting: bool = False
    address: str | None = None
    user: str | None = None
    request_id: str | None = None
    # Told to leave by the pool's removal (never told twice).
    leaving: bool = False
    # In use on an old template version, a rollout asked: it leaves once back from its user.
    recycle_on_release: bool = False


@dataclass
class WaitingClaim:
    user: str
    request_id: str
    queued_at: datetime


@dataclass
class TemplateVersion:
    version: int
    template: Template


@dataclass
class VersionBuilds:
    """Per template version: desktops built that came up, desktops that failed (what a rollout watches)."""

    version: int
    up: int = 0
    failed: int = 0
    last_failure: str = ""
    # The desktops that came up and failed last.
    last_up_desktop: str = ""
    last_failed_desktop: str = ""


@dataclass
class Outgoing:
    """A signal owed to a desktop; kept in state so continue-as-new cannot drop it."""

    desktop_id: str
    kind: str  # "assign" | "remove" | "power"
    user: str = ""
    request_id: str = ""
    on: bool = True
    reason: str = ""
    # remove on the pool's removal: also in use; keep the server instead of deleting it.
    force: bool = False
    detach: bool = False


@dataclass
class PoolState:
    pool_id: str
    spec: PoolSpec
    template_version: int = 1
    templates: list[TemplateVersion] = field(default_factory=list)
    desktops: list[PoolDesktop] = field(default_factory=list)
    queue: list[WaitingClaim] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)
    finished_claims: list[ClaimOutcome] = field(default_factory=list)
    # A repeated Connect under a new request id, to the request it repeats.
    aliases: dict[str, str] = field(default_factory=dict)
    next_seq: int = 1
    consecutive_failures: int = 0
    restrained_until: datetime | None = None
    restrained_reason: str = ""
    # The cloud project the desktops live in, once resolved (or created).
    project_id: str | None = None
    # The name chosen for an auto-created project, kept so a retry finds it.
    project_name: str | None = None
    # Set once the pool is being removed: no claims, no creations, every desktop leaves.
    removal: PoolRemoval | None = None
    # The newest template versions' build counters (VERSION_BUILDS_KEPT of them).
    builds: list[VersionBuilds] = field(default_factory=list)
