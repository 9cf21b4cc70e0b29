"""The whole engine against the real local OpenStack: a pool of ten filled and drained,
and a worker process SIGKILLed between the create call and its record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.store.migrate import upgrade
from activities.store.models import DesktopRecord
from api.desktop_access import release_when_taken
from tests.engine import claim, counts, eventually, start_pool
from tests.openstack.conftest import MiniCloud
from tools.minicloud import paused
from worker.main import build_worker
from worker.settings import WorkerSettings
from workflows.messages import ClaimStatus, ReleaseInput
from workflows.pool_spec import PoolSpec, Template, Timers

pytestmark = pytest.mark.openstack


def pool_spec(minicloud: MiniCloud, name: str, mask: str, size: int) -> PoolSpec:
    return PoolSpec(
        name=name,
        naming_mask=mask,
        cloud=minicloud.cloud,
        max_desktops=size,
        prestarted=size,
        timers=Timers(disconnected_retention_s=0),
        template=Template(image="win11-golden", flavor="vdi.small", networks=["vdi-net"], security_groups=["vdi-rdp"]),
    )


def servers_of(sdk: Any, pool_id: str) -> dict[str, str]:
    """The cloud's own view: server id -> status of every server tagged for this pool."""
    return {
        s.id: s.status
        for s in sdk.compute.servers(details=True, tags="deskpool")
        if (s.metadata or {}).get("deskpool_pool") == pool_id
    }


@pytest.fixture
def cleanup(sdk: Any) -> Iterator[list[str]]:
    pools: list[str] = []
    yield pools
    doomed = [server_id for pool_id in pools for server_id in servers_of(sdk, pool_id)]
    for server_id in doomed:
        sdk.compute.delete_server(server_id, ignore_missing=True)
    for server_id in doomed:  # the project's instance quota is 10: free it before the next test
        server = sdk.compute.find_server(server_id, ignore_missing=True)
        if server is not None:
            sdk.compute.wait_for_delete(server, wait=120)


async def test_pool_of_ten_fills_and_drains_without_a_leak(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, minicloud: MiniCloud, sdk: Any, cleanup: list[str]
) -> None:
    upgrade(sqlite_url)
    settings = WorkerSettings(task_queue=task_queue, database_url=sqlite_url, clouds_yaml=minicloud.clouds_yaml)
    with ThreadPoolExecutor(64) as executor:
        async with build_worker(dev_env.client, settings, executor):
            pool = await start_pool(dev_env.client, task_queue, pool_spec(minicloud, "OpenStack ten", "ten-", 10))
            pool_id = pool.id.removeprefix("pool/")
            cleanup.append(pool_id)
            filled = await eventually(lambda: counts(pool), lambda c: c.ready == 10, timeout_s=180)
            assert filled.ready == 10
            first = servers_of(sdk, pool_id)
            assert len(first) == 10 and set(first.values()) == {"ACTIVE"}

            outcomes = [await claim(pool, f"agent{i}") for i in range(10)]
            assert {o.status for o in outcomes} == {ClaimStatus.ASSIGNED}
            assert len({o.desktop_id for o in outcomes}) == 10
            for outcome in outcomes:
                # As the API releases: the claim's answer may overtake the pool's assign signal,
                # and a Release that finds the desktop still idle is tried again.
                desktop = DesktopRecord(
                    id=outcome.desktop_id or "", pool_id=pool_id, name="", state="assigned", user=outcome.user
                )
                await release_when_taken(dev_env.client, desktop, ReleaseInput(reason="drain"))

            refilled = await eventually(lambda: counts(pool), lambda c: c.ready == 10 and c.live == 10, timeout_s=240)
            assert (refilled.ready, refilled.live) == (10, 10)
            now = servers_of(sdk, pool_id)
            assert len(now) == 10 and not set(now) & set(first)  # the used ten are gone, none leaked
            await pool.terminate()


async def test_worker_killed_between_create_and_record_leaves_exactly_one_server(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    sqlite_url: str,
    minicloud: MiniCloud,
    sdk: Any,
    cleanup: list[str],
    tmp_path: Path,
) -> None:
    upgrade(sqlite_url)
    env = {
        **os.environ,
        "DESKPOOL_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DESKPOOL_TASK_QUEUE": task_queue,
        "DESKPOOL_DATABASE_URL": sqlite_url,
        "DESKPOOL_CLOUDS_YAML": str(minicloud.clouds_yaml),
    }

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([sys.executable, "-m", "worker"], env=env, stdout=log, stderr=log)

    first = start_worker("worker-1")
    try:
        with paused("nova-compute", minicloud.state_dir):  # the server stays in BUILD meanwhile
            pool = await start_pool(dev_env.client, task_queue, pool_spec(minicloud, "Crash one", "crash-", 1))
            pool_id = pool.id.removeprefix("pool/")
            cleanup.append(pool_id)
            building = await eventually(lambda: asyncio.to_thread(servers_of, sdk, pool_id), bool, timeout_s=60)
            assert len(building) == 1, building  # the create call went out; its activity has not finished
            first.send_signal(signal.SIGKILL)
            first.wait()
        second = start_worker("worker-2")
        try:
            ready = await eventually(lambda: counts(pool), lambda c: c.ready == 1, timeout_s=150)
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert ready.ready == 1
    assert servers_of(sdk, pool_id) == {next(iter(building)): "ACTIVE"}  # exactly one, the same one
    await pool.terminate()


async def test_orphan_sweep_deletes_a_leaked_server_and_spares_the_pools(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, minicloud: MiniCloud, sdk: Any, cleanup: list[str]
) -> None:
    from workflows.reconcile_workflow import (
        CloudReconcileWorkflow,
        ReconcileInput,
        ReconcileStatusInput,
        reconcile_workflow_id,
    )

    upgrade(sqlite_url)
    settings = WorkerSettings(task_queue=task_queue, database_url=sqlite_url, clouds_yaml=minicloud.clouds_yaml)
    image = sdk.image.find_image("win11-golden").id
    flavor = sdk.compute.find_flavor("vdi.small").id
    network = sdk.network.find_network("vdi-net").id
    leaked = sdk.compute.create_server(
        name="leaked-desktop",
        image_id=image,
        flavor_id=flavor,
        networks=[{"uuid": network}],
        tags=["deskpool"],
        metadata={"deskpool_desktop": "ghost.1", "deskpool_pool": "ghost"},
    )
    cleanup.append("ghost")
    with ThreadPoolExecutor(32) as executor:
        async with build_worker(dev_env.client, settings, executor):
            pool = await start_pool(dev_env.client, task_queue, pool_spec(minicloud, "Kept two", "kept-", 2))
            pool_id = pool.id.removeprefix("pool/")
            cleanup.append(pool_id)
            await eventually(lambda: counts(pool), lambda c: c.ready == 2, timeout_s=120)
            kept = servers_of(sdk, pool_id)
            reconciler = await dev_env.client.start_workflow(
                CloudReconcileWorkflow.run,
                ReconcileInput(minicloud.cloud, None, interval_s=1.0, orphan_grace_s=2.0),
                id=reconcile_workflow_id(minicloud.cloud, f"test-{task_queue}"),
                task_queue=task_queue,
            )
            report = await eventually(
                lambda: reconciler.query(CloudReconcileWorkflow.status, ReconcileStatusInput()),
                lambda r: r.orphans_deleted >= 1,
                timeout_s=90,
            )
            await reconciler.terminate()
            assert report.orphans_deleted >= 1 and report.desktops_replaced == 0
            gone = sdk.compute.find_server(leaked.id, ignore_missing=True)
            if gone is not None:
                sdk.compute.wait_for_delete(gone, wait=60)
            assert sdk.compute.find_server(leaked.id, ignore_missing=True) is None
            assert servers_of(sdk, pool_id) == kept  # the pool's own servers untouched
            await pool.terminate()
