"""The lifecycle steps of a desktop and their bookkeeping, shared by DesktopWorkflow.

Each step drives the cloud through activities and records the transition once
(`_changed`: event log, search attributes, read-model projection); `_report`
tells the pool what it must know. DesktopWorkflow adds the run loop, the choice
of the next step and the message handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

import workflows.pool_workflow as pool_wf  # module import: the two workflows refer to each other
from workflows import search_attributes as sa
from workflows.activity_io import (
    CloudErrorType,
    CreateServerInput,
    DeleteServerInput,
    DetachServerInput,
    PowerAction,
    PowerServerInput,
    ProjectDesktopInput,
    RebuildServerInput,
    ServerRef,
    WaitServerResult,
)
from workflows.messages import (
    AssignInput,
    DesktopReport,
    DesktopSnapshot,
    DesktopStatus,
    DesktopWorkflowInput,
    PowerOperation,
    RemoveInput,
    ReportKind,
    pool_workflow_id,
)
from workflows.pool_spec import Assignment, ReleasePolicy

with workflow.unsafe.imports_passed_through():
    from activities.cloud import CloudActivities
    from activities.projection import ProjectionActivities

CLOUD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
PROJECTION_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
PROJECTION_RETRY_THRESHOLD = timedelta(milliseconds=100)
# Until it succeeds: a detach has no safe way out (deleting loses a server the administrator
# keeps; giving up leaves it tagged, for the reconciler to delete as an orphan). The activity
# raises every error as retryable; the pending activity shows the last one to operators.
DETACH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60))
EVENTS_KEPT = 50

# workflow.patched ids: each names a change to what a desktop does, for histories made before it.
# Assignments the pool sent that a detaching desktop never took are answered before it reports
# itself gone, so their users go back to the head of the line instead of losing their claims.
PATCH_REJECT_UNTAKEN_ON_LEAVING = "desktop-rejects-untaken-assignments-when-leaving"
# The pool hears of an idle desktop before the read model shows it (see _become_ready).
PATCH_REPORT_BEFORE_PROJECTING = "desktop-reports-ready-before-projecting"
# A create whose first attempts fail on a sick cloud is reported to the pool (finding 2 of
# docs/reliability.md): before, the retries stayed inside the activity and nobody heard of them.
PATCH_REPORT_CLOUD_TROUBLE = "desktop-reports-cloud-trouble"
FIRST_CREATES_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=2
)
CLOUD_TROUBLE_TYPES = (CloudErrorType.UNAVAILABLE, CloudErrorType.THROTTLED)

# An administrator's power operation on a desktop where it rests: the cloud action, and the
# events recorded before and after it.
IN_PLACE_POWER = {
    PowerOperation.ON: (PowerAction.START, "powering on", "powered on"),
    PowerOperation.OFF: (PowerAction.STOP, "powering off", "powered off"),
    PowerOperation.RESTART: (PowerAction.REBOOT_SOFT, "restarting", "restarted"),
    PowerOperation.FORCE_RESTART: (PowerAction.REBOOT_HARD, "forcing a restart", "restarted (forced)"),
}


class DesktopSteps:
    # Set by DesktopWorkflow.__init__.
    input: DesktopWorkflowInput
    snap: DesktopSnapshot
    projections: list[Any]
    projection_due: bool
    assigns: list[AssignInput]

    async def _provision(self) -> None:
        ref = self._ref()
        request = CreateServerInput(
            ref, self.input.name, self.input.pool_id, self.input.template_version, self.input.template
        )
        try:
            if workflow.patched(PATCH_REPORT_CLOUD_TROUBLE):
                active = await self._create_telling_trouble(request)
            else:
                active = await self._create(request, CLOUD_RETRY)
            self.snap.server_id = active.server_id
            self.snap.address = active.address
            if not self.input.power_on:
                await self._power(PowerAction.STOP)
        except ActivityError as err:
            await self._destroy(f"provisioning failed: {cause_of(err)}", failed=True, failure_type=cause_type_of(err))
            return
        self.snap.powered_on = self.input.power_on
        await self._become_ready("ready" if self.input.power_on else "standby")

    async def _create_telling_trouble(self, request: CreateServerInput) -> WaitServerResult:
        """Create; if the first attempts fail for a reason a retry may cure (the cloud answers 5xx
        or 429, or cannot be reached), tell the pool, which shows it as restrained, and go on."""
        try:
            return await self._create(request, FIRST_CREATES_RETRY)
        except ActivityError as err:
            if err.retry_state is not RetryState.MAXIMUM_ATTEMPTS_REACHED:
                raise  # not retryable, or out of time: the desktop fails, as it always did
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in CLOUD_TROUBLE_TYPES:  # not a worker's death
                await self._report(ReportKind.CLOUD_TROUBLE, reason=cause.message, failure_type=cause.type or "")
        return await self._create(dataclasses.replace(request, look_first=True), CLOUD_RETRY)

    async def _create(self, request: CreateServerInput, retry: RetryPolicy) -> WaitServerResult:
        return await workflow.execute_activity_method(
            CloudActivities.provision_server,
            request,
            start_to_close_timeout=timedelta(minutes=15),
            schedule_to_close_timeout=timedelta(minutes=45),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=retry,
        )

    async def _release(self, reason: str) -> None:
        spec = self.input.spec
        await self._end_assignment(reason)
        if spec.assignment is Assignment.PERSONAL:
            await self._become_ready("unassigned")
        elif spec.release is ReleasePolicy.DESTROY:
            await self._destroy(reason, failed=False)
        elif spec.release is ReleasePolicy.REVERT:
            await self._revert()
        else:
            self.snap.status = DesktopStatus.AWAITING_RETURN
            self.snap.user = self.snap.request_id = None
            self._changed("awaiting return by an administrator")
            await self._report(ReportKind.AWAITING_RETURN)

    async def _end_assignment(self, reason: str) -> None:
        """The user's assignment is over: recorded, and reported so the pool ends the claim."""
        self.snap.status = DesktopStatus.RELEASING
        self.snap.pending_command = None
        self._changed(f"released: {reason}")
        await self._report(ReportKind.RELEASED, reason=reason)

    async def _leave_pool(self, request: RemoveInput) -> None:
        """Leave the pool: a user's assignment ends first (forced, on the pool's removal, as a
        release would end it), then the server is deleted, or detached and kept."""
        if self.snap.user is not None:
            await self._end_assignment(request.reason)
        if request.detach:
            await self._detach(request.reason)
        else:
            await self._destroy(request.reason, failed=False)

    async def _detach(self, reason: str) -> None:
        """Leave the pool keeping the server, as an independent server outside deskpool.

        Releasing meanwhile (the reconciler does not judge a releasing desktop): the
        activity strips the tags first, so the server drops out of the reconciler's list
        before it loses its owner's name. The last report makes the pool forget it.
        """
        self.snap.status = DesktopStatus.RELEASING
        self._changed(f"detaching: {reason}")
        await workflow.execute_activity_method(
            CloudActivities.detach_server,
            DetachServerInput(self._ref()),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=DETACH_RETRY,
        )
        self.snap.status = DesktopStatus.DETACHED
        self.snap.user = self.snap.request_id = None
        self._changed(f"detached: {reason}", gone=True)
        await self._reject_untaken_assignments()
        await self._report(ReportKind.GONE, reason=f"detached: {reason}")

    async def _revert(self) -> None:
        self.snap.status = DesktopStatus.RELEASING
        self._changed("reverting to template")
        try:
            done = await workflow.execute_activity_method(
                CloudActivities.rebuild_server,
                RebuildServerInput(self._ref(), self.input.template.image),
                start_to_close_timeout=timedelta(minutes=12),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=CLOUD_RETRY,
            )
        except ActivityError as err:
            await self._destroy(f"revert failed: {cause_of(err)}", failed=True)
            return
        self.snap.address = done.address or self.snap.address
        self.snap.powered_on = True
        await self._become_ready("reverted")

    async def _set_idle_power(self, on: bool) -> None:
        if on != self.snap.powered_on:
            try:
                await self._power(PowerAction.START if on else PowerAction.STOP)
            except ActivityError as err:
                await self._destroy(f"power {'on' if on else 'off'} failed: {cause_of(err)}", failed=True)
                return
            self.snap.powered_on = on
            await self._become_ready("powered on" if on else "powered off")
            return
        await self._report(ReportKind.READY)

    async def _destroy(self, reason: str, failed: bool, failure_type: str = "") -> None:
        """Delete the server (waiting until it is gone), then tell the pool."""
        if failed:
            self.snap.status = DesktopStatus.FAILED
            self._changed(reason)
        await workflow.execute_activity_method(
            CloudActivities.delete_server,
            DeleteServerInput(self._ref()),
            start_to_close_timeout=timedelta(minutes=11),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)),
        )
        self.snap.status = DesktopStatus.FAILED if failed else DesktopStatus.DESTROYED
        self.snap.user = self.snap.request_id = None
        self._changed(f"destroyed: {reason}", gone=True)
        await self._report(ReportKind.GONE, failed=failed, reason=reason, failure_type=failure_type)

    async def _reject_untaken_assignments(self) -> None:
        """Before a detached desktop's last report: an assignment that arrived while it was leaving
        (an administrator's detach of an idle desktop the pool then gave away) goes back, its user
        to the head of the line."""
        if not self.assigns or not workflow.patched(PATCH_REJECT_UNTAKEN_ON_LEAVING):
            return
        untaken, self.assigns = self.assigns, []
        for assignment in untaken:
            await self._report(ReportKind.ASSIGNMENT_REJECTED, user=assignment.user, request_id=assignment.request_id)

    async def _power_in_place(self, operation: PowerOperation, actor: str) -> None:
        """Power on, off or restart the desktop where it rests (in use, awaiting return, or a
        restart of an idle one): its status and user stay. A restart interrupts the session;
        the agent reports the disconnect and the reconnect as usual. A failure is recorded,
        not acted on: a server the cloud broke is the reconciler's to replace."""
        action, doing, done = IN_PLACE_POWER[operation]
        self._changed(f"{doing} by {actor}")
        try:
            await self._power(action)
        except ActivityError as err:
            self._changed(f"power {operation.value} by {actor} failed: {cause_of(err)}")
            return
        self.snap.powered_on = operation is not PowerOperation.OFF
        self._changed(done)

    async def _power(self, action: PowerAction) -> None:
        await workflow.execute_activity_method(
            CloudActivities.power_server,
            PowerServerInput(self._ref(), action),
            start_to_close_timeout=timedelta(minutes=6),
            # 409s are retried, but not forever: a server stuck in a wrong state fails the desktop.
            schedule_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=CLOUD_RETRY,
        )

    def _ref(self) -> ServerRef:
        spec = self.input.spec
        return ServerRef(spec.cloud, self.input.desktop_id, self.snap.server_id, spec.region, self.input.project_id)

    async def _become_ready(self, event: str) -> None:
        """Idle again, and the pool told before the read model: whoever sees the desktop ready
        in the API then finds it in the pool's book too (a claim is served, not put in line)."""
        if not workflow.patched(PATCH_REPORT_BEFORE_PROJECTING):
            self._become_idle(event)
            await self._report(ReportKind.READY)
            return
        projection = self._become_idle(event, project=False)
        await self._report(ReportKind.READY)
        self._project(projection)

    def _become_idle(self, event: str, project: bool = True) -> ProjectDesktopInput:
        self.snap.status = DesktopStatus.READY if self.snap.powered_on else DesktopStatus.STANDBY
        self.snap.user = self.snap.request_id = None
        self.snap.assigned_at = self.snap.connected_at = self.snap.session_started_at = None
        self.snap.disconnected_at = self.snap.idle_since = None
        return self._changed(event, project=project)

    def _changed(self, event: str, gone: bool = False, project: bool = True) -> ProjectDesktopInput:
        """Record a transition: event log, search attributes, read-model projection."""
        self.projection_due = False
        self.snap.sequence += 1
        now = workflow.now()
        self.snap.events.append(f"{now.isoformat()} {self.snap.status.value}: {event}")
        del self.snap.events[:-EVENTS_KEPT]
        workflow.upsert_search_attributes(
            [sa.STATE.value_set(self.snap.status.value), sa.USER.value_set(self.snap.user or "")]
        )
        projection = ProjectDesktopInput(
            desktop_id=self.input.desktop_id,
            pool_id=self.input.pool_id,
            name=self.input.name,
            state=self.snap.status.value,
            template_version=self.input.template_version,
            sequence=self.snap.sequence,
            at=now,
            user=self.snap.user,
            server_id=self.snap.server_id,
            address=self.snap.address,
            event=event,
            gone=gone,
        )
        if project:
            self._project(projection)
        return projection

    def _project(self, projection: ProjectDesktopInput) -> None:
        # Not awaited: a slow read model must not hold up the desktop; the
        # sequence number keeps late writes from rolling a row back.
        self.projections = [p for p in self.projections if not p.done()]
        self.projections.append(
            workflow.start_local_activity_method(
                ProjectionActivities.project_desktop,
                projection,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=PROJECTION_RETRY,
                # Retries further apart than this wait on a workflow timer, so a read model that
                # is down does not hold the desktop's workflow task (docs/reliability.md, C4).
                local_retry_threshold=PROJECTION_RETRY_THRESHOLD,
            )
        )

    async def _report(self, kind: ReportKind, **fields: Any) -> None:
        report = DesktopReport(
            desktop_id=self.input.desktop_id,
            kind=kind,
            powered_on=self.snap.powered_on,
            address=self.snap.address,
            **fields,
        )
        pool = workflow.get_external_workflow_handle_for(pool_wf.PoolWorkflow.run, pool_workflow_id(self.input.pool_id))
        try:
            await pool.signal(pool_wf.PoolWorkflow.report, report)
        except ApplicationError as err:
            # The pool is gone (removed with a cascade); the desktop finishes alone.
            workflow.logger.warning("pool %s did not take report %s: %s", self.input.pool_id, kind, err)

    async def _drain(self) -> None:
        """Before continue-as-new or completion: projections written, handlers done."""
        if self.projections:
            await asyncio.gather(*self.projections)
            self.projections = []
        await workflow.wait_condition(workflow.all_handlers_finished)


def cause_type_of(err: ActivityError) -> str:
    cause = err.cause
    return cause.type or "" if isinstance(cause, ApplicationError) else ""


def cause_of(err: ActivityError) -> str:
    cause = err.cause
    return str(cause) if cause is not None else str(err)
