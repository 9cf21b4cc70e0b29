"""The real openstacksdk driver against the embedded cloud: consoles and logs, crash-safe
create, the 404-means-gone read, detach (tags and metadata stripped), errors mapped once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import CloudActivities
from activities.cloud_driver import CloudConnections
from tools.embedded_cloud.runner import run_in_thread
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
def activities(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudActivities]:
    clouds = tmp_path_factory.mktemp("cloud") / "clouds.yaml"
    with run_in_thread(clouds_yaml=clouds):
        yield CloudActivities(CloudConnections(clouds).driver, sleep=lambda _s: None)


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


def test_the_shared_listing_reads_what_a_get_reads(activities: CloudActivities) -> None:
    """The waits' changes-since listing is parsed from Nova's JSON: it must describe a server
    exactly as the openstacksdk GET does (status, address, tags, flavor, image, metadata)."""
    ref = provision(activities, "drv.4")
    driver = activities.drivers("embedded", None, None)
    by_get = driver.get(ref.server_id or "")
    listed = {s.id: s for s in driver.list_changed(time.time() - 120)}
    assert by_get is not None and listed[by_get.id] == by_get
    assert by_get.status == "ACTIVE" and by_get.address and "deskpool" in by_get.tags
    assert by_get.flavor_name == "vdi.small" and by_get.image_id
    assert driver.list_changed(time.time() + 3600) == []  # nothing changed after now
    ActivityEnvironment().run(activities.delete_server, DeleteServerInput(ref))


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
