"""The real openstacksdk driver against the embedded cloud: consoles and logs, crash-safe
create, the 404-means-gone read, detach (tags and metadata stripped), plain-JSON reads that
match openstacksdk's, errors mapped once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import CloudActivities
from activities.cloud_driver import REQUEST_TIMEOUT_S, CloudConnections, OpenStackDriver, connect
from activities.cloud_errors import CONFLICT, THROTTLED, UNAVAILABLE, call
from tools.embedded_cloud.runner import RunningCloud, run_in_thread
from workflows.activity_io import (
    ConsoleOutputInput,
    ConsoleUrlInput,
    CreateServerInput,
    DeleteServerInput,
    DetachServerInput,
    ServerRef,
)
from workflows.pool_spec import Template


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCloud, Path]]:
    clouds = tmp_path_factory.mktemp("cloud") / "clouds.yaml"
    with run_in_thread(clouds_yaml=clouds) as running:
        yield running, clouds


@pytest.fixture(scope="module")
def activities(cloud: tuple[RunningCloud, Path]) -> CloudActivities:
    return CloudActivities(CloudConnections(cloud[1]).driver, sleep=lambda _s: None)


def provision(activities: CloudActivities, desktop_id: str) -> ServerRef:
    request = create_request(desktop_id)
    env = ActivityEnvironment()
    first = env.run(activities.provision_server, request)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    again = retry.run(activities.provision_server, request)  # a retry after a crash
    assert again.server_id == first.server_id  # found by its desktop tag, not made twice
    return ServerRef("embedded", desktop_id, first.server_id)


def test_a_later_provisioning_call_looks_for_its_server_before_creating(activities: CloudActivities) -> None:
    """The desktop calls provision_server again after its first attempts failed on a sick cloud
    (desktop_steps._create_telling_trouble): one of them may have reached the cloud."""
    ref = provision(activities, "drv.9")
    later = dataclasses.replace(create_request("drv.9"), look_first=True)
    again = ActivityEnvironment().run(activities.provision_server, later)  # attempt 1 of the new call
    assert again.server_id == ref.server_id


def create_request(desktop_id: str) -> CreateServerInput:
    return CreateServerInput(
        ServerRef("embedded", desktop_id),
        name="drv-001",
        pool_id="drv",
        template_version=1,
        template=Template(image="win11-golden", flavor="vdi.small", networks=["vdi-net"], security_groups=["vdi-rdp"]),
        build_timeout_s=60,
        poll_interval_s=0.05,
    )


def test_console_output_and_remote_console(activities: CloudActivities) -> None:
    ref = provision(activities, "drv.1")
    env = ActivityEnvironment()
    log = env.run(activities.console_output, ConsoleOutputInput(ref, lines=5))
    assert 0 < len(log.output.splitlines()) <= 5
    console = env.run(activities.console_url, ConsoleUrlInput(ref))
    assert console.console_type in ("spice-html5", "novnc") and console.url.startswith("http")
    env.run(activities.delete_server, DeleteServerInput(ref))


def test_delete_is_idempotent_and_reads_of_a_gone_server_say_gone(activities: CloudActivities) -> None:
    ref = provision(activities, "drv.2")
    env = ActivityEnvironment()
    assert env.run(activities.delete_server, DeleteServerInput(ref)).existed is True
    assert env.run(activities.delete_server, DeleteServerInput(ref)).existed is False
    assert activities.drivers("embedded", None, None).get(ref.server_id or "") is None


def test_missing_image_is_a_non_retryable_error_naming_it(activities: CloudActivities, tmp_path: Path) -> None:
    request = CreateServerInput(
        ServerRef("embedded", "drv.3"), "drv-003", "drv", 1, Template(image="no-such-image", flavor="vdi.small")
    )
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(activities.provision_server, request)
    assert caught.value.non_retryable and caught.value.type == "CloudResourceNotFound"
    assert "no-such-image" in str(caught.value)


def test_detach_strips_deskpools_tags_and_metadata_and_keeps_the_server(activities: CloudActivities) -> None:
    ref = provision(activities, "drv.4")
    driver = activities.drivers("embedded", None, None)
    before = driver.get(ref.server_id or "")
    assert before is not None and "deskpool" in before.tags
    assert before.metadata and before.metadata["deskpool_desktop"] == "drv.4"
    env = ActivityEnvironment()

    done = env.run(activities.detach_server, DetachServerInput(ref))
    assert done.existed and done.server_id == ref.server_id
    assert set(done.metadata_keys) == {k for k in before.metadata if k.startswith("deskpool_")}
    after = driver.get(ref.server_id or "")
    assert after is not None and after.status == "ACTIVE"  # the server itself is untouched
    assert not any(t == "deskpool" or t.startswith("dpd-") for t in after.tags), after.tags
    assert not any(k.startswith("deskpool_") for k in after.metadata or {}), after.metadata
    assert ref.server_id not in {s.id for s in driver.list_tagged()}  # out of the reconciler's sight
    assert driver.find_by_desktop("drv.4") == []

    again = env.run(activities.detach_server, DetachServerInput(ref))  # a retry after a crash
    assert again.existed and again.metadata_keys == []
    env.run(activities.delete_server, DeleteServerInput(ref))


def test_plain_json_reads_describe_a_server_as_openstacksdk_does(
    activities: CloudActivities, cloud: tuple[RunningCloud, Path]
) -> None:
    """The driver reads servers from Nova's JSON, not openstacksdk's resources (CPU): a GET and
    the waits' changes-since listing must describe a server exactly as openstacksdk's own
    `get_server` does (status, address, tags, flavor, image, metadata)."""
    ref = provision(activities, "drv.4")
    driver = activities.drivers("embedded", None, None)
    by_sdk = OpenStackDriver._info(connect(cloud[1], "embedded").compute.get_server(ref.server_id))
    by_get = driver.get(ref.server_id or "")
    assert by_get == by_sdk
    listed = {s.id: s for s in driver.list_changed(time.time() - 120)}
    assert by_get is not None and listed[by_get.id] == by_get
    assert by_get.status == "ACTIVE" and by_get.address and "deskpool" in by_get.tags
    assert by_get.flavor_name == "vdi.small" and by_get.image_id
    assert driver.list_changed(time.time() + 3600) == []  # nothing changed after now
    ActivityEnvironment().run(activities.delete_server, DeleteServerInput(ref))


def test_every_request_of_a_cloud_activity_keeps_it_alive(activities: CloudActivities) -> None:
    """create_server never heartbeats itself; its requests do (heartbeats.keep_alive). A create that
    spent the heartbeat timeout in an outage's retries was timed out while it ran, and its retry
    made a second server (docs/reliability.md, finding 9)."""
    env = ActivityEnvironment()
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    created = env.run(activities.create_server, create_request("drv.5"))
    assert created.created and beats
    ActivityEnvironment().run(activities.delete_server, DeleteServerInput(ServerRef("embedded", "drv.5")))


def test_each_process_names_itself_to_the_cloud(tmp_path: Path) -> None:
    """The User-Agent's first word says which deskpool process sent a request (finding 3: which
    one went over the rate limit); the embedded cloud's busiest second is counted by it."""
    import httpx

    clouds = tmp_path / "clouds.yaml"
    with run_in_thread(clouds_yaml=clouds) as cloud:
        httpx.post(f"{cloud.admin_url}/stats/reset").raise_for_status()
        CloudConnections(clouds, app_name="deskpool-worker").driver("embedded", None).find_by_desktop("named.1")
        peak = httpx.get(f"{cloud.admin_url}/stats").json()["peak_second"]
    assert peak, "no request counted"
    assert all(key.startswith("deskpool-worker ") for key in peak), peak
    assert any(key.endswith("compute.servers.list_detail") for key in peak), peak


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("unavailable_rate", UNAVAILABLE), ("throttle_rate", THROTTLED), ("conflict_rate", CONFLICT)],
)
def test_plain_json_reads_and_deletes_map_cloud_errors_as_before(
    activities: CloudActivities, cloud: tuple[RunningCloud, Path], fault: str, kind: str
) -> None:
    """A read or delete that skips openstacksdk's resources still raises openstacksdk's
    exceptions, so `cloud_errors` makes a busy cloud retryable; a 404 stays an answer."""
    import httpx

    driver = activities.drivers("embedded", None, None)
    calls = {
        "get": lambda: driver.get("no-such-server"),
        "find_by_desktop": lambda: driver.find_by_desktop("drv.none"),
        "list_changed": lambda: driver.list_changed(time.time() - 60),
        "delete": lambda: driver.delete("no-such-server"),
    }
    assert driver.get("no-such-server") is None and driver.delete("no-such-server") is False
    httpx.post(f"{cloud[0].admin_url}/faults", json={fault: 1.0}).raise_for_status()
    try:
        for name, read in calls.items():
            with pytest.raises(ApplicationError) as caught:
                call(read)
            assert (caught.value.type, caught.value.non_retryable) == (kind, False), name
    finally:
        httpx.post(f"{cloud[0].admin_url}/faults", json={fault: 0.0}).raise_for_status()


def test_a_request_to_the_cloud_times_out_before_its_activity_would(tmp_path: Path) -> None:
    """A hung request must fail inside its attempt (heartbeat timeout 30 s), not hold it forever;
    a clouds.yaml `api_timeout` still wins."""
    clouds = tmp_path / "clouds.yaml"
    with run_in_thread(clouds_yaml=clouds):
        assert connect(clouds, "embedded").config.config["api_timeout"] == REQUEST_TIMEOUT_S < 30
        text = clouds.read_text()
        clouds.write_text(text.replace("  embedded:\n", "  embedded:\n    api_timeout: 7\n", 1))
        assert float(connect(clouds, "embedded").config.config["api_timeout"]) == 7
