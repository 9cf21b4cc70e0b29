"""Pure decisions of a pool: how many desktops to create, start, power off or remove,
which number a new desktop gets, which idle desktop a claim receives, and what the
pool's removal does with each desktop.

No I/O and no clock here: the pool workflow calls these with its state and
carries out the answer; tests call them with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workflows.messages import PoolCounts, RemovalMode
from workflows.pool_spec import Assignment, PoolSpec, ReleasePolicy


class Slot(StrEnum):
    """A desktop as its pool sees it (coarser than the desktop's own status)."""

    PROVISIONING = "provisioning"
    READY = "ready"
    STANDBY = "standby"
    ASSIGNED = "assigned"
    RELEASING = "releasing"  # being reverted (comes back) or destroyed (does not)
    AWAITING_RETURN = "awaiting_return"
    REMOVING = "removing"  # leaving the pool: scale-down, recreate, the pool's removal


# Desktops nobody holds, that a claim may get.
IDLE_SLOTS = (Slot.READY, Slot.STANDBY)


@dataclass
class ReconcilePlan:
    create_running: int = 0
    create_standby: int = 0
    start_standby: int = 0
    stop_ready: int = 0
    remove_idle: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.create_running or self.create_standby or self.start_standby or self.stop_ready or self.remove_idle
        )


def has_warm_tier(spec: PoolSpec) -> bool:
    """Revert and manual floating pools keep desktops beyond the reserve powered off."""
    return spec.assignment is Assignment.FLOATING and spec.release is not ReleasePolicy.DESTROY


def plan_reconcile(
    spec: PoolSpec, counts: PoolCounts, provisioning_running: int, starting: int, may_create: bool = True
) -> ReconcilePlan:
    """What brings the pool to its targets from here.

    Targets: live desktops within [min, max]; idle running desktops (plus those
    on their way up) >= prestarted + claims waiting in line; creations in flight
    <= the pool's concurrency. Desktops being created count as on their way, so
    a burst of events never creates twice for one need.
    """
    plan = ReconcilePlan()
    # Standby desktops being started are live too (counts leaves them out).
    live = counts.live + starting
    # Removals in flight are already leaving: never remove for the same excess twice.
    staying = live - counts.removing
    waiting = counts.waiting if spec.enabled else 0

    if staying > spec.max_desktops:
        plan.remove_idle = min(staying - spec.max_desktops, counts.ready + counts.standby)
        return plan

    reserve = spec.prestarted if spec.assignment is Assignment.FLOATING else 0
    on_the_way_up = counts.ready + provisioning_running + starting
    need_running = max(0, reserve + waiting - on_the_way_up)

    plan.start_standby = min(need_running, counts.standby)
    need_running -= plan.start_standby

    room = spec.max_desktops - live
    in_flight_room = max(0, spec.max_concurrent_creations - counts.provisioning)
    if may_create:
        plan.create_running = min(need_running, room, in_flight_room)
        room -= plan.create_running
        in_flight_room -= plan.create_running
        below_min = max(0, spec.min_desktops - live - plan.create_running)
        plan.create_standby = min(below_min, room, in_flight_room)
        if not has_warm_tier(spec):
            # Only revert/manual pools have a powered-off tier.
            plan.create_running += plan.create_standby
            plan.create_standby = 0

    excess_ready = counts.ready - reserve - waiting
    if excess_ready > 0 and plan.start_standby == 0:
        if has_warm_tier(spec):
            plan.stop_ready = excess_ready
        elif spec.assignment is Assignment.FLOATING:
            # Destroy pools: an idle desktop beyond the reserve and min goes.
            plan.remove_idle = min(excess_ready, max(0, staying - spec.min_desktops))
    return plan


def lowest_free_numbers(used: Iterable[int], how_many: int) -> list[int]:
    """Desktop numbers are reused once a desktop is gone; never two live ones alike."""
    taken = set(used)
    numbers: list[int] = []
    candidate = 1
    while len(numbers) < how_many:
        if candidate not in taken:
            numbers.append(candidate)
        candidate += 1
    return numbers


@dataclass
class IdleCandidate:
    desktop_id: str
    number: int
    slot: Slot
    template_version: int


def claim_order(slot: Slot, template_version: int, number: int, current_version: int) -> tuple[bool, bool, int]:
    """Which idle desktop a claim gets first: the smallest of these keys.

    Running before powered off (no wait), current template first, then lowest number."""
    return (slot is not Slot.READY, template_version != current_version, number)


def pick_for_claim(idle: Sequence[IdleCandidate], current_version: int) -> IdleCandidate | None:
    """The claim's choice by a plain walk: the reference DesktopIndex.first_for_claim is tested against."""
    usable = [c for c in idle if c.slot in IDLE_SLOTS]
    if not usable:
        return None
    return min(usable, key=lambda c: claim_order(c.slot, c.template_version, c.number, current_version))


def pick_for_removal(idle: Sequence[IdleCandidate], how_many: int, current_version: int) -> list[IdleCandidate]:
    """Powered-off first, old template first, highest number first: assigned never."""
    usable = [c for c in idle if c.slot in (Slot.READY, Slot.STANDBY)]
    usable.sort(key=lambda c: (c.slot is not Slot.STANDBY, c.template_version == current_version, -c.number))
    return usable[:how_many]


def pick_for_power_off(idle: Sequence[IdleCandidate], how_many: int, current_version: int) -> list[IdleCandidate]:
    running = [c for c in idle if c.slot is Slot.READY]
    running.sort(key=lambda c: (c.template_version == current_version, -c.number))
    return running[:how_many]


def pick_for_start(idle: Sequence[IdleCandidate], how_many: int, current_version: int) -> list[IdleCandidate]:
    standby = [c for c in idle if c.slot is Slot.STANDBY]
    standby.sort(key=lambda c: (c.template_version != current_version, c.number))
    return standby[:how_many]


# --- the pool's removal ---------------------------------------------------------------


@dataclass
class PoolRemoval:
    """A removal the pool has taken; in its state, so continue-as-new carries it."""

    mode: RemovalMode
    reason: str
    requested_at: datetime


def removal_refusal(mode: str, live_desktops: int, current: PoolRemoval | None) -> str | None:
    """Why a remove request is refused, or None to take it. A repeat of the removal under
    way is taken (idempotent); a different mode is not, it would change course halfway."""
    if mode not in {m.value for m in RemovalMode}:
        return f"unknown removal mode {mode!r}: desktops must be destroy, detach or none"
    if current is not None:
        if current.mode != mode:
            return f"the pool is already being removed with desktops={current.mode.value}"
        return None
    if mode == RemovalMode.NONE and live_desktops:
        return f"the pool still has {live_desktops} live desktops: remove it with desktops=destroy or desktops=detach"
    return None


@dataclass
class LeavingCandidate:
    desktop_id: str
    slot: Slot
    # Already told to leave by this removal: told once, even across continue-as-new.
    told: bool = False


@dataclass
class RemovalOrder:
    desktop_id: str
    detach: bool
    # The desktop's slot from now on.
    slot: Slot


def plan_removal(desktops: Sequence[LeavingCandidate], mode: RemovalMode) -> list[RemovalOrder]:
    """On the pool's removal every desktop leaves, told once, whatever it is doing: the
    administrator chose to end sessions (destroy) or to let the servers go (detach).

    A desktop in use keeps its slot, so its user still sees the claim until the desktop
    reports the assignment over; any other counts as removing from now on (one still
    being built leaves once built, one being reverted once reverted). A desktop already
    leaving for a scale-down is told too: whichever comes first ends it, and nothing can
    keep it in the pool. Mode none is taken only without desktops: nobody to tell.
    """
    if mode is RemovalMode.NONE:
        return []
    detach = mode is RemovalMode.DETACH
    return [
        RemovalOrder(d.desktop_id, detach, Slot.ASSIGNED if d.slot is Slot.ASSIGNED else Slot.REMOVING)
        for d in desktops
        if not d.told
    ]


def pool_sleep(
    now: datetime, claim_expiry: datetime | None, restrained_until: datetime | None, projection_due: datetime | None
) -> timedelta | None:
    """How long the pool loop may sleep before a timer matters: the first claim to expire, the end of
    a restraint still ahead, a projection due. None: until a message wakes it.

    A restraint already over is no reason to wake: it stays recorded until the next desktop's report
    clears it, and treating it as due made the loop spin on 1 ms timers while desktops were building.
    """
    if restrained_until is not None and restrained_until <= now:
        restrained_until = None
    wakeups = [t for t in (claim_expiry, restrained_until, projection_due) if t is not None]
    if not wakeups:
        return None
    return max(min(wakeups) - now, timedelta(milliseconds=1))
