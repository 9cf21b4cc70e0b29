"""The reconciler asks the desktops before it lists the cloud (workflow.patched
"reconcile-survey-before-listing"): listed first, a desktop that became ready between the
listing and the survey looked as if its server had vanished, and was destroyed right away."""

from __future__ import annotations

import asyncio
import threading

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.cloud_driver import ServerInfo
from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.reconcile_workflow import (
    CloudReconcileWorkflow,
    ReconcileInput,
    ReconcileStatusInput,
    SweepReport,
    reconcile_workflow_id,
)


async def test_a_desktop_ready_between_listing_and_survey_is_not_taken_for_lost(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = FakeCloud()
    listed, desktop_ready = threading.Event(), threading.Event()
    list_tagged = cloud.list_tagged

    def slow_listing() -> list[ServerInfo]:
        """The first listing is taken at once and answered late: after the pool's desktop is ready."""
        snapshot = list_tagged()
        if not listed.is_set():
            listed.set()
            desktop_ready.wait(20)
        return snapshot

    monkeypatch.setattr(cloud, "list_tagged", slow_listing)
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        reconciler: WorkflowHandle = await dev_env.client.start_workflow(
            CloudReconcileWorkflow.run,
            ReconcileInput("embedded", None, interval_s=3600, orphan_grace_s=3600),
            id=reconcile_workflow_id("embedded", f"test-{task_queue}"),
            task_queue=task_queue,
        )
        assert await asyncio.to_thread(listed.wait, 20)  # the first sweep's listing: no server yet
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=1, prestarted=1))
        ready = await eventually(lambda: counts(pool), lambda c: c.ready == 1)
        assert ready.ready == 1
        desktop_ready.set()

        async def report() -> SweepReport:
            result: SweepReport = await reconciler.query(CloudReconcileWorkflow.status, ReconcileStatusInput())
            return result

        swept = await eventually(report, lambda r: r.sweeps >= 1)
        assert swept.sweeps >= 1 and swept.desktops_replaced == 0
        assert cloud.deleted == 0 and (await counts(pool)).ready == 1
