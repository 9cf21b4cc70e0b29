"""A template rollout as the pool's bookkeeping: what a rollout sees of the pool, and letting
old-version desktops go when it asks.

Plain code over the pool's book, no awaits, like pool_removal: the pool workflow's query and
update handler call it; tests drive it directly. Which desktop may go is
rollout_rules.recycle_verdict; the pool replaces whatever leaves on its newest version.
"""

from __future__ import annotations

from workflows.planning import Slot, pick_for_removal
from workflows.pool_model import Outgoing
from workflows.pool_spec import Assignment, ReleasePolicy
from workflows.pool_state import PoolBook
from workflows.rollout_messages import (
    RecycleInput,
    RecycleRefusal,
    RecycleResult,
    RolloutCandidate,
    RolloutView,
    RolloutViewInput,
)
from workflows.rollout_rules import RECYCLE_LIMIT, Verdict, recycle_verdict

RECYCLE_REASON = "recreate: replaced by template version {version}"


def recycle_refusal(book: PoolBook, request: RecycleInput) -> str | None:
    if book.state.removal is not None:
        return "the pool is being removed: nothing to recreate"
    if len(request.desktop_ids) > RECYCLE_LIMIT:
        return f"at most {RECYCLE_LIMIT} desktops in one recycle request"
    return None


def take_recycle(book: PoolBook, request: RecycleInput) -> RecycleResult:
    """Idle old-version desktops leave (marked removing and told to, as a scale-down does), so
    the pool builds their replacements on its current version; in use ones are marked to go once
    their user is done, if asked. A repeat finds them leaving and answers alike."""
    state, result = book.state, RecycleResult()
    current = state.template_version
    reason = request.reason or RECYCLE_REASON.format(version=current)
    for desktop_id in request.desktop_ids:
        desktop = book.by_id.get(desktop_id)
        slot = desktop.slot if desktop is not None else None
        verdict = recycle_verdict(slot, desktop.template_version if desktop else 0, current, request.when_released)
        if desktop is None or not isinstance(verdict, Verdict):
            result.refused.append(RecycleRefusal(desktop_id, str(verdict)))
        elif verdict is Verdict.DEFER:
            desktop.recycle_on_release = True
            result.deferred.append(desktop_id)
        else:
            if verdict is Verdict.LEAVE:
                # A standby being started leaves instead: it no longer counts as on its way up.
                book.update(desktop, slot=Slot.REMOVING, starting=False)
                book.send(Outgoing(desktop_id, "remove", reason=reason))
            result.accepted.append(desktop_id)
    if request.lift_restraint:
        state.restrained_until, state.restrained_reason, state.consecutive_failures = None, "", 0
    return result


def comes_back(book: PoolBook) -> bool:
    """Whether a desktop released by its user comes back to the pool (reverted, or personal)."""
    spec = book.state.spec
    return spec.assignment is Assignment.PERSONAL or spec.release is not ReleasePolicy.DESTROY


def rollout_view(book: PoolBook, request: RolloutViewInput) -> RolloutView:
    state = book.state
    current = state.template_version
    old = [d for d in state.desktops if d.template_version != current]
    limit = max(0, request.limit)
    candidates = [
        RolloutCandidate(c.desktop_id, c.slot.value)
        for c in pick_for_removal(book.idle(), len(state.desktops), current)
        if c.template_version != current
    ]
    # Still to replace besides the idle ones: those being built, and those being reverted after use
    # (back idle in a moment). One awaiting an administrator's return may wait for days: not waited for.
    waiting_slots = {Slot.PROVISIONING, Slot.RELEASING} if comes_back(book) else {Slot.PROVISIONING}
    idle_old = sum(1 for d in old if d.slot in (Slot.READY, Slot.STANDBY))
    builds = book.builds(current)
    new = [d for d in state.desktops if d.template_version == current]
    return RolloutView(
        pool_id=state.pool_id,
        template_version=current,
        prestarted=state.spec.prestarted,
        ready=book.counts().ready,
        candidates=candidates[:limit],
        remaining=idle_old + sum(1 for d in old if d.slot in waiting_slots and not d.recycle_on_release),
        in_use=[d.desktop_id for d in old if d.slot is Slot.ASSIGNED and not d.recycle_on_release][:limit],
        marked=sum(1 for d in old if d.recycle_on_release and d.slot is not Slot.REMOVING),
        leaving=[d for d in request.tracked if d in book.by_id],
        building=[d.desktop_id for d in new if d.slot is Slot.PROVISIONING],
        current_up=sum(1 for d in new if d.slot not in (Slot.PROVISIONING, Slot.REMOVING)),
        up=builds.up if builds else 0,
        failed=builds.failed if builds else 0,
        last_failure=builds.last_failure if builds else "",
        last_up=builds.last_up_desktop if builds else "",
        last_failed=builds.last_failed_desktop if builds else "",
        being_removed=state.removal is not None,
        restrained_reason=state.restrained_reason,
        present=[d for d in request.asked if d in book.by_id],
    )
