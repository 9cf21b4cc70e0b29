"""The bookkeeping on a pool's durable state (workflows/pool_model.py): claims, the line, desktop reports.

Plain code over one dataclass, no awaits: the pool workflow's handlers call it
atomically, continue-as-new carries the dataclass, tests drive it directly.
The pool is the only authority on who holds which desktop.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from workflows.activity_io import CloudErrorType
from workflows.desktop_index import DesktopIndex
from workflows.messages import (
    ClaimOutcome,
    ClaimRequest,
    ClaimStatus,
    DesktopReport,
    PoolCounts,
    ReportKind,
)
from workflows.planning import IdleCandidate, Slot
from workflows.pool_model import Outgoing, PoolDesktop, PoolState, TemplateVersion, VersionBuilds, WaitingClaim
from workflows.pool_spec import Assignment, Template

RESTRAIN_AFTER_FAILURES = 3
# Cloud answers no retry can fix (quota, a bad request, a missing image or
# flavor): the pool is restrained at the first one, with the cloud's reason.
RESTRAIN_AT_ONCE = (CloudErrorType.QUOTA, CloudErrorType.BAD_REQUEST, CloudErrorType.NOT_FOUND)
# How long a desktop's report of a sick cloud holds the pool's further creates.
CLOUD_TROUBLE_HOLD_S = 15
FINISHED_CLAIMS_KEPT = 1000
VERSION_BUILDS_KEPT = 10
RECYCLED_ON_RELEASE = "recreate: an old template version, back from its user"
BEING_REMOVED = "pool is being removed: no new claims"


class PoolBook:
    """Indexes over PoolState plus the operations that change it.

    A desktop's slot, power, start and holder change only through `update` (or the
    methods here), which keeps the index (workflows/desktop_index.py) current."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        if not state.templates:
            state.templates.append(TemplateVersion(state.template_version, state.spec.template))
        self.index = DesktopIndex(state.desktops, state.template_version)
        self.by_id = self.index.by_id
        # The newest finished outcome of each request id among finished_claims.
        self.finished = {outcome.request_id: outcome for outcome in state.finished_claims}

    def update(self, desktop: PoolDesktop, **changes: Any) -> PoolDesktop:
        """Change a desktop's fields and file it again."""
        for name, value in changes.items():
            setattr(desktop, name, value)
        self.index.file(desktop)
        return desktop

    # --- queries ---------------------------------------------------------------

    def counts(self) -> PoolCounts:
        """Desktops per slot; a standby being started is left out (counted by starting())."""
        return self.index.counts(waiting=len(self.state.queue))

    def starting(self) -> int:
        return self.index.starting()

    def provisioning_running(self) -> int:
        return self.index.building_running()

    def idle(self) -> list[IdleCandidate]:
        """The idle desktops, from the index; in no set order: every pick sorts them by keys that
        include the desktop's number, unique among live desktops."""
        return [IdleCandidate(d.desktop_id, d.number, d.slot, d.template_version) for d in self.index.idle.values()]

    def builds(self, version: int) -> VersionBuilds | None:
        return next((b for b in self.state.builds if b.version == version), None)

    def template(self, version: int) -> Template:
        return next(t.template for t in self.state.templates if t.version == version)

    def held_by(self, user: str) -> list[PoolDesktop]:
        """The user's desktops, in the order of state.desktops."""
        return self._in_order(self.index.held.get(user))

    def _in_order(self, some: dict[str, PoolDesktop] | None) -> list[PoolDesktop]:
        if not some:
            return []
        if len(some) == 1:
            return list(some.values())
        return [d for d in self.state.desktops if d.desktop_id in some]

    def outcome_for(self, request_id: str) -> ClaimOutcome | None:
        """How a request stands: its own record, else that of the request it repeats (an alias
        names a request held or waiting when the repeat came: one hop, so aliases never go round)."""
        known = self._outcome_of(request_id)
        original = self.state.aliases.get(request_id)
        if known is not None or original is None:
            return known
        known = self._outcome_of(original)
        # A copy: a query answered here must not change the kept outcome (queries are not replayed).
        return dataclasses.replace(known, request_id=request_id) if known is not None else None

    def _outcome_of(self, request_id: str) -> ClaimOutcome | None:
        holders = self._in_order(self.index.by_request.get(request_id))
        if holders:
            return self._assigned(holders[0])
        for position, waiting in enumerate(self.state.queue, start=1):
            if waiting.request_id == request_id:
                return self._waiting(waiting, position)
        return self.finished.get(request_id)

    def claims_of(self, user: str) -> list[ClaimOutcome]:
        """A user's current claims: the desktops they hold, then their places in line."""
        held = [self._assigned(d) for d in sorted(self.held_by(user), key=lambda d: d.number)]
        line = enumerate(self.state.queue, start=1)
        return held + [self._waiting(waiting, position) for position, waiting in line if waiting.user == user]

    # --- claims ------------------------------------------------------------------

    def claim(self, request: ClaimRequest, now: datetime) -> ClaimOutcome:
        known = self.outcome_for(request.request_id)
        if known is not None:
            return known
        if self.state.removal is not None:
            return self._finish(request, ClaimStatus.REJECTED, BEING_REMOVED)
        spec = self.state.spec
        held = self.held_by(request.user)
        queued = [w for w in self.state.queue if w.user == request.user]
        if spec.assignment is Assignment.PERSONAL:
            if held:
                return self._repeat(request, held[0].request_id)
            return self._finish(request, ClaimStatus.REJECTED, "no desktop of this personal pool is assigned to you")
        if spec.max_desktops_per_user == 1 and (held or queued):
            # One desktop per user: a repeated Connect gets the same desktop
            # (or the same place in line), even while the pool is disabled.
            return self._repeat(request, held[0].request_id if held else queued[0].request_id)
        if not spec.enabled:
            return self._finish(request, ClaimStatus.REJECTED, "pool is disabled: no new claims")
        if len(held) + len(queued) >= spec.max_desktops_per_user:
            return self._finish(
                request, ClaimStatus.REJECTED, f"per-user maximum of {spec.max_desktops_per_user} desktops reached"
            )
        if not self.state.queue:
            outcome = self._assign_idle(request.user, request.request_id)
            if outcome is not None:
                return outcome
        waiting = WaitingClaim(request.user, request.request_id, now)
        self.state.queue.append(waiting)
        return self._waiting(waiting, len(self.state.queue))

    def _repeat(self, request: ClaimRequest, original: str | None) -> ClaimOutcome:
        if original is not None and original != request.request_id:
            self.state.aliases[request.request_id] = original
            while len(self.state.aliases) > FINISHED_CLAIMS_KEPT:
                del self.state.aliases[next(iter(self.state.aliases))]
        known = self.outcome_for(request.request_id)
        assert known is not None
        return known

    def serve_queue(self) -> None:
        """First come, first served: each idle desktop goes to the head of the line."""
        while self.state.queue:
            head = self.state.queue[0]
            if self._assign_idle(head.user, head.request_id) is None:
                return
            self.state.queue.pop(0)

    def expire_claims(self, now: datetime) -> None:
        limit = timedelta(seconds=self.state.spec.timers.claim_wait_timeout_s)
        keep: list[WaitingClaim] = []
        for waiting in self.state.queue:
            if now - waiting.queued_at >= limit:
                request = ClaimRequest(waiting.user, waiting.request_id)
                self._finish(request, ClaimStatus.EXPIRED, "waited longer than the pool's claim wait timeout")
            else:
                keep.append(waiting)
        self.state.queue = keep

    def end_line(self, reason: str) -> None:
        """Every claim waiting in line is over (its pool is going away)."""
        for waiting in self.state.queue:
            self._finish(ClaimRequest(waiting.user, waiting.request_id), ClaimStatus.ENDED, reason)
        self.state.queue = []

    def next_claim_expiry(self) -> datetime | None:
        if not self.state.queue:
            return None
        return self.state.queue[0].queued_at + timedelta(seconds=self.state.spec.timers.claim_wait_timeout_s)

    # --- reports from desktops ---------------------------------------------------

    def report(self, report: DesktopReport, now: datetime) -> None:
        desktop = self.by_id.get(report.desktop_id)
        if desktop is None:
            return  # a late report from a desktop already gone
        if report.kind is ReportKind.READY:
            if desktop.slot in (Slot.PROVISIONING, Slot.RELEASING, Slot.AWAITING_RETURN, Slot.STANDBY, Slot.READY):
                back_from_use = desktop.slot in (Slot.RELEASING, Slot.AWAITING_RETURN)
                if desktop.slot is Slot.PROVISIONING:
                    self.state.consecutive_failures = 0
                    self.state.restrained_reason = ""
                    self.state.restrained_until = None
                    builds = self._count_build(desktop.template_version)
                    builds.up, builds.last_up_desktop = builds.up + 1, desktop.desktop_id
                self.update(
                    desktop,
                    slot=Slot.READY if report.powered_on else Slot.STANDBY,
                    powered_on=report.powered_on,
                    starting=False,
                    address=report.address or desktop.address,
                    user=None,
                    request_id=None,
                )
                if back_from_use and desktop.recycle_on_release:
                    # A rollout marked it while in use: now idle, it goes and is replaced.
                    self.update(desktop, slot=Slot.REMOVING)
                    self.send(Outgoing(desktop.desktop_id, "remove", reason=RECYCLED_ON_RELEASE))
        elif report.kind is ReportKind.ASSIGNMENT_REJECTED:
            self.update(desktop, slot=Slot.REMOVING, user=None, request_id=None)
            if report.user and report.request_id:
                self.state.queue.insert(0, WaitingClaim(report.user, report.request_id, now))
        elif report.kind is ReportKind.RELEASED:
            self._end_claim(desktop)
            slot = desktop.slot if desktop.slot is Slot.REMOVING else Slot.RELEASING
            self.update(desktop, slot=slot, user=None, request_id=None)
        elif report.kind is ReportKind.AWAITING_RETURN:
            self.update(desktop, slot=Slot.AWAITING_RETURN, user=None, request_id=None)
        elif report.kind is ReportKind.CLOUD_TROUBLE and desktop.slot is Slot.PROVISIONING:
            self._hold_for_cloud(report.reason, now)
        elif report.kind is ReportKind.GONE:
            self._end_claim(desktop)
            # By identity: list.remove would compare field by field with every desktop before it.
            del self.state.desktops[next(i for i, d in enumerate(self.state.desktops) if d is desktop)]
            self.index.unfile(desktop.desktop_id)
            if report.failed:
                self._count_failure(report.reason, now, report.failure_type)
                builds = self._count_build(desktop.template_version)
                builds.failed, builds.last_failure = builds.failed + 1, report.reason
                builds.last_failed_desktop = desktop.desktop_id

    def _count_build(self, version: int) -> VersionBuilds:
        builds = self.builds(version)
        if builds is None:
            builds = VersionBuilds(version)
            self.state.builds.append(builds)
            del self.state.builds[:-VERSION_BUILDS_KEPT]
        return builds

    def _end_claim(self, desktop: PoolDesktop) -> None:
        """Remember how a claim ended, so a late retry of it never takes a second desktop."""
        if desktop.slot is Slot.ASSIGNED and desktop.user and desktop.request_id:
            request = ClaimRequest(desktop.user, desktop.request_id)
            self._finish(request, ClaimStatus.ENDED, f"desktop {desktop.name} has been released")

    def _hold_for_cloud(self, reason: str, now: datetime) -> None:
        """A create keeps failing on a sick cloud and goes on trying: no new creates for a while
        (they would only fail too), and the reason shown. The first desktop up clears it."""
        until = now + timedelta(seconds=CLOUD_TROUBLE_HOLD_S)
        if self.state.restrained_until is None or self.state.restrained_until < until:
            self.state.restrained_until = until
        self.state.restrained_reason = f"cloud unavailable: {reason}; creates held, retrying"

    def _count_failure(self, reason: str, now: datetime, failure_type: str = "") -> None:
        """Back off after repeated failures instead of hammering a broken cloud or image.

        Restrained pools try again by themselves after the backoff: the first
        desktop that comes up clears the state (the anchors freeze for good).
        """
        self.state.consecutive_failures += 1
        failures = self.state.consecutive_failures
        at_once = failure_type in RESTRAIN_AT_ONCE
        if failures >= RESTRAIN_AFTER_FAILURES or at_once:
            backoff = min(30 * 2 ** max(0, failures - (1 if at_once else RESTRAIN_AFTER_FAILURES)), 600)
            self.state.restrained_until = now + timedelta(seconds=backoff)
            self.state.restrained_reason = (
                f"{failures} desktops failed in a row, last: {reason}; retrying in {backoff}s"
            )

    # --- changes the workflow carries out ----------------------------------------

    def add_desktop(self, number: int, powered_on: bool) -> PoolDesktop:
        state = self.state
        desktop = PoolDesktop(
            desktop_id=f"{state.pool_id}.{state.next_seq}",
            number=number,
            name=state.spec.desktop_name(number),
            template_version=state.template_version,
            slot=Slot.PROVISIONING,
            powered_on=powered_on,
        )
        state.next_seq += 1
        state.desktops.append(desktop)
        self.index.file(desktop)
        return desktop

    def send(self, message: Outgoing) -> None:
        self.state.outbox.append(message)

    # --- internals ---------------------------------------------------------------

    def assign_personal(self, user: str, request_id: str, desktop_id: str | None) -> ClaimOutcome:
        """Personal pools: an administrator gives a desktop (a given one, or any idle) to a user."""
        request = ClaimRequest(user, request_id)
        known = self.outcome_for(request_id)
        if known is not None:
            return known
        if self.state.removal is not None:
            return self._finish(request, ClaimStatus.REJECTED, BEING_REMOVED)
        spec = self.state.spec
        if spec.assignment is not Assignment.PERSONAL:
            return self._finish(request, ClaimStatus.REJECTED, "only desktops of personal pools are assigned by hand")
        if len(self.held_by(user)) >= spec.max_desktops_per_user:
            return self._finish(request, ClaimStatus.REJECTED, f"{user} already holds {spec.max_desktops_per_user}")
        if desktop_id is None:
            outcome = self._assign_idle(user, request_id)
            return outcome or self._finish(request, ClaimStatus.REJECTED, "no unassigned desktop in this pool")
        desktop = self.by_id.get(desktop_id)
        if desktop is None or desktop.slot not in (Slot.READY, Slot.STANDBY):
            return self._finish(
                request, ClaimStatus.REJECTED, f"desktop {desktop_id} is not an unassigned desktop here"
            )
        return self._assign(desktop, user, request_id)

    def _assign_idle(self, user: str, request_id: str) -> ClaimOutcome | None:
        choice = self.index.first_for_claim(self.state.template_version)
        if choice is None:
            return None
        return self._assign(choice, user, request_id)

    def _assign(self, desktop: PoolDesktop, user: str, request_id: str) -> ClaimOutcome:
        was_running = desktop.slot is Slot.READY
        self.update(desktop, slot=Slot.ASSIGNED, user=user, request_id=request_id)
        self.send(Outgoing(desktop.desktop_id, "assign", user=user, request_id=request_id))
        outcome = self._assigned(desktop)
        outcome.desktop_ready = was_running
        return outcome

    def _assigned(self, desktop: PoolDesktop) -> ClaimOutcome:
        return ClaimOutcome(
            request_id=desktop.request_id or "",
            user=desktop.user or "",
            status=ClaimStatus.ASSIGNED,
            desktop_id=desktop.desktop_id,
            desktop_name=desktop.name,
            address=desktop.address,
            desktop_ready=desktop.powered_on and not desktop.starting,
        )

    def _waiting(self, waiting: WaitingClaim, position: int) -> ClaimOutcome:
        full = self.counts().live + self.starting() >= self.state.spec.max_desktops
        return ClaimOutcome(
            request_id=waiting.request_id,
            user=waiting.user,
            status=ClaimStatus.WAITING,
            position=position,
            preparing=not full,
            reason="pool is full: waiting for a desktop to free up" if full else "a desktop is being prepared",
        )

    def _finish(self, request: ClaimRequest, status: ClaimStatus, reason: str) -> ClaimOutcome:
        outcome = ClaimOutcome(request.request_id, request.user, status, reason=reason)
        finished = self.state.finished_claims
        finished.append(outcome)
        self.finished[outcome.request_id] = outcome
        for dropped in finished[:-FINISHED_CLAIMS_KEPT]:
            if self.finished.get(dropped.request_id) is dropped:
                del self.finished[dropped.request_id]
        del finished[:-FINISHED_CLAIMS_KEPT]
        return outcome
