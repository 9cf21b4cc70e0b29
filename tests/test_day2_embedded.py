"""Day-2 operations on the real openstacksdk driver against the embedded cloud (issue 7).

The cloud activities: a soft and a hard reboot wait until the server is ACTIVE again, a retry
after the reboot was asked for only waits (no second reboot), and a restart of a stopped server
starts it. Then the whole path through the API, the engine and the driver: forced restart and
restart, the console URL (it opens, and it is in no workflow history), the console log, power off
and detach (the server kept with its own metadata and user data, deskpool's marks gone).
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.cloud import REBOOT_REQUESTED, CloudActivities
from activities.cloud_driver import CloudConnections, connect
from activities.directory import DirectorySettings
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from api.settings import ApiSettings
from tests.api_client import api_client
from tests.engine_api import AGENT_KEY, directory_file, until, who
from tools.embedded_cloud import CloudConfig, Delays, RunningCloud, run_in_thread
from worker.main import build_worker
from worker.settings import WorkerSettings
from workflows.activity_io import (
    CreateServerInput,
    DeleteServerInput,
    PowerAction,
    PowerServerInput,
    ServerRef,
)
from workflows.messages import desktop_workflow_id
from workflows.pool_spec import Template

DELAYS = Delays(build=0.1, delete=0.1, stop=0.1, start=0.1, reboot=0.3, rebuild=0.1)
USER_DATA = "#cloud-config\nhostname: day2\n"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    clouds = tmp_path_factory.mktemp("cloud") / "clouds.yaml"
    with run_in_thread(CloudConfig(delays=DELAYS), clouds_yaml=clouds) as running:
        yield running


@pytest.fixture(scope="module")
def activities(cloud: RunningCloud) -> CloudActivities:
    return CloudActivities(CloudConnections(cloud.clouds_yaml).driver, sleep=lambda _s: time.sleep(0.02))


def provision(activities: CloudActivities, desktop_id: str) -> ServerRef:
    request = CreateServerInput(
        ServerRef("embedded", desktop_id),
        name=f"d2-{desktop_id.rpartition('.')[2]}",
        pool_id="d2",
        template_version=1,
        template=Template(image="win11-golden", flavor="vdi.small", networks=["vdi-net"]),
        build_timeout_s=60,
        poll_interval_s=0.05,
    )
    made = ActivityEnvironment().run(activities.provision_server, request)
    return ServerRef("embedded", desktop_id, made.server_id)


def reboots(cloud: RunningCloud) -> int:
    return cloud.state.stats.server_actions["reboot"]


def power(
    activities: CloudActivities, ref: ServerRef, action: PowerAction, env: ActivityEnvironment | None = None
) -> str:
    request = PowerServerInput(ref, action, wait_timeout_s=30)
    return (env or ActivityEnvironment()).run(activities.power_server, request).status


@pytest.mark.parametrize("action", [PowerAction.REBOOT_SOFT, PowerAction.REBOOT_HARD])
def test_a_reboot_waits_until_active_again_and_a_retry_only_waits(
    cloud: RunningCloud, activities: CloudActivities, action: PowerAction
) -> None:
    ref = provision(activities, f"d2.{action.value}")
    before = reboots(cloud)
    beats: list[tuple[Any, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    assert power(activities, ref, action, env) == "ACTIVE"
    assert reboots(cloud) == before + 1
    # It waited through REBOOT / HARD_REBOOT, each heartbeat from the request on saying the reboot
    # was asked for (its requests' keep-alives before that carry what the attempt knew: nothing).
    asked = [i for i, b in enumerate(beats) if b[:1] == (REBOOT_REQUESTED,)]
    assert asked and all(b[:1] == (REBOOT_REQUESTED,) for b in beats[asked[0] :]), beats

    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=[REBOOT_REQUESTED, "REBOOT"])
    retry_beats: list[tuple[Any, ...]] = []
    retry.on_heartbeat = lambda *details: retry_beats.append(details)
    assert power(activities, ref, action, retry) == "ACTIVE"
    assert reboots(cloud) == before + 1  # the retry did not reboot the user's desktop a second time
    # Every heartbeat of the retry, its requests' keep-alives too, keeps the marker for a next retry.
    assert retry_beats and all(b[:1] == (REBOOT_REQUESTED,) for b in retry_beats), retry_beats
    ActivityEnvironment().run(activities.delete_server, DeleteServerInput(ref))


def test_a_restart_of_a_stopped_server_starts_it(cloud: RunningCloud, activities: CloudActivities) -> None:
    ref = provision(activities, "d2.stopped")
    assert power(activities, ref, PowerAction.STOP) == "SHUTOFF"
    assert power(activities, ref, PowerAction.REBOOT_SOFT) == "ACTIVE"
    assert power(activities, ref, PowerAction.STOP) == "SHUTOFF"
    assert power(activities, ref, PowerAction.REBOOT_HARD) == "ACTIVE"  # Nova hard-reboots a stopped server
    ActivityEnvironment().run(activities.delete_server, DeleteServerInput(ref))


# --- the API, the engine and the driver on the embedded cloud ---------------------------------


@dataclass
class Stack:
    api: httpx.AsyncClient
    cloud: RunningCloud
    temporal: Client


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, tmp_path: Path, cloud: RunningCloud
) -> AsyncIterator[Stack]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    worker_settings = WorkerSettings(task_queue=task_queue, database_url=sqlite_url, clouds_yaml=cloud.clouds_yaml)
    cloud_activities = CloudActivities(CloudConnections(cloud.clouds_yaml).driver, sleep=lambda _s: time.sleep(0.02))
    settings = ApiSettings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        database_url=sqlite_url,
        directory=DirectorySettings(backend="builtin", builtin_file=directory_file(tmp_path / "dir.yaml")),
        super_users=["root"],
        secret_key=AGENT_KEY.decode(),  # type: ignore[arg-type]
        clouds_yaml=cloud.clouds_yaml,
    )
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = build_worker(dev_env.client, worker_settings, executor, engine=engine, cloud=cloud_activities)
        async with worker, api_client(settings) as (_, client):
            yield Stack(client, cloud, dev_env.client)
    engine.dispose()


def actions(detail: dict[str, Any]) -> list[str]:
    return [e["action"] for e in detail["events"]]


async def test_restart_console_log_power_off_and_detach_through_the_api(stack: Stack) -> None:
    api, root = stack.api, who(stack.api, "root")
    template = {"image": "win11-golden", "flavor": "vdi.small", "networks": ["vdi-net"],
                "security_groups": ["vdi-rdp"], "user_data": USER_DATA, "metadata": {"owner": "finance"}}  # fmt: skip
    body = {"name": f"Day2 embedded {uuid.uuid4().hex[:6]}", "naming_mask": "dte-", "template": template,
            "assignment": "personal", "prestarted": 0, "min_desktops": 1, "max_desktops": 2}  # fmt: skip
    made = await api.post("/pools", json=body, headers=root)
    assert made.status_code == 201, made.text
    pool = made.json()["id"]
    ready = await until(api, f"/desktops?pool={pool}&state=ready", lambda ds: len(ds) == 1, root)
    desktop, server_id = ready[0]["id"], ready[0]["server_id"]
    before = reboots(stack.cloud)

    forced = await api.post(f"/desktops/{desktop}/power", json={"action": "force_restart"}, headers=root)
    assert forced.status_code == 202, forced.text
    await until(api, f"/desktops/{desktop}", lambda d: "desktop.restarted (forced)" in actions(d), root)
    soft = await api.post(f"/desktops/{desktop}/power", json={"action": "restart"}, headers=root)
    assert soft.status_code == 202, soft.text
    detail = await until(api, f"/desktops/{desktop}", lambda d: "desktop.restarted" in actions(d), root)
    assert detail["state"] == "ready" and reboots(stack.cloud) == before + 2

    console = await api.get(f"/desktops/{desktop}/console", headers=root)
    assert console.status_code == 200, console.text
    url = console.json()["url"]
    assert url.startswith(stack.cloud.base_url) and "token=" in url
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
    assert page.status_code == 200 and "dte-001" in page.text  # the cloud's own console page for this server
    history = await stack.temporal.get_workflow_handle(desktop_workflow_id(desktop)).fetch_history()
    token = url.partition("token=")[2]
    assert token and token not in history.to_json()

    log = await api.get(f"/desktops/{desktop}/log", params={"lines": 3}, headers=root)
    assert log.status_code == 200 and len(log.text.splitlines()) == 3 and "login:" in log.text, log.text

    assert (await api.post(f"/desktops/{desktop}/detach", headers=root)).status_code == 409  # running
    assert (await api.post(f"/desktops/{desktop}/power", json={"action": "off"}, headers=root)).status_code == 202
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "standby", root)
    stopped = await api.get(f"/desktops/{desktop}/console", headers=root)
    assert stopped.status_code == 409, stopped.text  # the cloud's "not ready": mapped, not a 500
    detaching = await api.post(f"/desktops/{desktop}/detach", headers=root)
    assert detaching.status_code == 202, detaching.text
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "detached", root)

    server = connect(stack.cloud.clouds_yaml, "embedded").compute.get_server(server_id)
    assert server.status == "SHUTOFF"
    assert dict(server.metadata) == {"owner": "finance"}  # deskpool_* gone, the template's own kept
    assert not any(t == "deskpool" or t.startswith("dpd-") for t in server.tags or []), server.tags
    assert base64.b64decode(server.user_data).decode() == USER_DATA  # user data untouched
    # The pool counts it gone and makes a new desktop.
    await until(api, f"/desktops?pool={pool}&state=ready", lambda ds: len(ds) == 1 and ds[0]["id"] != desktop, root)
