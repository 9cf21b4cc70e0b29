"""Pure decisions of a template rollout ("Recreate"): the floor, which desktops go next, the
canary, when to pause, what the pool accepts; and the rollout's state with its bookkeeping.

No I/O and no clock here (times are passed in): RolloutWorkflow looks at its pool, hands
the look to `observe`, carries out `plan_step`'s answer; tests call them with plain values.
The pool stays the only authority on its desktops: a rollout only asks it to let old ones
go (`recycle_verdict` is the pool's answer for each), the pool replaces them on its newest
template version as it replaces any desktop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.planning import Slot
from workflows.rollout_messages import (
    CanaryProgress,
    CanaryResult,
    RolloutCandidate,
    RolloutProgress,
    RolloutStatus,
    RolloutStrategy,
    RolloutView,
)

MAX_BATCH_SIZE = 100
RECYCLE_LIMIT = 100  # desktops in one recycle request


def floor_limit(prestarted: int) -> int:
    """The highest floor a rollout can keep: one below the reserve. The pool builds a replacement
    only once a desktop has gone, so with every reserve desktop held nothing could ever go."""
    return max(prestarted - 1, 0)


def default_floor(prestarted: int, strategy: RolloutStrategy) -> int:
    """Rolling: keep at least half of the prestarted desktops ready (rounded up, within the limit).
    Immediate: no floor."""
    if strategy is RolloutStrategy.IMMEDIATE:
        return 0
    return min(math.ceil(prestarted / 2), floor_limit(prestarted))


def floor_refusal(floor: int, prestarted: int) -> str | None:
    if floor < 0:
        return "floor: must be 0 or more"
    if floor > floor_limit(prestarted):
        return (
            f"floor: must be at most {floor_limit(prestarted)} for a pool with {prestarted} prestarted desktops "
            "(a replacement is built only once an old desktop has gone)"
        )
    return None


# --- the pool's answer to a recycle request ----------------------------------------------


class Verdict(StrEnum):
    LEAVE = "leave"  # idle, old version: it goes now
    LEAVING = "leaving"  # already on its way out: taken (a repeat is answered alike)
    DEFER = "defer"  # in use, old version: goes when its user is done


def recycle_verdict(slot: Slot | None, version: int, current: int, when_released: bool) -> Verdict | str:
    """What the pool does with one desktop a rollout asks it to let go; a string is a refusal.

    An assigned desktop is never taken from its user: at most marked to go once released."""
    if slot is None:
        return "not in the pool"
    if slot is Slot.REMOVING:
        return Verdict.LEAVING
    if version == current:
        return f"already on the current template version {current}"
    if slot in (Slot.READY, Slot.STANDBY):
        return Verdict.LEAVE
    if slot is Slot.ASSIGNED and when_released:
        return Verdict.DEFER
    return f"not idle ({slot.value})"


def removal_order(candidates: list[RolloutCandidate]) -> list[RolloutCandidate]:
    """Powered-off first: they hold no ready capacity (the list keeps the pool's order otherwise)."""
    return sorted(candidates, key=lambda c: c.slot != Slot.STANDBY.value)


# --- the rollout's state and its bookkeeping ---------------------------------------------


@dataclass
class RolloutState:
    pool_id: str
    strategy: RolloutStrategy
    # None until the first look: the default for the pool's prestarted count.
    floor: int | None
    # 0: unbounded (immediate).
    batch_size: int
    max_failures: int
    recycle_assigned: bool
    # The pool's newest template version: followed if it changes during the rollout.
    target_version: int
    status: RolloutStatus = RolloutStatus.RUNNING
    done: int = 0
    total: int = 0
    # Sent away by this rollout and still in the pool.
    tracked: list[str] = field(default_factory=list)
    building: int = 0
    # The pool's failure counter of the target version at the first look at it, and the
    # failures counted on earlier targets (the template changed during the rollout).
    base_failed: int | None = None
    failures_before: int = 0
    failures: int = 0
    # Failures count against max_failures from here (moved on resume).
    failures_allowed_from: int = 0
    # Resumed: the next look moves failures_allowed_from. A paused rollout looks seldom, and the
    # pool goes on building meanwhile: a failure it had before the resume is not counted after it.
    count_failures_from_next_look: bool = False
    # The builds in flight at that look: started before the resume, under what the administrator
    # resumed over (a quota since raised), so their failures do not count either.
    excused: list[str] = field(default_factory=list)
    canary: CanaryProgress = field(default_factory=CanaryProgress)
    # The pool's counters when the canary started watching: a build up = healthy, a failure = not.
    canary_base_up: int | None = None
    canary_base_failed: int = 0
    paused_reason: str = ""
    waiting: str = ""
    reason: str = ""
    ready: int = 0
    lowest_ready: int | None = None
    deferred: int = 0
    observations: int = 0
    # Let the pool try creating at once (on start and on resume), if it is restrained.
    lift_restraint: bool = True
    # Failed desktops cleared from the read model (at the start and at the end).
    cleared: int = 0
    cleared_at_start: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in (RolloutStatus.COMPLETED, RolloutStatus.CANCELLED, RolloutStatus.FAILED)

    @property
    def canary_passed(self) -> bool:
        return self.canary.result in (CanaryResult.READY, CanaryResult.NOT_NEEDED)


def observe(state: RolloutState, view: RolloutView) -> None:
    """Take in one look at the pool: desktops gone, failures, the canary, the ready count."""
    state.observations += 1
    if state.floor is None:
        state.floor = default_floor(view.prestarted, state.strategy)
    if view.template_version != state.target_version:
        # The template changed again: the newest version is the target, with a canary of its own.
        state.failures_before = state.failures
        state.failures_allowed_from = state.failures
        state.target_version = view.template_version
        state.base_failed = None
        state.canary, state.canary_base_up = CanaryProgress(), None
    if state.base_failed is None:
        state.base_failed = view.failed
    if state.canary_base_up is None:
        state.canary_base_up, state.canary_base_failed = view.up, view.failed
        if view.current_up > 0 and state.canary.result is CanaryResult.PENDING:
            state.canary = CanaryProgress(result=CanaryResult.READY, reason="a desktop on this version is already up")
    still = set(view.leaving)
    state.done += sum(1 for d in state.tracked if d not in still)
    state.tracked = [d for d in state.tracked if d in still]
    state.failures = state.failures_before + max(0, view.failed - state.base_failed)
    if state.count_failures_from_next_look:
        state.count_failures_from_next_look = False
        state.failures_allowed_from = state.failures
        state.excused = list(view.building)
    elif state.excused:
        _excuse_failed_builds(state, view)
    state.ready = view.ready
    state.lowest_ready = view.ready if state.lowest_ready is None else min(state.lowest_ready, view.ready)
    state.building = len(view.building)
    state.deferred = view.marked
    state.total = state.done + len(state.tracked) + view.remaining
    _watch_canary(state, view)


def _excuse_failed_builds(state: RolloutState, view: RolloutView) -> None:
    """Builds in flight at the resume that have left the pool since failed (one that came up is still
    in it): each moves the failures allowed, and a canary's base, by one. (A floating desktop that came
    up, was used and destroyed between two looks would be taken for a failure: bounded by the failures
    counted, so at worst one failure of a later build goes uncounted, and only in that race.)"""
    building, present = set(view.building), set(view.present)
    gone = sum(1 for d in state.excused if d not in building and d not in present)
    state.excused = [d for d in state.excused if d in building]
    excused = min(gone, max(0, state.failures - state.failures_allowed_from))
    state.failures_allowed_from += excused
    if state.canary.result in (CanaryResult.PENDING, CanaryResult.BUILDING):
        state.canary_base_failed += excused


def _watch_canary(state: RolloutState, view: RolloutView) -> None:
    canary = state.canary
    if canary.result not in (CanaryResult.PENDING, CanaryResult.BUILDING):
        return
    # Seen building or not (a quick build may come and go between two looks), it is the one the pool names.
    if state.canary_base_up is not None and view.up > state.canary_base_up:
        canary.result, canary.reason = CanaryResult.READY, "came up healthy"
        canary.desktop_id = canary.desktop_id or view.last_up or None
    elif view.failed > state.canary_base_failed:
        canary.result = CanaryResult.FAILED
        canary.reason = view.last_failure or "failed"
        canary.desktop_id = canary.desktop_id or view.last_failed or None
    elif view.building:
        canary.result = CanaryResult.BUILDING
        canary.desktop_id = canary.desktop_id or view.building[0]


@dataclass
class Step:
    """What the rollout does after a look: send desktops away, mark desktops in use, or change status."""

    recycle: list[str] = field(default_factory=list)
    mark: list[str] = field(default_factory=list)
    pause: str = ""
    complete: bool = False
    cancel: str = ""
    waiting: str = ""


def plan_step(state: RolloutState, view: RolloutView) -> Step:
    """The next step of a running rollout, from its state after `observe(state, view)`.

    In flight = desktops sent away and still leaving + current-version desktops being built;
    at most one (the canary) until a desktop on the new version has come up, then at most
    `batch_size`. A ready desktop goes only while the ready count stays at or above the floor;
    a powered-off one holds no ready capacity and may always go.
    """
    if view.being_removed:
        return Step(cancel="the pool is being removed")
    if state.status is not RolloutStatus.RUNNING:
        return Step()
    canary = state.canary
    if canary.result is CanaryResult.FAILED:
        who = f" {canary.desktop_id}" if canary.desktop_id else ""
        return Step(pause=f"canary desktop{who} failed: {canary.reason}")
    over = state.failures - state.failures_allowed_from
    if over > state.max_failures:
        tail = f"; last: {view.last_failure}" if view.last_failure else ""
        version, most = state.target_version, state.max_failures
        return Step(pause=f"{over} desktops failed on template version {version} (at most {most}){tail}")
    mark = list(view.in_use) if state.recycle_assigned and state.canary_passed else []
    in_flight = len(state.tracked) + len(view.building)
    if state.canary_passed:
        room = state.batch_size - in_flight if state.batch_size else len(view.candidates)
    else:
        room = 1 - in_flight
    chosen: list[str] = []
    # The pool's reserve may have been lowered since: a floor it can no longer keep would hold forever.
    floor = min(state.floor or 0, floor_limit(view.prestarted))
    ready_may_go = view.ready - floor
    held_by_floor = False
    for candidate in removal_order(view.candidates):
        if len(chosen) >= room:
            break
        if candidate.slot == Slot.READY.value:
            if ready_may_go <= 0:
                held_by_floor = True
                continue
            ready_may_go -= 1
        chosen.append(candidate.desktop_id)
    if chosen or mark:
        return Step(recycle=chosen, mark=mark)
    if view.remaining == 0 and not state.tracked and not view.building:
        return Step(complete=True)
    return Step(waiting=_waiting(state, view, in_flight, room, floor if held_by_floor else None))


def _waiting(state: RolloutState, view: RolloutView, in_flight: int, room: int, held_at: int | None) -> str:
    if not state.canary_passed and in_flight:
        who = f" {state.canary.desktop_id}" if state.canary.desktop_id else ""
        reason = f"waiting for the canary desktop{who} to come up on version {state.target_version}"
    elif held_at is not None:
        reason = f"holding at the floor: {view.ready} ready, floor {held_at}"
    elif in_flight and room <= 0:
        reason = f"{in_flight} in flight (batch of {state.batch_size})"
    elif not view.candidates:
        reason = f"waiting for {view.remaining} old desktops to come back idle or finish building"
    else:
        reason = f"{in_flight} in flight"
    if view.restrained_reason:
        reason += f"; pool restrained: {view.restrained_reason}"
    return reason


# --- commands --------------------------------------------------------------------------


def command_refusal(status: RolloutStatus, command: str) -> str | None:
    """pause: a running rollout; resume: a paused one; cancel: one not finished."""
    if command == "pause" and status is not RolloutStatus.RUNNING:
        return f"the rollout is {status.value}: only a running rollout can be paused"
    if command == "resume" and status is not RolloutStatus.PAUSED:
        return f"the rollout is {status.value}: only a paused rollout can be resumed"
    if command == "cancel" and status not in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
        return f"the rollout is {status.value}: nothing to cancel"
    return None


def pause(state: RolloutState, reason: str) -> None:
    state.status, state.paused_reason, state.waiting = RolloutStatus.PAUSED, reason, ""


def resume(state: RolloutState, from_next_look: bool = True) -> None:
    """Running again: failures count against the limit afresh, a failed canary is tried again,
    and the pool may create at once.

    Afresh from the pool's count at the next look (`from_next_look`), not from the last one:
    failures the pool had while the rollout was paused are the ones the administrator resumed
    over. (False: from the last look, as rollouts resumed before this rule did.)
    """
    state.status, state.paused_reason = RolloutStatus.RUNNING, ""
    state.failures_allowed_from = state.failures
    state.count_failures_from_next_look = from_next_look
    if state.canary.result is CanaryResult.FAILED:
        state.canary, state.canary_base_up = CanaryProgress(), None
    state.lift_restraint = True


def finish(state: RolloutState, status: RolloutStatus, now: datetime, reason: str = "") -> None:
    state.status, state.reason, state.finished_at, state.waiting = status, reason, now, ""
    if status is RolloutStatus.COMPLETED and state.canary.result is CanaryResult.PENDING:
        state.canary.result, state.canary.reason = CanaryResult.NOT_NEEDED, "nothing had to be built"


def progress_of(state: RolloutState) -> RolloutProgress:
    return RolloutProgress(
        pool_id=state.pool_id,
        strategy=state.strategy,
        status=state.status,
        target_version=state.target_version,
        done=state.done,
        total=state.total,
        leaving=len(state.tracked),
        building=state.building,
        failures=state.failures,
        max_failures=state.max_failures,
        floor=state.floor,
        batch_size=state.batch_size,
        canary=CanaryProgress(state.canary.desktop_id, state.canary.result, state.canary.reason),
        ready=state.ready,
        lowest_ready=state.lowest_ready,
        paused_reason=state.paused_reason,
        waiting=state.waiting,
        deferred=state.deferred,
        cleared=state.cleared,
        observations=state.observations,
        reason=state.reason,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )


def details(state: RolloutState) -> str:
    """What an operator reads on the rollout's page in the Temporal UI."""
    line = (f"recreate {state.pool_id} on template v{state.target_version} ({state.strategy.value}): "
            f"{state.status.value}, {state.done} of {state.total} replaced, {len(state.tracked)} leaving, "
            f"{state.building} building, {state.failures} failed (at most {state.max_failures}), "
            f"{state.ready} ready (floor {'-' if state.floor is None else state.floor}), "
            f"canary {state.canary.result.value}")  # fmt: skip
    for label, text in (("paused", state.paused_reason), ("waiting", state.waiting), ("ended", state.reason)):
        if text:
            line += f"\n{label}: {text}"
    return line
