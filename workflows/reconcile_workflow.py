"""CloudReconcileWorkflow: one per cloud and region, sweeping periodically.

Lists the servers tagged as deskpool's, asks the running desktops what they own,
deletes orphans after a grace period (audited) and tells desktops whose server
vanished, failed or was changed outside that they are lost (they are replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

import workflows.desktop_workflow as desktop_wf
from workflows.activity_io import (
    CloudScope,
    DeleteOrphanInput,
    ListTaggedServersResult,
    SurveyDesktopsResult,
    TaggedServerInfo,
)
from workflows.messages import ServerLostInput, desktop_workflow_id
from workflows.reconcile_rules import decide

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities

RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=60))
# workflow.patched ids. The desktops are asked before the cloud is listed: listed first, a desktop
# that finished provisioning in between (its server made after the listing, the desktop ready by
# the survey) was judged "vanished" and destroyed right after it became ready. Asked first, a
# server made in between is at worst an orphan candidate, which the grace period protects.
PATCH_SURVEY_FIRST = "reconcile-survey-before-listing"


@dataclass
class ReconcileInput:
    cloud: str
    region: str | None = None
    interval_s: float = 60.0
    orphan_grace_s: float = 300.0
    # Carried across continue-as-new.
    first_seen: dict[str, datetime] = field(default_factory=dict)
    sweeps: int = 0


@dataclass
class ReconcileResult:
    sweeps: int


@dataclass
class SweepInput:
    pass


@dataclass
class ReconcileStatusInput:
    pass


@dataclass
class SweepReport:
    sweeps: int
    orphans_deleted: int
    desktops_replaced: int
    candidates: int


def reconcile_workflow_id(cloud: str, region: str | None) -> str:
    return f"reconcile/{cloud}/{region or 'default'}"


@workflow.defn
class CloudReconcileWorkflow:
    @workflow.init
    def __init__(self, input: ReconcileInput) -> None:
        self.input = input
        self.report = SweepReport(input.sweeps, 0, 0, len(input.first_seen))
        self.sweep_now = False

    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileResult:
        scope = CloudScope(input.cloud, input.region)
        while True:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(dataclasses.replace(self.input, sweeps=self.report.sweeps))
            await self._sweep(scope)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.sweep_now, timeout=timedelta(seconds=input.interval_s))
            self.sweep_now = False

    async def _sweep(self, scope: CloudScope) -> None:
        if workflow.patched(PATCH_SURVEY_FIRST):
            survey = await self._survey(scope)
            listed = await self._list(scope)
        else:
            listed = await self._list(scope)
            survey = await self._survey(scope)
        now = workflow.now()
        decision = decide(
            listed.servers,
            survey.live,
            self.input.first_seen,
            now,
            timedelta(seconds=self.input.orphan_grace_s),
        )
        deleted = await asyncio.gather(*(self._delete(scope, s, now) for s in decision.delete_orphans))
        for lost in decision.lost:
            handle = workflow.get_external_workflow_handle_for(
                desktop_wf.DesktopWorkflow.run, desktop_workflow_id(lost.desktop_id)
            )
            with contextlib.suppress(ApplicationError):  # finished meanwhile: nothing to replace
                await handle.signal(desktop_wf.DesktopWorkflow.server_lost, ServerLostInput(lost.reason))
        gone = {s.server_id for s, ok in zip(decision.delete_orphans, deleted, strict=True) if ok}
        self.input.first_seen = {k: v for k, v in decision.first_seen.items() if k not in gone}
        self.report = SweepReport(
            sweeps=self.report.sweeps + 1,
            orphans_deleted=self.report.orphans_deleted + len(gone),
            desktops_replaced=self.report.desktops_replaced + len(decision.lost),
            candidates=len(self.input.first_seen),
        )

    async def _list(self, scope: CloudScope) -> ListTaggedServersResult:
        return await workflow.execute_activity_method(
            ReconcileActivities.list_tagged_servers,
            scope,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )

    async def _survey(self, scope: CloudScope) -> SurveyDesktopsResult:
        return await workflow.execute_activity_method(
            ReconcileActivities.survey_desktops,
            scope,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
        )

    async def _delete(self, scope: CloudScope, server: TaggedServerInfo, now: datetime) -> bool:
        result = await workflow.execute_activity_method(
            ReconcileActivities.delete_orphan,
            DeleteOrphanInput(scope, server.server_id, server.name, server.desktop_id, now),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        return result.deleted

    @workflow.signal
    def sweep(self, _: SweepInput) -> None:
        """Sweep now instead of at the next interval."""
        self.sweep_now = True

    @workflow.query
    def status(self, _: ReconcileStatusInput) -> SweepReport:
        return self.report
