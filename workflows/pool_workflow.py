"""PoolWorkflow: one per pool. Holds the desired state and the set of desktops,
answers claims, and reconciles continuously toward the targets.

Reconciling is event-driven: a claim, a release, a failure or a new desktop
wakes the loop at once (the anchors poll every 19 s to 5 min). Claims are a
batched Update decided from state at once and answered in the same workflow
task; the assignment signals go out from the loop, like every signal it causes.
High-rate session events never come here: they go to the desktop's own workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

import workflows.desktop_workflow as desktop_wf  # module import: the two workflows refer to each other
from workflows import pool_recycle
from workflows import search_attributes as sa
from workflows.activity_io import EnsureProjectInput
from workflows.messages import (
    AssignDesktopInput,
    AssignInput,
    ClaimBatchInput,
    ClaimBatchResult,
    ClaimOutcome,
    ClaimStatus,
    ClaimStatusesInput,
    ClaimStatusesResult,
    ClaimStatusInput,
    DesktopHolderInput,
    DesktopHolderResult,
    DesktopReport,
    DesktopWorkflowInput,
    PoolStatusInput,
    PoolStatusResult,
    PowerInput,
    RemoveInput,
    RemovePoolInput,
    RemovePoolResult,
    ReportKind,
    UpdateSpecInput,
    UpdateSpecResult,
    UserClaimsInput,
    UserClaimsResult,
    desktop_workflow_id,
)
from workflows.planning import (
    Slot,
    lowest_free_numbers,
    pick_for_power_off,
    pick_for_removal,
    pick_for_start,
    plan_reconcile,
    pool_sleep,
    removal_refusal,
)
from workflows.pool_model import Outgoing, PoolDesktop, PoolState, TemplateVersion
from workflows.pool_read_model import PROJECTION_INTERVAL, PoolReadModel
from workflows.pool_removal import advance_removal, begin_removal, removal_summary
from workflows.pool_spec import PoolSpec
from workflows.pool_state import PoolBook
from workflows.rollout_messages import RecycleInput, RecycleResult, RolloutView, RolloutViewInput

with workflow.unsafe.imports_passed_through():
    from activities.cloud import CloudActivities

MAX_CLAIMS_PER_BATCH = 100
# A turn of the loop sends at most this many signals and starts at most this many desktops.
# Each comes back as an event while the next workflow task runs, and the server fails a task
# that meets more than 100 such buffered events (history.maximumBufferedEventsBatch): the
# worker then replays the whole run (docs/reliability.md, finding 8).
SIGNALS_PER_TURN = 50
STARTS_PER_TURN = 50
# A run continues as new after this many events, before Temporal suggests it (4,096): a
# replay of a large pool's run (after a task failed or the run left the cache) stays short.
EVENTS_PER_RUN = 2000

# workflow.patched ids: each names a change to what the loop does, for histories made before it.
PATCH_EXPIRED_RESTRAINT = "pool-sleep-ignores-expired-restraint"
PATCH_CLAIM_ANSWERS_AT_ONCE = "pool-claim-answers-before-assignments-delivered"
PATCH_SIGNALS_PER_TURN = "pool-sends-at-most-50-signals-a-turn"
PATCH_STARTS_PER_TURN = "pool-starts-at-most-50-desktops-a-turn"
PATCH_EVENTS_PER_RUN = "pool-continues-as-new-every-2000-events"
PATCH_CARRY_OUTBOX = "pool-carries-its-outbox-across-continue-as-new"
PATCH_HEARS_CLOUD_TROUBLE = "pool-holds-creates-on-cloud-trouble"


@dataclass
class PoolWorkflowInput:
    pool_id: str
    spec: PoolSpec
    # Carried across continue-as-new; None on the first run.
    state: PoolState | None = None
    # How soon a pool fault (a missing project) is looked at again.
    fault_retry_s: float = 60.0
    # Continue as new after this many events (tests make it small).
    events_per_run: int = EVENTS_PER_RUN


@dataclass
class PoolWorkflowResult:
    pool_id: str
    reason: str


@workflow.defn
class PoolWorkflow(PoolReadModel):
    @workflow.init
    def __init__(self, input: PoolWorkflowInput) -> None:
        self.book = PoolBook(input.state or PoolState(pool_id=input.pool_id, spec=input.spec))
        self.fault_retry = timedelta(seconds=input.fault_retry_s)
        self.events_per_run = input.events_per_run
        self.wake = True
        self.projected = None
        self.projected_at = None
        self.projecting = None

    @property
    def state(self) -> PoolState:
        return self.book.state

    @workflow.run
    async def run(self, input: PoolWorkflowInput) -> PoolWorkflowResult:
        while True:
            if self._run_is_long():
                await self._drain()
                workflow.continue_as_new(
                    PoolWorkflowInput(
                        self.state.pool_id,
                        self.state.spec,
                        self.state,
                        self.fault_retry.total_seconds(),
                        self.events_per_run,
                    )
                )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.wake, timeout=self._sleep_for())
            self.wake = False
            now = workflow.now()
            if self.state.removal is not None:
                if await self._leave(now):
                    return PoolWorkflowResult(self.state.pool_id, removal_summary(self.book))
            else:
                self.book.expire_claims(now)
                self.book.serve_queue()
                await self._reconcile(now, await self._ensure_project(now))
                await self._flush_outbox()
                self._project(now)
            workflow.set_current_details(self._details())

    def _run_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        # patched() only once the run is long: histories from before the patch never get that far
        # with the marker, and go on as they did.
        return info.get_current_history_length() >= self.events_per_run and workflow.patched(PATCH_EVENTS_PER_RUN)

    # --- reconciling ----------------------------------------------------------------

    async def _ensure_project(self, now: datetime) -> bool:
        """The pool's cloud project, resolved once; False while it is missing (a visible pool fault)."""
        state, spec = self.state, self.state.spec
        if state.project_id is not None or not (spec.auto_create_project or spec.cloud_project):
            return True
        if state.restrained_until is not None and now < state.restrained_until:
            return False
        if spec.auto_create_project and state.project_name is None:
            alphabet = string.ascii_lowercase + string.digits
            suffix = "".join(workflow.random().choice(alphabet) for _ in range(8))
            state.project_name = f"{spec.name}-{suffix}"
        project = state.project_name or spec.cloud_project or ""
        try:
            found = await workflow.execute_activity_method(
                CloudActivities.ensure_project,
                EnsureProjectInput(spec.cloud, spec.region, project, create=spec.auto_create_project),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5),
            )
        except ActivityError as err:
            state.restrained_reason = f"pool fault: {err.cause or err}"
            state.restrained_until = now + self.fault_retry
            return False
        state.project_id = found.project_id
        state.restrained_reason, state.restrained_until = "", None
        return True

    async def _reconcile(self, now: datetime, project_ready: bool = True) -> None:
        book, spec = self.book, self.state.spec
        restrained = self.state.restrained_until is not None and now < self.state.restrained_until
        may_create = project_ready and not restrained
        plan = plan_reconcile(spec, book.counts(), book.provisioning_running(), book.starting(), may_create)
        if plan.empty:
            return
        version = self.state.template_version
        for candidate in pick_for_start(book.idle(), plan.start_standby, version):
            book.update(book.by_id[candidate.desktop_id], starting=True)
            book.send(Outgoing(candidate.desktop_id, "power", on=True))
        for candidate in pick_for_power_off(book.idle(), plan.stop_ready, version):
            book.update(book.by_id[candidate.desktop_id], slot=Slot.STANDBY, powered_on=False)
            book.send(Outgoing(candidate.desktop_id, "power", on=False))
        for candidate in pick_for_removal(book.idle(), plan.remove_idle, version):
            book.update(book.by_id[candidate.desktop_id], slot=Slot.REMOVING)
            book.send(Outgoing(candidate.desktop_id, "remove", reason="pool above its targets"))
        running, standby = plan.create_running, plan.create_standby
        if running + standby > STARTS_PER_TURN and workflow.patched(PATCH_STARTS_PER_TURN):
            running = min(running, STARTS_PER_TURN)
            standby = STARTS_PER_TURN - running
            self.wake = True  # the rest on the next turn
        numbers = lowest_free_numbers((d.number for d in self.state.desktops), running + standby)
        new = [book.add_desktop(n, powered_on=i < running) for i, n in enumerate(numbers)]
        await asyncio.gather(*(self._start_desktop(d) for d in new))

    async def _leave(self, now: datetime) -> bool:
        """Being removed: every desktop told once to leave, nothing created; True once none is left
        and the pool's row is gone from the read model (the workflow then ends)."""
        advance_removal(self.book)
        await self._flush_outbox()
        if self.state.desktops:
            self._project(now)
            return False
        await self._drain()
        await self._project_removed()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return True

    async def _start_desktop(self, desktop: PoolDesktop) -> None:
        spec = self.state.spec
        await workflow.start_child_workflow(
            desktop_wf.DesktopWorkflow.run,
            DesktopWorkflowInput(
                pool_id=self.state.pool_id,
                desktop_id=desktop.desktop_id,
                name=desktop.name,
                number=desktop.number,
                template_version=desktop.template_version,
                template=self.book.template(desktop.template_version),
                spec=spec,
                power_on=desktop.powered_on,
                project_id=self.state.project_id,
            ),
            id=desktop_workflow_id(desktop.desktop_id),
            # Desktops outlive a pool run: continue-as-new must not take them along.
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.KIND, "desktop"),
                    SearchAttributePair(sa.POOL, self.state.pool_id),
                    SearchAttributePair(sa.DESKTOP, desktop.name),
                    SearchAttributePair(sa.STATE, "provisioning"),
                    SearchAttributePair(sa.TEMPLATE_VERSION, desktop.template_version),
                ]
            ),
            static_summary=f"desktop {desktop.name} of pool {spec.name} (template v{desktop.template_version})",
        )

    async def _drain(self) -> None:
        """Before continue-as-new: no handler running, no signal in flight, the projection written.

        What the desktops are still owed stays in the outbox, which the state carries to the
        next run: sending it first (as histories from before the signal cap did) kept a pool
        under a login storm from continuing as new for thousands of events, claims refilling
        the outbox as fast as 50 signals a turn emptied it."""
        carry_outbox = workflow.patched(PATCH_CARRY_OUTBOX)
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not carry_outbox:
                await self._flush_outbox()
            if self.projecting is not None:
                await self.projecting
                self.projecting = None
            if workflow.all_handlers_finished() and (carry_outbox or not self.state.outbox):
                return

    async def _flush_outbox(self) -> None:
        """Send what the desktops are owed, oldest first; past SIGNALS_PER_TURN the rest waits a turn."""
        outbox = self.state.outbox
        take = len(outbox)
        if take > SIGNALS_PER_TURN and workflow.patched(PATCH_SIGNALS_PER_TURN):
            take = SIGNALS_PER_TURN
        sending, self.state.outbox = outbox[:take], outbox[take:]
        await asyncio.gather(*(self._send(message) for message in sending))
        if self.state.outbox:
            self.wake = True

    async def _send(self, message: Outgoing) -> None:
        handle = workflow.get_external_workflow_handle_for(
            desktop_wf.DesktopWorkflow.run, desktop_workflow_id(message.desktop_id)
        )
        try:
            if message.kind == "assign":
                await handle.signal(desktop_wf.DesktopWorkflow.assign, AssignInput(message.user, message.request_id))
            elif message.kind == "power":
                await handle.signal(desktop_wf.DesktopWorkflow.power, PowerInput(message.on))
            else:
                remove = RemoveInput(message.reason, force=message.force, detach=message.detach)
                await handle.signal(desktop_wf.DesktopWorkflow.remove, remove)
        except ApplicationError as err:
            # The desktop's workflow is gone: put its user back in line, forget it.
            workflow.logger.warning("desktop %s unreachable: %s", message.desktop_id, err)
            report = DesktopReport(message.desktop_id, ReportKind.ASSIGNMENT_REJECTED, user=message.user or None)
            report.request_id = message.request_id or None
            self.book.report(report, workflow.now())
            self.book.report(DesktopReport(message.desktop_id, ReportKind.GONE, failed=True), workflow.now())
            self.wake = True

    def _sleep_for(self) -> timedelta | None:
        now = workflow.now()
        # A restraint only holds back creations; while removing there are none to hold back.
        restrained_until = self.state.restrained_until if self.state.removal is None else None
        projection_due = None
        if self.projected_at is not None and self._summary() != self.projected:
            projection_due = self.projected_at + PROJECTION_INTERVAL
        expired = restrained_until is not None and restrained_until <= now
        if expired and not workflow.patched(PATCH_EXPIRED_RESTRAINT):
            # Histories from before the patch woke on an expired restraint every millisecond.
            wakeups = [t for t in (self.book.next_claim_expiry(), restrained_until, projection_due) if t is not None]
            return max(min(wakeups) - now, timedelta(milliseconds=1))
        return pool_sleep(now, self.book.next_claim_expiry(), restrained_until, projection_due)

    def _details(self) -> str:
        """What an operator reads on this workflow's page in the Temporal UI."""
        c, state = self.book.counts(), self.state
        if state.removal is not None:
            return f"{state.spec.name}: {removal_summary(self.book)}"
        line = (f"{state.spec.name}: {c.ready} ready, {c.standby} standby, {c.provisioning} provisioning, "
                f"{c.assigned} assigned, {c.waiting} waiting, template v{state.template_version}")  # fmt: skip
        return f"{line}\nrestrained: {state.restrained_reason}" if state.restrained_reason else line

    # --- messages ---------------------------------------------------------------------

    @workflow.update
    async def claim(self, batch: ClaimBatchInput) -> ClaimBatchResult:
        """Answer from state at once. The pool's state is the authority on who holds which
        desktop, so the answer does not wait for the assignment signals: the loop sends
        them in this same workflow task. (Waiting for their delivery cost two more
        workflow tasks per batch and capped a login storm at ~40 claims/s; see
        docs/benchmarks.md.) A desktop that has not taken its assignment yet accepts the
        user's Release and keeps agent events for it (desktop_workflow)."""
        now = workflow.now()
        queued = len(self.state.outbox)
        outcomes = [self.book.claim(request, now) for request in batch.claims]
        self.wake = True
        if not workflow.patched(PATCH_CLAIM_ANSWERS_AT_ONCE):
            # Histories from before the patch: the update sent its own assignments and awaited them.
            mine, self.state.outbox[queued:] = self.state.outbox[queued:], []
            await asyncio.gather(*(self._send(message) for message in mine))
        return ClaimBatchResult(outcomes)

    @claim.validator
    def _validate_claim(self, batch: ClaimBatchInput) -> None:
        if not 1 <= len(batch.claims) <= MAX_CLAIMS_PER_BATCH:
            raise ApplicationError(f"a claim batch holds 1 to {MAX_CLAIMS_PER_BATCH} claims")

    @workflow.update
    def assign_desktop(self, request: AssignDesktopInput) -> ClaimOutcome:
        outcome = self.book.assign_personal(request.user, request.request_id, request.desktop_id)
        self.wake = True
        return outcome

    @workflow.signal
    def report(self, report: DesktopReport) -> None:
        if report.kind is ReportKind.CLOUD_TROUBLE and not workflow.patched(PATCH_HEARS_CLOUD_TROUBLE):
            return  # a run that took this report before the patch ignored it
        self.book.report(report, workflow.now())
        self.wake = True

    @workflow.update
    def update_spec(self, request: UpdateSpecInput) -> UpdateSpecResult:
        """Edits affect only new desktops; a template change makes a new version."""
        state = self.state
        if request.spec.template != state.spec.template:
            state.template_version += 1
            state.templates.append(TemplateVersion(state.template_version, request.spec.template))
        state.spec = request.spec
        used = {d.template_version for d in state.desktops} | {state.template_version}
        state.templates = [t for t in state.templates if t.version in used]
        self.wake = True
        return UpdateSpecResult(template_version=state.template_version)

    @update_spec.validator
    def _validate_update_spec(self, request: UpdateSpecInput) -> None:
        if request.spec.name != self.state.spec.name or request.spec.project != self.state.spec.project:
            raise ApplicationError("name and project of a pool cannot change")
        if self.state.removal is not None:
            raise ApplicationError("the pool is being removed: its spec cannot change")

    @workflow.update
    def remove_pool(self, request: RemovePoolInput) -> RemovePoolResult:
        """Destroy or detach every desktop, then end; a repeat is answered alike and changes nothing."""
        result = begin_removal(self.book, request, workflow.now())
        self.wake = True
        return result

    @remove_pool.validator
    def _validate_remove_pool(self, request: RemovePoolInput) -> None:
        refusal = removal_refusal(request.desktops, len(self.state.desktops), self.state.removal)
        if refusal is not None:
            raise ApplicationError(refusal)

    @workflow.update
    def recycle(self, request: RecycleInput) -> RecycleResult:
        """A template rollout asks for old-version desktops to go: idle ones leave now and are
        replaced on the current version; one in use is never taken (at most marked to go once
        its user is done). The pool decides each; a repeat is answered alike."""
        result = pool_recycle.take_recycle(self.book, request)
        self.wake = True
        return result

    @recycle.validator
    def _validate_recycle(self, request: RecycleInput) -> None:
        refusal = pool_recycle.recycle_refusal(self.book, request)
        if refusal is not None:
            raise ApplicationError(refusal)

    @workflow.query
    def rollout_view(self, request: RolloutViewInput) -> RolloutView:
        """What a template rollout needs to know: old desktops left, ready count, new builds."""
        return pool_recycle.rollout_view(self.book, request)

    @workflow.query
    def status(self, _: PoolStatusInput) -> PoolStatusResult:
        return PoolStatusResult(
            pool_id=self.state.pool_id,
            spec=self.state.spec,
            template_version=self.state.template_version,
            counts=self.book.counts(),
            restrained_reason=self.state.restrained_reason,
            consecutive_failures=self.state.consecutive_failures,
            removal=self.state.removal.mode.value if self.state.removal else "",
        )

    @workflow.query
    def claim_status(self, request: ClaimStatusInput) -> ClaimOutcome:
        known = self.book.outcome_for(request.request_id)
        if known is not None:
            return known
        return ClaimOutcome(request.request_id, "", ClaimStatus.REJECTED, reason="unknown claim request id")

    @workflow.query
    def claim_statuses(self, request: ClaimStatusesInput) -> ClaimStatusesResult:
        return ClaimStatusesResult([self.claim_status(ClaimStatusInput(r)) for r in request.request_ids])

    @workflow.query
    def user_claims(self, request: UserClaimsInput) -> UserClaimsResult:
        return UserClaimsResult(self.book.claims_of(request.user))

    @workflow.query
    def desktop_holder(self, request: DesktopHolderInput) -> DesktopHolderResult:
        desktop = self.book.by_id.get(request.desktop_id)
        return DesktopHolderResult(desktop.user if desktop is not None else None)
