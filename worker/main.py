"""Composition root of the worker process: settings -> clients -> activities -> worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from activities.capacity import CapacityActivities
from activities.cloud import CloudActivities
from activities.cloud_driver import CloudConnections
from activities.cloud_limits import CloudLimits
from activities.cloud_metrics import CloudSlotsCollector
from activities.projection import ProjectionActivities
from activities.reconcile import ReconcileActivities
from activities.rollout import RolloutActivities
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.temporal_connection import connect_temporal
from worker.metrics import start_worker_metrics
from worker.payloads import DATA_CONVERTER
from worker.server_watch import RESTARTED_FLAG, ServerWatch, restart_process, serve_until_server_lost
from worker.settings import WorkerSettings, load_worker_settings
from workflows.capacity_workflow import CapacityChangeWorkflow
from workflows.desktop_workflow import DesktopWorkflow
from workflows.pool_workflow import PoolWorkflow
from workflows.reconcile_workflow import CloudReconcileWorkflow
from workflows.rollout_workflow import RolloutWorkflow

log = logging.getLogger("deskpool.worker")

# How long the worker's store statements wait for a locked or unreachable database.
PROJECTION_BUSY_TIMEOUT_S = 1.0
WORKFLOWS = [PoolWorkflow, DesktopWorkflow, CloudReconcileWorkflow, CapacityChangeWorkflow, RolloutWorkflow]
# The sandbox proxies the datetime module, and a dataclass field typed plainly
# `datetime` then fails to decode (carried state across continue-as-new). The
# SDK maintainers' remedy is to leave `datetime` unrestricted; the wall clock
# stays out of workflows by tests/test_determinism_guard.py instead.
# Modules passed into the sandbox as they are instead of re-imported for every
# workflow run: pydantic, and all of deskpool's `workflows` package (the workflow
# classes, their dataclasses, rules and plans: no module-level state, no I/O,
# enforced by tests/test_determinism_guard.py and the replay tests). Re-importing
# the dataclass modules cost ~0.4 s of CPU per run, which under load tripped the
# SDK's 2 s deadlock detector on continue-as-new; re-importing (and compiling) the
# workflow modules themselves was still a quarter of the worker's CPU while a pool
# filled (docs/benchmarks.md, B5). The sandbox still guards every other module.
PASSED_THROUGH = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "workflows")
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=dataclasses.replace(
        SandboxRestrictions.default,
        invalid_module_members=SandboxRestrictions.invalid_module_members_default.with_child_unrestricted("datetime"),
    ).with_passthrough_modules(*PASSED_THROUGH)
)


def cloud_activities(settings: WorkerSettings) -> CloudActivities:
    """The cloud activities of this process: clouds.yaml, agent secrets, per-cloud slots."""
    connections = CloudConnections(
        settings.clouds_yaml, settings.cloud_max_calls_per_second or None, app_name="deskpool-worker"
    )
    return CloudActivities(
        connections.driver,
        agent_key=settings.secret_key_bytes(),
        limits=CloudLimits(settings.cloud_max_concurrent_builds, settings.cloud_max_concurrent_deletes),
        build_timeout_s=settings.cloud_build_timeout_s,
    )


def build_worker(
    client: Client,
    settings: WorkerSettings,
    executor: ThreadPoolExecutor,
    *,
    engine: Engine | None = None,
    cloud: CloudActivities | None = None,
) -> Worker:
    """Tests hand in activities on a fake cloud or their own engine; the process uses clouds.yaml."""
    # The worker decodes with its own converter, however the client was made (worker/payloads.py).
    config = client.config()
    config["data_converter"] = DATA_CONVERTER
    client = Client(**config)
    # Short waits: a projection the read model cannot take now is retried later (on a timer).
    engine = engine or make_engine(settings.database_url, busy_timeout_s=PROJECTION_BUSY_TIMEOUT_S)
    cloud = cloud or cloud_activities(settings)
    projection = ProjectionActivities(engine)
    audit = AuditActivities(engine)
    reconcile = ReconcileActivities(client, cloud.drivers, engine)
    rollout = RolloutActivities(client, engine)
    capacity = CapacityActivities(client, engine)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            cloud.ensure_project,
            cloud.provision_server,
            cloud.create_server,
            cloud.wait_server_active,
            cloud.power_server,
            cloud.rebuild_server,
            cloud.delete_server,
            cloud.detach_server,
            cloud.console_output,
            cloud.console_url,
            projection.project_desktop,
            projection.project_pool,
            audit.record_audit_event,
            reconcile.list_tagged_servers,
            reconcile.survey_desktops,
            reconcile.delete_orphan,
            rollout.pool_rollout_view,
            rollout.pool_recycle,
            rollout.clear_failed_desktops,
            capacity.apply_capacity,
        ],
        # Store and cloud SDK calls are blocking; they run on this pool.
        activity_executor=executor,
        max_concurrent_activities=min(settings.max_concurrent_activities, executor._max_workers),
        max_concurrent_local_activities=min(settings.max_concurrent_activities, executor._max_workers),
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
    )


async def run(settings: WorkerSettings, *, restarted: bool = False) -> None:
    upgrade(settings.database_url)
    # /metrics first: the Temporal client must be made on the runtime that exports the SDK's metrics.
    telemetry = start_worker_metrics(settings)
    try:
        # Started again after losing the server (worker/server_watch.py): wait for it as long as it
        # takes, trying often (a restart is usually over in seconds and claims wait for the worker).
        wait_s, max_delay_s = (float("inf"), 0.5) if restarted else (120.0, 5.0)
        client = await connect_temporal(settings, runtime=telemetry.runtime, wait_s=wait_s, max_delay_s=max_delay_s)
        cloud = cloud_activities(settings)
        telemetry.add(CloudSlotsCollector(cloud.limits))
        with ThreadPoolExecutor(max_workers=settings.max_concurrent_activities) as executor:
            worker = build_worker(client, settings, executor, cloud=cloud)
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            await serve_until_server_lost(worker, ServerWatch(client), restart_process)
    finally:
        telemetry.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_worker_settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings, restarted=RESTARTED_FLAG in sys.argv))
