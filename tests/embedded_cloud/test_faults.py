"""Fault injection and limits, switched at run time through /_admin/faults,
as seen by openstacksdk; plus /_admin/stats counters."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection

from tools.embedded_cloud import RunningCloud

Boot = Callable[..., Server]
SetFaults = Callable[..., dict[str, Any]]
POLL = 0.02


def wait(conn: Connection, server: Server, wait_s: float = 5) -> Server:
    return conn.compute.wait_for_server(server, interval=POLL, wait=wait_s)


def test_create_error_rate_puts_servers_in_error(
    conn: Connection, admin: httpx.Client, boot: Boot, set_faults: SetFaults
) -> None:
    set_faults(admin, create_error_rate=1.0)
    server = boot(conn, "doomed")

    with pytest.raises(exceptions.ResourceFailure):
        wait(conn, server)

    failed = conn.compute.get_server(server.id)
    assert failed.status == "ERROR"
    assert failed.vm_state == "error"
    assert "No valid host was found" in failed.fault["message"]
    assert admin.get("/stats").json()["faults_injected"]["create_error"] == 1
    # An ERROR server can still be deleted.
    conn.compute.delete_server(failed)
    conn.compute.wait_for_delete(failed, interval=POLL, wait=5)


def test_stuck_build_rate_never_finishes(
    conn: Connection, admin: httpx.Client, boot: Boot, set_faults: SetFaults
) -> None:
    set_faults(admin, stuck_build_rate=1.0)
    server = boot(conn, "stuck")

    with pytest.raises(exceptions.ResourceTimeout):
        wait(conn, server, wait_s=0.4)

    assert conn.compute.get_server(server.id).status == "BUILD"
    assert admin.get("/stats").json()["builds_in_flight"] == 1


@pytest.mark.parametrize(
    ("fault", "status", "exception"),
    [
        ("conflict_rate", 409, exceptions.ConflictException),
        ("throttle_rate", 429, exceptions.HttpException),
        ("unavailable_rate", 503, exceptions.HttpException),
    ],
)
def test_compute_error_rates(
    conn: Connection,
    admin: httpx.Client,
    set_faults: SetFaults,
    fault: str,
    status: int,
    exception: type[exceptions.HttpException],
) -> None:
    list(conn.compute.flavors())  # authenticate and discover before the fault
    set_faults(admin, **{fault: 1.0, "retry_after_seconds": 7})

    with pytest.raises(exception) as caught:
        list(conn.compute.servers())

    assert caught.value.status_code == status
    if status == 429:
        assert caught.value.response is not None
        assert caught.value.response.headers["Retry-After"] == "7"
    # Only compute is affected.
    assert conn.image.find_image("win11-golden", ignore_missing=False).name == "win11-golden"
    set_faults(admin, **{fault: 0.0})
    assert list(conn.compute.servers()) == []


def test_outage_fails_everything_until_switched_off(
    cloud: RunningCloud,
    conn: Connection,
    admin: httpx.Client,
    set_faults: SetFaults,
    connect: Callable[..., Connection],
) -> None:
    # Discover compute first: during an outage discovery fails too, which
    # openstacksdk reports as NotSupported rather than an HTTP error.
    list(conn.compute.flavors())
    set_faults(admin, outage=True)

    with pytest.raises(exceptions.HttpException) as caught:
        list(conn.compute.servers())
    assert caught.value.status_code == 503
    # (Not conn.image: openstacksdk retries 503 from Glance 5 times, ~15 s.)
    assert conn.network.get("/networks").status_code == 503
    with pytest.raises(exceptions.SDKException, match="503"):
        connect(cloud).authorize()  # even Keystone is down

    set_faults(admin, outage=False)
    assert list(conn.compute.servers()) == []
    assert admin.get("/stats").json()["faults_injected"]["outage"] >= 3


def test_instances_quota_answers_403_like_nova(
    conn: Connection, admin: httpx.Client, boot: Boot, set_faults: SetFaults
) -> None:
    set_faults(admin, instances_quota=2)
    first = boot(conn, "q1")
    boot(conn, "q2")

    with pytest.raises(
        exceptions.ForbiddenException, match="Quota exceeded for instances: Requested 1, but already used 2 of 2"
    ):
        boot(conn, "q3")
    assert conn.compute.get_limits().absolute.instances == 2
    assert conn.compute.get_limits().absolute.instances_used == 2

    conn.compute.delete_server(first)
    conn.compute.wait_for_delete(first, interval=POLL, wait=5)
    assert boot(conn, "q3").id


def test_builds_in_flight_limit(
    manual_conn: Connection, manual_admin: httpx.Client, boot: Boot, set_faults: SetFaults, clock: Any
) -> None:
    set_faults(manual_admin, max_builds_in_flight=1)
    boot(manual_conn, "b1")

    with pytest.raises(exceptions.ForbiddenException, match="Quota exceeded for concurrent builds"):
        boot(manual_conn, "b2")
    set_faults(manual_admin, build_limit_status=429)
    with pytest.raises(exceptions.HttpException) as caught:
        boot(manual_conn, "b2")
    assert caught.value.status_code == 429

    clock.advance(2)  # b1 is ACTIVE now
    boot(manual_conn, "b2")
    stats = manual_admin.get("/stats").json()
    assert stats["peak_concurrent_builds"] == 1
    assert stats["faults_injected"]["build_limit"] == 2
    assert stats["servers_by_status"] == {"ACTIVE": 1, "BUILD": 1}


def final_status(conn: Connection, server: Server) -> str:
    try:
        return str(wait(conn, server).status)
    except exceptions.ResourceFailure:
        return "ERROR"


def test_fault_decisions_are_reproducible_per_seed(
    conn: Connection, admin: httpx.Client, boot: Boot, set_faults: SetFaults
) -> None:
    def outcomes(prefix: str) -> list[str]:
        servers = [boot(conn, f"{prefix}-{i}") for i in range(8)]
        return [final_status(conn, s) for s in servers]

    set_faults(admin, create_error_rate=0.5, random_seed=11)
    first = outcomes("a")
    set_faults(admin, random_seed=11)
    second = outcomes("b")
    set_faults(admin, random_seed=12)
    third = outcomes("c")

    assert first == second
    assert set(first) == {"ACTIVE", "ERROR"}
    assert third != first


def test_admin_rejects_invalid_faults_and_resets(admin: httpx.Client, set_faults: SetFaults) -> None:
    assert admin.post("/faults", json={"create_error_rate": 2}).status_code == 400
    assert admin.post("/faults", json={"no_such_fault": 1}).status_code == 400
    set_faults(admin, outage=True, instances_quota=5)

    reset = admin.delete("/faults").json()

    assert reset["outage"] is False
    assert reset["instances_quota"] is None
    assert admin.get("/faults").json() == reset


def test_delays_can_be_changed_at_run_time(conn: Connection, admin: httpx.Client, boot: Boot) -> None:
    assert admin.post("/delays", json={"build": 30}).json()["build"] == 30
    server = boot(conn, "slow")

    with pytest.raises(exceptions.ResourceTimeout):
        wait(conn, server, wait_s=0.3)
    assert admin.post("/delays", json={"build": -1}).status_code == 400


def test_stats_count_operations_and_servers(
    conn: Connection, admin: httpx.Client, boot: Boot, set_faults: SetFaults
) -> None:
    admin.post("/stats/reset")
    keep = wait(conn, boot(conn, "keep"))
    gone = wait(conn, boot(conn, "gone"))
    conn.compute.stop_server(keep)
    conn.compute.delete_server(gone)
    with pytest.raises(exceptions.ConflictException):
        conn.compute.stop_server(keep)  # already powering off
    conn.compute.wait_for_server(keep, status="SHUTOFF", interval=POLL, wait=5)
    conn.compute.wait_for_delete(gone, interval=POLL, wait=5)

    stats = admin.get("/stats").json()

    assert stats["creates"] == 2
    assert stats["deletes"] == 1
    assert stats["requests"]["compute.servers.create"] == 2
    assert stats["requests"]["compute.servers.delete"] == 1
    assert stats["requests"]["compute.servers.action"] == 2
    assert stats["server_actions"] == {"os-stop": 2}
    assert stats["servers_by_status"] == {"SHUTOFF": 1}
    assert stats["servers_total"] == 1
    assert stats["peak_concurrent_builds"] == 1
    assert stats["peak_requests_per_second"] >= 5
    # The busiest second, by client (the User-Agent's first word) and operation, adds up to the peak.
    assert sum(stats["peak_second"].values()) == stats["peak_requests_per_second"]
    assert all(key.startswith("openstacksdk ") for key in stats["peak_second"]), stats["peak_second"]
    assert stats["peak_requests_per_second_by_client"] == {"openstacksdk": stats["peak_requests_per_second"]}
    assert stats["responses_by_status"]["409"] == 1
    assert stats["requests_total"] == sum(stats["requests"].values())


def test_stats_record_when_each_create_arrived(conn: Connection, admin: httpx.Client, boot: Boot) -> None:
    before = time.time()
    boot(conn, "first")
    boot(conn, "second")
    times = admin.get("/stats/creates").json()["create_times"]
    assert len(times) == 2
    assert before <= times[0] <= times[1] <= time.time()
