"""RolloutWorkflow (`rollout/<pool id>`): recreate a pool's desktops on its newest template version.

One at a time per pool (the workflow id). It looks at its pool every few seconds (the pool's
`rollout_view` query, through a local activity: a workflow cannot query another) and asks the
pool to let idle old-version desktops go (the pool's `recycle` update); the pool replaces them
on its newest version as it replaces any desktop, and stays the only authority on its desktops.
What goes next is `rollout_rules.plan_step`: a canary first, then batches within the ready floor;
failures beyond the limit pause it by itself. Paused, resumed or cancelled by Updates; progress
by the `progress` query, the Temporal UI's current details and the DeskpoolState search attribute.
A durable workflow: a dead worker loses nothing, the next one carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from workflows import rollout_rules as rules
from workflows import search_attributes as sa
from workflows.rollout_messages import (
    RecycleInput,
    RecycleResult,
    RolloutCommand,
    RolloutProgress,
    RolloutProgressInput,
    RolloutStatus,
    RolloutStrategy,
    RolloutView,
    RolloutViewInput,
)
from workflows.rollout_rules import RolloutState

with workflow.unsafe.imports_passed_through():
    from activities.rollout import (
        POOL_GONE,
        REFUSED,
        ClearFailedRequest,
        PoolRecycleRequest,
        PoolViewRequest,
        RolloutActivities,
    )

# A look or a request is quick: a pool that does not answer (its worker gone) is tried again at the
# next look, not waited for (a worker shutting down waits for the local activities it runs).
LOOK_TIMEOUT = timedelta(seconds=15)
LOOK_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=2),
                         maximum_attempts=2)  # fmt: skip
# While paused only leaving desktops move: look less often.
PAUSED_SLOWDOWN = 5
# workflow.patched id, for histories made before resume counted failures from the next look.
PATCH_RESUME_COUNTS_FROM_NEXT_LOOK = "resume-counts-failures-from-next-look"


@dataclass
class RolloutInput:
    pool_id: str
    # The pool's template version when the rollout was asked for; followed if it changes.
    target_version: int
    strategy: RolloutStrategy = RolloutStrategy.ROLLING
    # Ready desktops kept while it runs; None: rollout_rules.default_floor.
    floor: int | None = None
    # Desktops in flight at once (leaving or being built) after the canary; ignored by immediate.
    batch_size: int = 2
    # Failed new-version desktops tolerated before it pauses by itself.
    max_failures: int = 2
    # Old-version desktops in use are marked to go once their users are done.
    recycle_assigned: bool = False
    # How often it looks at its pool (an Update wakes it at once).
    poll_s: float = 2.0
    # Carried across continue-as-new; None on the first run.
    state: RolloutState | None = None


@workflow.defn
class RolloutWorkflow:
    @workflow.init
    def __init__(self, input: RolloutInput) -> None:
        self.state = input.state or RolloutState(
            pool_id=input.pool_id,
            strategy=input.strategy,
            floor=input.floor,
            batch_size=0 if input.strategy is RolloutStrategy.IMMEDIATE else input.batch_size,
            max_failures=input.max_failures,
            recycle_assigned=input.recycle_assigned,
            target_version=input.target_version,
        )
        self.poll = timedelta(seconds=input.poll_s)
        self.poked = False
        self.published: RolloutStatus | None = None

    @workflow.run
    async def run(self, input: RolloutInput) -> RolloutProgress:
        state = self.state
        if state.started_at is None:
            state.started_at = workflow.info().start_time
        try:
            while not state.finished:
                if workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not state.finished:
                        workflow.continue_as_new(dataclasses.replace(input, state=state))
                self.poked = False
                await self._step()
                self._publish()
                if state.finished:
                    break
                pause = self.poll * (PAUSED_SLOWDOWN if state.status is RolloutStatus.PAUSED else 1)
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.poked, timeout=pause)
        except asyncio.CancelledError:
            # Cancelled through Temporal (the UI, the CLI): ends like a cancel, with its progress.
            if not state.finished:
                rules.finish(state, RolloutStatus.CANCELLED, workflow.now(), "cancelled through Temporal")
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return rules.progress_of(state)

    async def _step(self) -> None:
        state = self.state
        try:
            view = await self._look()
        except ActivityError as err:
            self._trouble(err, "could not look at the pool")
            return
        if state.finished:
            return  # cancelled while looking
        rules.observe(state, view)
        if not state.cleared_at_start:
            state.cleared_at_start = True
            await self._clear_failed()
            if state.finished:
                return
        step = rules.plan_step(state, view)
        if step.cancel:
            rules.finish(state, RolloutStatus.CANCELLED, workflow.now(), step.cancel)
            return
        if step.pause:
            rules.pause(state, step.pause)
            return
        if state.status is not RolloutStatus.RUNNING:
            return
        try:
            if state.lift_restraint:
                state.lift_restraint = False
                if view.restrained_reason:
                    # Started or resumed by an administrator: the pool tries creating now, not after
                    # its backoff. Look again before deciding: what it builds is the canary.
                    await self._recycle(RecycleInput([], "recreate", lift_restraint=True))
                    return
            if step.complete:
                await self._clear_failed()
                if not state.finished:
                    rules.finish(state, RolloutStatus.COMPLETED, workflow.now())
                return
            state.waiting = step.waiting
            if step.recycle:
                reason = f"recreate: replaced by template version {state.target_version}"
                taken = await self._recycle(RecycleInput(step.recycle, reason))
                state.tracked += [d for d in taken.accepted if d not in state.tracked]
            if step.mark:
                reason = f"recreate: template version {state.target_version}, once its user is done"
                await self._recycle(RecycleInput(step.mark, reason, when_released=True))
        except ActivityError as err:
            self._trouble(err, "the pool did not take the request")

    def _trouble(self, err: ActivityError, what: str) -> None:
        """The pool gone or refusing (being removed) ends the rollout; anything else is tried again."""
        cause = err.cause
        if isinstance(cause, CancelledError):
            raise asyncio.CancelledError from err  # the workflow's cancellation, met inside an activity
        if isinstance(cause, ApplicationError) and cause.type in (POOL_GONE, REFUSED):
            rules.finish(self.state, RolloutStatus.FAILED, workflow.now(), cause.message)
        else:
            self.state.waiting = f"{what}: {cause or err}"

    async def _clear_failed(self) -> None:
        """Failed desktops' rows cleared from the read model; a store that is down only delays it."""
        request = ClearFailedRequest(
            self.state.pool_id, f"cleared by the recreate on template v{self.state.target_version}"
        )
        try:
            result = await workflow.execute_local_activity_method(
                RolloutActivities.clear_failed_desktops,
                request,
                start_to_close_timeout=LOOK_TIMEOUT,
                retry_policy=LOOK_RETRY,
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError from err
            workflow.logger.warning("failed desktops of %s not cleared: %s", self.state.pool_id, err.cause or err)
            return
        self.state.cleared += len(result.cleared)

    async def _look(self) -> RolloutView:
        return await workflow.execute_local_activity_method(
            RolloutActivities.pool_rollout_view,
            PoolViewRequest(
                self.state.pool_id, RolloutViewInput(tracked=list(self.state.tracked), asked=list(self.state.excused))
            ),
            start_to_close_timeout=LOOK_TIMEOUT,
            retry_policy=LOOK_RETRY,
        )

    async def _recycle(self, request: RecycleInput) -> RecycleResult:
        return await workflow.execute_local_activity_method(
            RolloutActivities.pool_recycle,
            PoolRecycleRequest(self.state.pool_id, request),
            start_to_close_timeout=LOOK_TIMEOUT,
            retry_policy=LOOK_RETRY,
        )

    def _publish(self) -> None:
        """The Temporal UI: current details on every change, the status as a search attribute."""
        workflow.set_current_details(rules.details(self.state))
        if self.published is not self.state.status:
            self.published = self.state.status
            workflow.upsert_search_attributes([sa.STATE.value_set(self.state.status.value)])

    # --- messages -------------------------------------------------------------------------

    @workflow.query
    def progress(self, _: RolloutProgressInput) -> RolloutProgress:
        return rules.progress_of(self.state)

    @workflow.update
    def pause(self, command: RolloutCommand) -> RolloutProgress:
        """Stop sending desktops away; those already leaving leave, the pool keeps filling."""
        rules.pause(self.state, command.reason or f"paused by {command.actor}")
        return self._changed()

    @pause.validator
    def _validate_pause(self, command: RolloutCommand) -> None:
        self._refuse("pause")

    @workflow.update
    def resume(self, command: RolloutCommand) -> RolloutProgress:
        """Carry on: failures count afresh, a failed canary is tried again, the pool may create at once."""
        rules.resume(self.state, from_next_look=workflow.patched(PATCH_RESUME_COUNTS_FROM_NEXT_LOOK))
        return self._changed()

    @resume.validator
    def _validate_resume(self, command: RolloutCommand) -> None:
        self._refuse("resume")

    @workflow.update
    def cancel(self, command: RolloutCommand) -> RolloutProgress:
        """End here: desktops already leaving leave, the others keep their version."""
        rules.finish(
            self.state, RolloutStatus.CANCELLED, workflow.now(), command.reason or f"cancelled by {command.actor}"
        )
        return self._changed()

    @cancel.validator
    def _validate_cancel(self, command: RolloutCommand) -> None:
        self._refuse("cancel")

    def _refuse(self, command: str) -> None:
        refusal = rules.command_refusal(self.state.status, command)
        if refusal is not None:
            raise ApplicationError(refusal)

    def _changed(self) -> RolloutProgress:
        self.poked = True
        self._publish()
        return rules.progress_of(self.state)
