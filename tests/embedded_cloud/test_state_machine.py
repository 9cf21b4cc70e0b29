"""Exact state sequences, stepped with a manual clock (default delays:
build 2 s, stop/start/reboot/delete 0.5 s, rebuild 1 s), plus token expiry
and the global rate limit which are also driven by the cloud's clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as IdentityV3

Keystone = Callable[[Connection], IdentityV3]
Boot = Callable[..., Server]


def observe(conn: Connection, server: Server) -> tuple[str, str, str | None, int]:
    current = conn.compute.get_server(server.id)
    return current.status, current.vm_state, current.task_state, current.power_state


def test_build_completes_exactly_after_build_delay(manual_conn: Connection, boot: Boot, clock: Any) -> None:
    server = boot(manual_conn, "slow-build")

    assert observe(manual_conn, server) == ("BUILD", "building", "spawning", 0)
    clock.advance(1.99)
    assert observe(manual_conn, server)[0] == "BUILD"
    clock.advance(0.02)
    assert observe(manual_conn, server) == ("ACTIVE", "active", None, 1)
    fetched = manual_conn.compute.get_server(server.id)
    assert fetched.launched_at is not None
    assert fetched.updated_at >= fetched.created_at


def test_stop_start_show_nova_intermediate_states(manual_conn: Connection, boot: Boot, clock: Any) -> None:
    server = boot(manual_conn, "power")
    clock.advance(2)

    manual_conn.compute.stop_server(server)
    # Nova keeps status ACTIVE while powering off; only task_state changes.
    assert observe(manual_conn, server) == ("ACTIVE", "active", "powering-off", 1)
    # vm_state is checked first (as Nova does), then task_state.
    with pytest.raises(exceptions.ConflictException, match=r"'start' instance .* vm_state active"):
        manual_conn.compute.start_server(server)
    with pytest.raises(exceptions.ConflictException, match=r"'stop' instance .* task_state powering-off"):
        manual_conn.compute.stop_server(server)
    clock.advance(0.5)
    assert observe(manual_conn, server) == ("SHUTOFF", "stopped", None, 4)

    manual_conn.compute.start_server(server)
    assert observe(manual_conn, server) == ("SHUTOFF", "stopped", "powering-on", 4)
    clock.advance(0.5)
    assert observe(manual_conn, server)[0] == "ACTIVE"


def test_reboots_and_rebuild_pass_through_their_statuses(manual_conn: Connection, boot: Boot, clock: Any) -> None:
    server = boot(manual_conn, "cycle")
    clock.advance(2)

    manual_conn.compute.reboot_server(server, "SOFT")
    assert observe(manual_conn, server)[:3] == ("REBOOT", "active", "rebooting")
    # A hard reboot may interrupt a soft one, as in Nova.
    manual_conn.compute.reboot_server(server, "HARD")
    assert observe(manual_conn, server)[:3] == ("HARD_REBOOT", "active", "rebooting_hard")
    clock.advance(0.5)
    assert observe(manual_conn, server)[0] == "ACTIVE"

    manual_conn.compute.stop_server(server)
    clock.advance(0.5)
    ubuntu = manual_conn.image.find_image("ubuntu-desktop", ignore_missing=False)
    manual_conn.compute.rebuild_server(server, image=ubuntu.id)
    assert observe(manual_conn, server)[:3] == ("REBUILD", "stopped", "rebuilding")
    clock.advance(1)
    # Nova leaves a server that was stopped before the rebuild stopped.
    assert observe(manual_conn, server)[0] == "SHUTOFF"


def test_delete_keeps_server_visible_until_delete_delay(manual_conn: Connection, boot: Boot, clock: Any) -> None:
    server = boot(manual_conn, "going")
    clock.advance(2)

    manual_conn.compute.delete_server(server)
    assert observe(manual_conn, server)[:3] == ("ACTIVE", "active", "deleting")
    manual_conn.compute.delete_server(server)  # deleting again is accepted
    clock.advance(0.49)
    assert [s.name for s in manual_conn.compute.servers()] == ["going"]
    clock.advance(0.02)
    with pytest.raises(exceptions.NotFoundException):
        manual_conn.compute.get_server(server.id)
    assert list(manual_conn.compute.servers()) == []


def test_server_deleted_while_building_never_becomes_active(manual_conn: Connection, boot: Boot, clock: Any) -> None:
    server = boot(manual_conn, "short-lived")

    manual_conn.compute.delete_server(server)
    assert observe(manual_conn, server)[:3] == ("BUILD", "building", "deleting")
    clock.advance(0.5)

    with pytest.raises(exceptions.NotFoundException):
        manual_conn.compute.get_server(server.id)


def test_expired_token_is_refreshed_by_keystoneauth(manual_conn: Connection, clock: Any, keystone: Keystone) -> None:
    first = manual_conn.authorize()
    assert keystone(manual_conn).check_token(first)

    clock.advance(3601)  # past the 1 h token lifetime, on the cloud's clock

    # The cloud answers 401; keystoneauth re-authenticates and retries.
    assert [f.name for f in manual_conn.compute.flavors()][:1] == ["vdi.small"]
    second = manual_conn.authorize()
    assert second != first
    assert keystone(manual_conn).check_token(first) is False


def test_global_rate_limit_answers_429_with_retry_after(
    manual_conn: Connection, manual_admin: httpx.Client, clock: Any
) -> None:
    list(manual_conn.compute.flavors())  # authenticate before limiting
    response = manual_admin.post("/faults", json={"max_requests_per_second": 3})
    assert response.status_code == 200

    accepted = [manual_conn.compute.get("/flavors").status_code for _ in range(3)]
    with pytest.raises(exceptions.HttpException) as caught:
        list(manual_conn.compute.flavors())

    assert accepted == [200, 200, 200]
    assert caught.value.status_code == 429
    assert caught.value.response is not None
    assert caught.value.response.headers["Retry-After"] == "1"
    # The limit is global (image too), but version discovery is exempt, so
    # openstacksdk's first image call still finds the API and gets the 429.
    assert manual_conn.image.get("/images").status_code == 429
    clock.advance(1.0)
    assert manual_conn.image.get("/images").status_code == 200
    stats = manual_admin.get("/stats").json()
    assert stats["faults_injected"]["rate_limited"] == 2
    assert stats["responses_by_status"]["429"] == 2
