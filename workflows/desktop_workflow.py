"""DesktopWorkflow: one desktop from provisioning to destroyed (or reverted, again and again).

provision -> ready/standby -> assigned -> connected <-> disconnected -> released
-> destroyed | reverted (ready again) | awaiting return (manual pools). On its pool's
removal it leaves from wherever it is: destroyed, or detached (its server kept).
It owns the session timers; they are durable timers, so a dead worker loses
none. Failures are cleaned up (the server deleted) and reported, never kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.activity_io import PowerAction
from workflows.desktop_rules import detach_refusal, power_refusal
from workflows.desktop_steps import DesktopSteps, cause_of
from workflows.messages import (
    AssignInput,
    DesktopSnapshot,
    DesktopStatus,
    DesktopStatusInput,
    DesktopStatusResult,
    DesktopWorkflowInput,
    DesktopWorkflowResult,
    DetachInput,
    DetachResult,
    OperatePowerInput,
    OperatePowerResult,
    PowerInput,
    PowerOperation,
    ReleaseInput,
    ReleaseResult,
    RemoveInput,
    ReportKind,
    ReturnInput,
    ServerLostInput,
    SessionEvent,
    SessionEventKind,
)
from workflows.pool_spec import Assignment
from workflows.session_rules import SESSION_STATES, TimerAction, apply_session_event, next_deadline

RELEASABLE = (*SESSION_STATES, DesktopStatus.STARTING)
IDLE = (DesktopStatus.READY, DesktopStatus.STANDBY)
FINAL = (DesktopStatus.DESTROYED, DesktopStatus.FAILED, DesktopStatus.DETACHED)
# An agent reports a handful of events per session; more kept before an assignment is noise.
DEFERRED_EVENTS_KEPT = 8
PATCH_IDLE_KEEPS_EVENTS = "desktop-idle-keeps-events-for-its-assignment"
# How far an agent event may run ahead of the assignment it belongs to.
OVERTAKE_WINDOW = timedelta(minutes=2)


@workflow.defn
class DesktopWorkflow(DesktopSteps):
    @workflow.init
    def __init__(self, input: DesktopWorkflowInput) -> None:
        self.input = input
        self.snap = input.carried or DesktopSnapshot(status=DesktopStatus.PROVISIONING, powered_on=input.power_on)
        self.assigns: list[AssignInput] = []
        self.release_request: ReleaseInput | None = None
        self.remove_request: RemoveInput | None = None
        self.power_request: PowerInput | None = None
        self.return_request: ReturnInput | None = None
        self.lost: ServerLostInput | None = None
        # An administrator's power operation (on, off, restart, forced restart): queued, in progress.
        self.operation: OperatePowerInput | None = None
        self.in_flight: PowerOperation | None = None
        # Agent events that arrived before the assignment they belong to was taken.
        self.deferred_events: list[tuple[datetime, SessionEvent]] = []
        self.projection_due = False
        self.wake = False
        self.projections: list[Any] = []

    # --- the run loop --------------------------------------------------------------

    @workflow.run
    async def run(self, input: DesktopWorkflowInput) -> DesktopWorkflowResult:
        if self.snap.status is DesktopStatus.PROVISIONING:
            await self._provision()
        while self.snap.status not in FINAL:
            if workflow.info().is_continue_as_new_suggested() and not self._requests_pending():
                await self._drain()
                # A signal taken while draining (an assignment, a release) is acted on
                # in this run: the next run starts from the snapshot alone.
                if not self._requests_pending():
                    workflow.continue_as_new(dataclasses.replace(self.input, carried=self.snap))
            deadline = next_deadline(self.snap, input.spec.timers, input.spec.assignment)
            timeout = (deadline.at - workflow.now()) if deadline else None
            if timeout is None or timeout.total_seconds() > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.wake, timeout=timeout)
            self.wake = False
            while await self._step():
                if self.snap.status in FINAL:
                    break
        await self._drain()
        return DesktopWorkflowResult(
            input.desktop_id, self.snap.status, self.snap.events[-1] if self.snap.events else ""
        )

    def _requests_pending(self) -> bool:
        """Signals taken but not yet acted on: act first, continue as new after."""
        # Events kept by an idle desktop wait for an assignment that may never come.
        deferred = self.deferred_events and self.snap.status not in IDLE
        return bool(
            self.assigns or self.release_request or self.remove_request or self.power_request
            or self.return_request or self.lost or deferred or self.operation
        )  # fmt: skip

    async def _step(self) -> bool:
        """Act on the most urgent request or timer; True when something was done, so the
        loop keeps stepping until nothing actionable is left before it sleeps again."""
        status = self.snap.status
        if self.lost is not None and status not in (DesktopStatus.PROVISIONING, DesktopStatus.RELEASING):
            lost, self.lost = self.lost, None
            if self.snap.user and self.snap.request_id and status is DesktopStatus.STARTING:
                await self._report(ReportKind.ASSIGNMENT_REJECTED, user=self.snap.user, request_id=self.snap.request_id)
            await self._destroy(f"replaced: {lost.reason}", failed=True)
            return True
        if self.remove_request and (status in IDLE or self.remove_request.force):
            # Idle: scale-down, recreate. Forced (the pool's removal): from any status the loop rests in.
            await self._leave_pool(self.remove_request)
            return True
        if self.release_request and status in RELEASABLE:
            request, self.release_request = self.release_request, None
            await self._release(request.reason)
            return True
        if self.return_request and status is DesktopStatus.AWAITING_RETURN:
            self.return_request = None
            await self._revert()
            return True
        if self.assigns:
            await self._take_assignments()
            return True
        if self.release_request:
            # It was for an assignment that never took: it must not end the next user's session.
            self.release_request = None
        if self.operation is not None:
            operation, self.operation = self.operation, None
            await self._operate_power(operation)
            return True
        if self.power_request and status in IDLE:
            power, self.power_request = self.power_request, None
            await self._set_idle_power(power.on)
            return True
        deadline = next_deadline(self.snap, self.input.spec.timers, self.input.spec.assignment)
        if deadline and deadline.at <= workflow.now():
            if deadline.action is TimerAction.RELEASE:
                await self._release(deadline.reason)
            else:
                self.snap.status = DesktopStatus.DISCONNECTED
                self.snap.disconnected_at = workflow.now()
                self.snap.pending_command = "disconnect"
                self._changed(deadline.reason)
            return True
        if self.projection_due:
            self._changed("session")
        return False

    # --- steps the loop chooses (the cloud steps are in DesktopSteps) ---------------

    async def _take_assignments(self) -> None:
        first, *others = self.assigns
        self.assigns = []
        for extra in others:  # the pool never sends two; answer them anyway
            await self._report(ReportKind.ASSIGNMENT_REJECTED, user=extra.user, request_id=extra.request_id)
        if self.snap.status not in IDLE:
            await self._report(ReportKind.ASSIGNMENT_REJECTED, user=first.user, request_id=first.request_id)
            return
        now = workflow.now()
        self.snap.user, self.snap.request_id, self.snap.assigned_at = first.user, first.request_id, now
        self.snap.connected_at = self.snap.session_started_at = self.snap.disconnected_at = None
        self.snap.idle_since = None
        if not self.snap.powered_on:
            self.snap.status = DesktopStatus.STARTING
            self._changed("assigned, starting")
            try:
                await self._power(PowerAction.START)
            except ActivityError as err:
                # The user goes back to the head of the line, not lost.
                await self._report(ReportKind.ASSIGNMENT_REJECTED, user=first.user, request_id=first.request_id)
                await self._destroy(f"could not start for its user: {cause_of(err)}", failed=True)
                return
            self.snap.powered_on = True
        self.snap.status = DesktopStatus.ASSIGNED
        self._changed("assigned")
        deferred, self.deferred_events = self.deferred_events, []
        for at, event in deferred:
            # Kept while idle long before this assignment: not this user's session.
            if now - at <= OVERTAKE_WINDOW:
                self._apply_event(event)

    async def _operate_power(self, request: OperatePowerInput) -> None:
        """An administrator's power operation, the rule asked again now that the loop acts on it."""
        refusal = power_refusal(self.snap.status, self.snap.powered_on, request.operation)
        if refusal is not None:
            self._changed(f"power {request.operation.value} by {request.actor} not done: {refusal}")
            return
        self.in_flight = request.operation
        try:
            if self.snap.status in IDLE and request.operation in (PowerOperation.ON, PowerOperation.OFF):
                # The pool keeps track of its idle desktops' power: the same step as its own requests.
                await self._set_idle_power(request.operation is PowerOperation.ON)
            else:
                await self._power_in_place(request.operation, request.actor)
        finally:
            self.in_flight = None

    # --- messages ------------------------------------------------------------------------

    @workflow.signal
    def assign(self, request: AssignInput) -> None:
        self.assigns.append(request)
        self.wake = True

    @workflow.signal
    def session_event(self, event: SessionEvent) -> None:
        status = self.snap.status
        # The pool answers a claim before its assignment signal arrives here, so under load
        # the user's connect may overtake it even to an idle desktop: keep it for then.
        overtaken = status in IDLE and workflow.patched(PATCH_IDLE_KEEPS_EVENTS)
        if self.assigns or status is DesktopStatus.STARTING or overtaken:
            self.deferred_events.append((workflow.now(), event))
            del self.deferred_events[:-DEFERRED_EVENTS_KEPT]
            return
        self._apply_event(event)

    def _apply_event(self, event: SessionEvent) -> None:
        wants_release = apply_session_event(self.snap, event.kind, workflow.now())
        if event.kind is SessionEventKind.CONNECT:
            self.snap.pending_command = None
        if wants_release and self.input.spec.assignment is Assignment.FLOATING:
            self.release_request = ReleaseInput(reason="user logged off")
        elif wants_release:
            apply_session_event(self.snap, SessionEventKind.DISCONNECT, workflow.now())
        self.projection_due = True
        self.wake = True

    @workflow.signal
    def remove(self, request: RemoveInput) -> None:
        if self.remove_request is not None and self.remove_request.detach and not request.detach:
            # An administrator chose to keep this server: a later scale-down must not delete it.
            return
        self.remove_request = request
        self.wake = True

    @workflow.signal
    def power(self, request: PowerInput) -> None:
        self.power_request = request
        self.wake = True

    @workflow.update
    def operate_power(self, request: OperatePowerInput) -> OperatePowerResult:
        """Power on or off, restart or force a restart; taken at once, carried out by the loop."""
        queued = request.operation not in (self.in_flight, self.operation.operation if self.operation else None)
        if queued:
            self.operation = request
            self.wake = True
        return OperatePowerResult(accepted=True, status=self.snap.status, queued=queued)

    @operate_power.validator
    def _validate_operate_power(self, request: OperatePowerInput) -> None:
        if self.remove_request is not None:
            raise ApplicationError("desktop is leaving its pool: no power operations")
        busy = self.in_flight or (self.operation.operation if self.operation else None)
        if busy is request.operation:
            return  # a repeat: answered alike, nothing added
        if busy is not None:
            raise ApplicationError(f"a power {busy.value} is under way: try again when it is done")
        refusal = power_refusal(self.snap.status, self.snap.powered_on, request.operation)
        if refusal is not None:
            raise ApplicationError(refusal)

    @workflow.update
    def detach(self, request: DetachInput) -> DetachResult:
        """Leave the pool keeping the server: the pool's forced detach, for this desktop alone."""
        if self.remove_request is None:
            self.remove_request = RemoveInput(request.reason, force=True, detach=True)
            self.wake = True
        return DetachResult(accepted=True, status=self.snap.status)

    @detach.validator
    def _validate_detach(self, request: DetachInput) -> None:
        if self.remove_request is not None:
            if self.remove_request.detach:
                return  # a repeat: answered alike
            raise ApplicationError("desktop is already leaving its pool (being deleted)")
        refusal = detach_refusal(self.snap.status, self.snap.powered_on)
        if refusal is not None:
            raise ApplicationError(refusal)
        # A power off still finishing (its report to the pool) is no reason to wait: it is off.
        powering = self.in_flight not in (None, PowerOperation.OFF) or self.operation or self.power_request
        if powering or self.assigns:
            raise ApplicationError("desktop is busy (a power change or an assignment under way): try again")

    @workflow.signal
    def return_desktop(self, request: ReturnInput) -> None:
        self.return_request = request
        self.wake = True

    @workflow.signal
    def server_lost(self, lost: ServerLostInput) -> None:
        self.lost = lost
        self.wake = True

    @workflow.update
    def release(self, request: ReleaseInput) -> ReleaseResult:
        if request.immediate:
            self.release_request = request
        else:
            self._apply_event(SessionEvent(SessionEventKind.DISCONNECT))
        self.wake = True
        return ReleaseResult(accepted=True, status=self.snap.status)

    @release.validator
    def _validate_release(self, request: ReleaseInput) -> None:
        # A Release may overtake the pool's assignment it follows: accept it then too.
        if self.snap.status not in RELEASABLE and not self.assigns:
            raise ApplicationError(f"desktop is {self.snap.status.value}, not in use: nothing to release")
        if request.only_if_disconnected and self.snap.status is not DesktopStatus.DISCONNECTED:
            raise ApplicationError(f"desktop is {self.snap.status.value}, not disconnected: not released")

    @workflow.query
    def status(self, _: DesktopStatusInput) -> DesktopStatusResult:
        return DesktopStatusResult(
            desktop_id=self.input.desktop_id,
            pool_id=self.input.pool_id,
            name=self.input.name,
            template_version=self.input.template_version,
            snapshot=self.snap,
            pending_command=self.snap.pending_command,
            events=list(self.snap.events),
            cloud=self.input.spec.cloud,
            region=self.input.spec.region,
            image=self.input.template.image,
            flavor=self.input.template.flavor,
            project_id=self.input.project_id,
        )
