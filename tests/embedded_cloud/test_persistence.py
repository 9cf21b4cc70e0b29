"""Restarts: servers, created projects and security groups live in the data
directory; timestamps carry pending transitions across a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as IdentityV3

from tools.embedded_cloud import CloudConfig, CloudHost, run_in_thread

Keystone = Callable[[Connection], IdentityV3]
Boot = Callable[..., Server]
POLL = 0.02


def wait(conn: Connection, server: Server, status: str = "ACTIVE") -> Server:
    return conn.compute.wait_for_server(server, status=status, interval=POLL, wait=5)


def ip_of(server: Server) -> str:
    return str(server.addresses["vdi-net"][0]["addr"])


def test_process_restart_keeps_state_and_client_tokens(
    make_config: Callable[..., CloudConfig],
    data_dir: Path,
    connect: Callable[..., Connection],
    boot: Boot,
    keystone: Keystone,
) -> None:
    config = make_config(data_dir)
    with run_in_thread(config) as first:
        port = first.port
        conn = connect(first)
        stopped = wait(conn, boot(conn, "stays-off"))
        conn.compute.stop_server(stopped)
        wait(conn, stopped, "SHUTOFF")
        project = keystone(conn).create_project(name="persisted", domain_id="default")
        group = conn.network.create_security_group(name="persisted-sg", description="kept")
        httpx.post(f"{first.admin_url}/delays", json={"build": 0.5})
        building = boot(conn, "was-building")
        assert conn.compute.get_server(building.id).status == "BUILD"
        token = conn.authorize()
    # The server process is gone while "was-building" builds; start it again.
    with run_in_thread(config, port=port) as second:
        # The same openstacksdk connection (cached token, endpoints) goes on.
        assert conn.compute.get_server(stopped.id).status == "SHUTOFF"
        assert conn.authorize() == token
        assert keystone(conn).check_token(token) is True
        resumed = wait(conn, building)
        assert resumed.status == "ACTIVE"
        assert keystone(conn).get_project(project.id).name == "persisted"
        kept = conn.network.find_security_group("persisted-sg", ignore_missing=False)
        assert (kept.id, kept.description) == (group.id, "kept")
        fresh = wait(conn, boot(conn, "after-restart"))
        assert ip_of(fresh) not in {ip_of(stopped), ip_of(resumed)}
        assert sorted(s.name for s in conn.compute.servers()) == ["after-restart", "stays-off", "was-building"]
        # Counters are per process.
        assert httpx.get(f"{second.admin_url}/stats").json()["creates"] == 1


def test_delete_in_progress_completes_after_restart(
    cloud_host: CloudHost,
    make_config: Callable[..., CloudConfig],
    data_dir: Path,
    connect: Callable[..., Connection],
    boot: Boot,
) -> None:
    config = make_config(data_dir)
    with cloud_host.serve(config) as first:
        conn = connect(first)
        server = wait(conn, boot(conn, "deleting"))
        httpx.post(f"{first.admin_url}/delays", json={"delete": 0.3})
        conn.compute.delete_server(server)
        assert conn.compute.get_server(server.id).task_state == "deleting"

    with cloud_host.serve(config):
        assert conn.compute.get_server(server.id).task_state == "deleting"
        conn.compute.wait_for_delete(server, interval=POLL, wait=5)
        with pytest.raises(exceptions.NotFoundException):
            conn.compute.get_server(server.id)


def test_stuck_build_stays_stuck_after_restart(
    cloud_host: CloudHost,
    make_config: Callable[..., CloudConfig],
    data_dir: Path,
    connect: Callable[..., Connection],
    boot: Boot,
) -> None:
    config = make_config(data_dir)
    with cloud_host.serve(config) as first:
        conn = connect(first)
        httpx.post(f"{first.admin_url}/faults", json={"stuck_build_rate": 1.0})
        server = boot(conn, "stuck")

    with cloud_host.serve(config):  # faults are back to the start config
        assert conn.compute.get_server(server.id).status == "BUILD"
        assert wait(conn, boot(conn, "healthy")).status == "ACTIVE"
        assert conn.compute.get_server(server.id).status == "BUILD"


def test_without_data_dir_nothing_survives(
    cloud_host: CloudHost, make_config: Callable[..., CloudConfig], connect: Callable[..., Connection], boot: Boot
) -> None:
    config = make_config(None)
    with cloud_host.serve(config) as first:
        conn = connect(first)
        boot(conn, "ephemeral")
        assert len(list(conn.compute.servers())) == 1

    with cloud_host.serve(config) as second:
        assert list(connect(second).compute.servers()) == []
