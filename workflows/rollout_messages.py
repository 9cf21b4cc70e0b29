"""The dataclasses that cross the Temporal boundary for a template rollout ("Recreate"):
API -> RolloutWorkflow, RolloutWorkflow -> PoolWorkflow (through its activities), and back.

Kept beside messages.py (the pool's and desktops' own) as one place for the rollout;
a field added later gets a default so recorded histories still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# --- the pool's side: a rollout asks, the pool decides ------------------------------------


@dataclass
class RecycleInput:
    """Rollout to pool: let these old-version desktops go, the pool replaces them on its current version.

    Idle ones (ready, standby) leave now; one already leaving counts as taken (a retried request
    is answered alike). In use ones only with `when_released`: they go when their user is done
    with them, instead of coming back to the pool. `lift_restraint` lets the pool try creating
    again at once (an administrator asked for a rollout: the new template deserves a try now).
    """

    desktop_ids: list[str] = field(default_factory=list)
    reason: str = "recreate"
    when_released: bool = False
    lift_restraint: bool = False


@dataclass
class RecycleRefusal:
    desktop_id: str
    reason: str


@dataclass
class RecycleResult:
    # Leaving the pool now (or already leaving).
    accepted: list[str] = field(default_factory=list)
    # In use: marked to go when their user is done.
    deferred: list[str] = field(default_factory=list)
    refused: list[RecycleRefusal] = field(default_factory=list)


@dataclass
class RolloutViewInput:
    # Desktops the rollout sent away: which of them are still in the pool.
    tracked: list[str] = field(default_factory=list)
    # Builds in flight at a resume: which of them are still in the pool (a build gone failed).
    asked: list[str] = field(default_factory=list)
    # At most this many candidates and in-use desktops listed (the counts are complete).
    limit: int = 100


@dataclass
class RolloutCandidate:
    desktop_id: str
    # The pool's slot (planning.Slot value): "standby" or "ready".
    slot: str


@dataclass
class RolloutView:
    """What a rollout needs to know of its pool, small enough for every look to land in a history."""

    pool_id: str
    template_version: int
    prestarted: int
    # Running idle desktops of any version, none leaving: the ready capacity the floor protects.
    ready: int
    # Idle desktops on an old version: powered-off ones first (they hold no ready capacity).
    candidates: list[RolloutCandidate] = field(default_factory=list)
    # Old-version desktops still to replace: idle, being built, coming back from a revert.
    remaining: int = 0
    # Old-version desktops in use, not yet marked to go when released.
    in_use: list[str] = field(default_factory=list)
    # Old-version desktops in use, marked to go when released.
    marked: int = 0
    # Of the tracked desktops, those still in the pool (leaving).
    leaving: list[str] = field(default_factory=list)
    # Current-version desktops being built.
    building: list[str] = field(default_factory=list)
    # Current-version desktops in the pool that have come up (idle or in use).
    current_up: int = 0
    # The current version's counters since it was made: builds that came up, desktops that failed.
    up: int = 0
    failed: int = 0
    last_failure: str = ""
    # The current-version desktops that came up and failed last.
    last_up: str = ""
    last_failed: str = ""
    being_removed: bool = False
    restrained_reason: str = ""
    # Of the asked desktops, those in the pool.
    present: list[str] = field(default_factory=list)


# --- the rollout itself --------------------------------------------------------------------


class RolloutStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class RolloutStrategy(StrEnum):
    # A canary, then bounded batches, never below the ready floor.
    ROLLING = "rolling"
    # A canary, then every idle old desktop at once; no floor unless one is given.
    IMMEDIATE = "immediate"


class CanaryResult(StrEnum):
    PENDING = "pending"  # not yet started
    BUILDING = "building"
    READY = "ready"  # came up healthy: the rest may proceed
    FAILED = "failed"  # the rollout paused
    NOT_NEEDED = "not_needed"  # nothing had to be built


@dataclass
class CanaryProgress:
    desktop_id: str | None = None
    result: CanaryResult = CanaryResult.PENDING
    reason: str = ""


@dataclass
class RolloutProgress:
    pool_id: str
    strategy: RolloutStrategy
    status: RolloutStatus
    target_version: int
    # Old desktops replaced (gone from the pool) and to replace in all: done + leaving + remaining.
    done: int
    total: int
    # Sent away, still leaving.
    leaving: int
    # Current-version desktops being built.
    building: int
    # Failed current-version desktops since the rollout started.
    failures: int
    max_failures: int
    # None until the rollout's first look at its pool (the default depends on its prestarted count).
    floor: int | None
    # 0: unbounded (immediate).
    batch_size: int
    canary: CanaryProgress
    # Ready desktops at the last look, and the fewest seen during the rollout.
    ready: int
    lowest_ready: int | None
    paused_reason: str = ""
    # Why nothing is being sent away right now (the floor, the canary, replacements in flight).
    waiting: str = ""
    # In use desktops marked to go when their users are done (recycle_assigned).
    deferred: int = 0
    # Desktops that had failed, cleared from the read model (their servers were already deleted).
    cleared: int = 0
    # How many times the rollout has looked at its pool.
    observations: int = 0
    # Why it ended, when it did not complete (cancelled, failed).
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class RolloutCommand:
    """pause / resume / cancel, from the API."""

    actor: str = "admin"
    reason: str = ""


@dataclass
class RolloutProgressInput:
    pass


def rollout_workflow_id(pool_id: str) -> str:
    return f"rollout/{pool_id}"
