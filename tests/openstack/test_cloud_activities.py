"""deskpool's cloud activities and openstacksdk driver against a real Nova, Neutron, Glance (tools/minicloud).

One desktop server is shared by the module (a create costs ~3 s); every test
leaves it ACTIVE. Activities run in temporalio's ActivityEnvironment, where a
Temporal retry is simply calling the activity again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import CloudActivities
from activities.cloud_driver import DESKPOOL_TAG, desktop_tag
from activities.cloud_errors import CONFLICT
from tests.openstack.conftest import MiniCloud
from tools.minicloud import paused
from workflows.activity_io import (
    CreateServerInput,
    DeleteServerInput,
    PowerAction,
    PowerServerInput,
    RebuildServerInput,
    ServerRef,
    WaitServerInput,
)
from workflows.pool_spec import Template

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]

A = TypeVar("A")
R = TypeVar("R")

IMAGE, FLAVOR, NETWORK, SECURITY_GROUP, SUBNET_CIDR = (
    "win11-golden",
    "vdi.medium",
    "vdi-net",
    "vdi-rdp",
    "10.250.0.0/24",
)
TEMPLATE = Template(
    image=IMAGE,
    flavor=FLAVOR,
    networks=[NETWORK],
    security_groups=[SECURITY_GROUP],
    metadata={"deskpool_test": "minicloud"},
)


def run(fn: Callable[[A], R], arg: A) -> R:
    return ActivityEnvironment().run(fn, arg)


def run_retrying(
    fn: Callable[[A], R], arg: A, attempts: int = 40, interval_s: float = 0.25
) -> tuple[R, list[ApplicationError]]:
    """Call an activity the way Temporal retries it: again after a retryable error, never after another."""
    errors: list[ApplicationError] = []
    for _ in range(attempts):
        try:
            return run(fn, arg), errors
        except ApplicationError as exc:
            if exc.non_retryable:
                raise
            errors.append(exc)
            time.sleep(interval_s)
    raise AssertionError(f"still failing after {attempts} attempts: {errors[-1]}")


@dataclass
class Desktop:
    ref: ServerRef  # by desktop id only, as a crash-safe lookup does
    server_id: str


def create(cloud: str, label: str) -> tuple[ServerRef, CreateServerInput]:
    desktop_id = f"it-{label}-{uuid.uuid4().hex[:10]}"
    ref = ServerRef(cloud=cloud, desktop_id=desktop_id)
    request = CreateServerInput(
        ref=ref, name=f"vdi-{desktop_id}", pool_id="pool-it", template_version=3, template=TEMPLATE
    )
    return ref, request


def state(sdk: Any, server_id: str) -> tuple[str, str | None]:
    server = sdk.compute.get_server(server_id)
    return server.status, server.task_state


def actions(sdk: Any, server_id: str) -> list[str]:
    """Nova's instance action log, oldest first: proof that a call really reached Nova.

    Nova lists it newest first by (created_at, id); start_time alone has only whole seconds.
    """
    return [a.action for a in reversed(list(sdk.compute.server_actions(server_id)))]


def settled(sdk: Any, server_id: str, timeout_s: float = 30) -> str:
    """The server's status once Nova has no task running on it."""
    deadline = time.monotonic() + timeout_s
    while (current := state(sdk, server_id))[1] is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"server {server_id} still busy after {timeout_s}s: {current}")
        time.sleep(0.2)
    return current[0]


@pytest.fixture(scope="module")
def desktop(minicloud: MiniCloud, activities: CloudActivities, sdk: Any) -> Iterator[Desktop]:
    ref, request = create(minicloud.cloud, "shared")
    created = run(activities.create_server, request)
    try:
        assert created.created
        run(activities.wait_server_active, WaitServerInput(ref=ref, build_timeout_s=120, poll_interval_s=0.25))
        yield Desktop(ref, created.server_id)
    finally:
        sdk.compute.delete_server(created.server_id, ignore_missing=True)


def power(activities: CloudActivities, desktop: Desktop, action: PowerAction) -> str:
    return run(activities.power_server, PowerServerInput(ref=desktop.ref, action=action, wait_timeout_s=60)).status


def test_create_puts_network_security_group_metadata_and_tags_on_the_server(desktop: Desktop, sdk: Any) -> None:
    server = sdk.compute.get_server(desktop.server_id)
    assert server.status == "ACTIVE"
    assert server.name == f"vdi-{desktop.ref.desktop_id}"
    assert set(server.tags) == {DESKPOOL_TAG, desktop_tag(desktop.ref.desktop_id)}
    assert server.metadata == {
        "deskpool_test": "minicloud",
        "deskpool_pool": "pool-it",
        "deskpool_desktop": desktop.ref.desktop_id,
        "deskpool_template_version": "3",
    }
    assert server.image.id == sdk.image.find_image(IMAGE, ignore_missing=False).id
    assert server.flavor.original_name == FLAVOR
    assert [g["name"] for g in server.security_groups] == [SECURITY_GROUP]
    (address,) = server.addresses[NETWORK]
    assert ipaddress.ip_address(address["addr"]) in ipaddress.ip_network(SUBNET_CIDR)
    # Neutron's side: the server's port is on vdi-net, bound, with the security group.
    (port,) = sdk.network.ports(device_id=desktop.server_id)
    assert port.network_id == sdk.network.find_network(NETWORK, ignore_missing=False).id
    assert port.status == "ACTIVE"
    assert port.security_group_ids == [sdk.network.find_security_group(SECURITY_GROUP, ignore_missing=False).id]


def test_wait_reports_the_address_and_finds_the_server_by_desktop_tag(
    desktop: Desktop, activities: CloudActivities, sdk: Any
) -> None:
    waited = run(activities.wait_server_active, WaitServerInput(ref=desktop.ref, poll_interval_s=0.25))
    assert (waited.server_id, waited.status) == (desktop.server_id, "ACTIVE")
    (address,) = sdk.compute.get_server(desktop.server_id).addresses[NETWORK]
    assert waited.address == address["addr"]


def test_create_again_for_the_same_desktop_returns_the_same_server(
    minicloud: MiniCloud, desktop: Desktop, activities: CloudActivities, sdk: Any
) -> None:
    """An activity retried after a crash between the create call and its record makes no second server."""
    _, request = create(minicloud.cloud, "ignored")
    request.ref = desktop.ref
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)  # only a retry can have made one
    again = retry.run(activities.create_server, request)
    assert (again.server_id, again.created) == (desktop.server_id, False)
    tagged = list(sdk.compute.servers(tags=desktop_tag(desktop.ref.desktop_id)))
    assert [s.id for s in tagged] == [desktop.server_id]


def test_stop_start_reboot_soft_and_hard(desktop: Desktop, activities: CloudActivities, sdk: Any) -> None:
    before = len(actions(sdk, desktop.server_id))
    assert power(activities, desktop, PowerAction.STOP) == "SHUTOFF"
    assert sdk.compute.get_server(desktop.server_id).power_state == 4  # Nova's SHUTDOWN
    assert power(activities, desktop, PowerAction.STOP) == "SHUTOFF"  # already there: no second stop
    assert power(activities, desktop, PowerAction.START) == "ACTIVE"
    assert sdk.compute.get_server(desktop.server_id).power_state == 1  # RUNNING
    assert power(activities, desktop, PowerAction.REBOOT_SOFT) == "ACTIVE"
    assert power(activities, desktop, PowerAction.REBOOT_HARD) == "ACTIVE"
    assert state(sdk, desktop.server_id) == ("ACTIVE", None)
    assert actions(sdk, desktop.server_id)[before:] == ["stop", "start", "reboot", "reboot"]


def test_a_409_from_an_action_right_after_another_is_retried_not_fatal(
    minicloud: MiniCloud, desktop: Desktop, activities: CloudActivities, sdk: Any
) -> None:
    """Nova answers 409 to an action on a server whose previous action is still running.

    nova-compute is frozen for the first attempt, so the earlier action is still in
    flight (deterministically): the activity must raise a retryable CloudConflict,
    and a later attempt, as Temporal would make it, must succeed.
    """
    # A stop right after a stop: "Cannot 'stop' instance while it is in task_state powering-off".
    with paused("nova-compute", minicloud.state_dir):
        sdk.compute.stop_server(desktop.server_id)
        with pytest.raises(ApplicationError) as first:
            power(activities, desktop, PowerAction.STOP)
    assert (first.value.type, first.value.non_retryable) == (CONFLICT, False)
    assert "409" in str(first.value)
    status, errors = run_retrying(
        activities.power_server, PowerServerInput(ref=desktop.ref, action=PowerAction.STOP, wait_timeout_s=60)
    )
    assert status.status == "SHUTOFF"
    assert all(e.type == CONFLICT for e in errors)

    # A reboot right after a start: "Cannot 'reboot' instance while it is in vm_state stopped".
    with paused("nova-compute", minicloud.state_dir):
        sdk.compute.start_server(desktop.server_id)
        with pytest.raises(ApplicationError) as first:
            power(activities, desktop, PowerAction.REBOOT_SOFT)
    assert (first.value.type, first.value.non_retryable) == (CONFLICT, False)
    status, errors = run_retrying(
        activities.power_server, PowerServerInput(ref=desktop.ref, action=PowerAction.REBOOT_SOFT, wait_timeout_s=60)
    )
    assert status.status == "ACTIVE"
    assert all(e.type == CONFLICT for e in errors)
    assert settled(sdk, desktop.server_id) == "ACTIVE"
    assert actions(sdk, desktop.server_id)[-3:] == ["stop", "start", "reboot"]


def test_start_right_after_a_stop_leaves_the_server_running(
    minicloud: MiniCloud, desktop: Desktop, activities: CloudActivities, sdk: Any
) -> None:
    start = PowerServerInput(ref=desktop.ref, action=PowerAction.START, wait_timeout_s=30)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The stop is accepted but not carried out while nova-compute is frozen; the START
            # activity begins meanwhile and goes on after the freeze ends.
            with paused("nova-compute", minicloud.state_dir):
                sdk.compute.stop_server(desktop.server_id)
                assert state(sdk, desktop.server_id) == ("ACTIVE", "powering-off")
                started = pool.submit(run_retrying, activities.power_server, start)
                time.sleep(1.0)
            result, _ = started.result(timeout=60)
        assert result.status == "ACTIVE"
        assert settled(sdk, desktop.server_id) == "ACTIVE"
    finally:
        # Leave the shared desktop ACTIVE for the tests after this one.
        if settled(sdk, desktop.server_id) != "ACTIVE":
            run_retrying(activities.power_server, start)


def test_rebuild_from_the_template_image(desktop: Desktop, activities: CloudActivities, sdk: Any) -> None:
    rebuilt = run(activities.rebuild_server, RebuildServerInput(ref=desktop.ref, image=IMAGE, build_timeout_s=60))
    assert rebuilt.status == "ACTIVE"
    (address,) = sdk.compute.get_server(desktop.server_id).addresses[NETWORK]
    assert rebuilt.address == address["addr"]
    assert actions(sdk, desktop.server_id)[-1] == "rebuild"
    assert state(sdk, desktop.server_id) == ("ACTIVE", None)


def test_rebuild_of_a_stopped_desktop(desktop: Desktop, activities: CloudActivities, sdk: Any) -> None:
    assert power(activities, desktop, PowerAction.STOP) == "SHUTOFF"
    try:
        rebuilt = run(activities.rebuild_server, RebuildServerInput(ref=desktop.ref, image=IMAGE, build_timeout_s=60))
        # Nova keeps a stopped server stopped through a rebuild; a reverted desktop rejoins the pool running.
        assert actions(sdk, desktop.server_id)[-2:] == ["rebuild", "start"]
        assert rebuilt.status == settled(sdk, desktop.server_id) == "ACTIVE"
    finally:
        if settled(sdk, desktop.server_id) != "ACTIVE":  # leave the shared desktop ACTIVE
            assert power(activities, desktop, PowerAction.START) == "ACTIVE"


def test_delete_waits_until_gone_and_a_second_delete_is_a_no_op(
    minicloud: MiniCloud, activities: CloudActivities, sdk: Any
) -> None:
    ref, request = create(minicloud.cloud, "delete")
    first = run(activities.create_server, request)
    try:
        # Retried while Nova is still building it (a build request, not yet an instance): still one server.
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2)
        again = retry.run(activities.create_server, request)
        assert (again.server_id, again.created) == (first.server_id, False)
        run(activities.wait_server_active, WaitServerInput(ref=ref, build_timeout_s=120, poll_interval_s=0.25))

        deleted = run(activities.delete_server, DeleteServerInput(ref=ref, wait_timeout_s=60))
        assert deleted.existed
        assert sdk.compute.find_server(first.server_id, ignore_missing=True) is None
        assert list(sdk.compute.servers(tags=desktop_tag(ref.desktop_id))) == []
        assert list(sdk.network.ports(device_id=first.server_id)) == []

        ref.server_id = first.server_id  # by id this time, as the workflow knows it after create
        assert run(activities.delete_server, DeleteServerInput(ref=ref, wait_timeout_s=60)).existed is False
    finally:
        sdk.compute.delete_server(first.server_id, ignore_missing=True)


def test_console_output_is_extracted_from_real_nova(desktop: Desktop, activities: CloudActivities) -> None:
    from workflows.activity_io import ConsoleOutputInput

    log = run(activities.console_output, ConsoleOutputInput(ref=desktop.ref, lines=10))
    assert log.output.strip()  # Nova's fake virt driver serves a console log, like a real hypervisor
