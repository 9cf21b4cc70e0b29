"""Glance, Neutron and the read-only Nova resources (flavors, image proxy,
limits, zones), looked up the way a driver resolves names to IDs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection

from tools.embedded_cloud import CloudConfig, CloudHost

Boot = Callable[..., Server]


def test_images_by_name_and_id(conn: Connection) -> None:
    images = {i.name: i for i in conn.image.images()}

    assert set(images) == {"win11-golden", "ubuntu-desktop"}
    win = conn.image.find_image("win11-golden", ignore_missing=False)
    assert (win.status, win.visibility, win.min_disk) == ("active", "public", 64)
    assert win.size == 24 * 1024**3
    assert conn.image.get_image(win.id).name == "win11-golden"
    assert conn.image.find_image(win.id, ignore_missing=False).name == "win11-golden"
    assert conn.image.find_image("no-such-image") is None
    with pytest.raises(exceptions.NotFoundException):
        conn.image.get_image("5f1d5a4e-0000-4000-8000-000000000000")
    # The deprecated compute image proxy (no microversion) finds it too.
    assert conn.compute.find_image("win11-golden", ignore_missing=False).id == win.id


def test_flavors_limits_and_zones(conn: Connection) -> None:
    flavors = {f.name: f for f in conn.compute.flavors()}

    assert list(flavors) == ["vdi.small", "vdi.medium", "vdi.large"]
    assert (flavors["vdi.medium"].vcpus, flavors["vdi.medium"].ram, flavors["vdi.medium"].disk) == (4, 8192, 80)
    assert conn.compute.get_flavor(flavors["vdi.large"].id).name == "vdi.large"
    assert conn.compute.find_flavor("vdi.large", ignore_missing=False).id == flavors["vdi.large"].id
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.get_flavor("missing")
    limits = conn.compute.get_limits().absolute
    assert (limits.instances, limits.instances_used) == (-1, 0)
    assert [z.name for z in conn.compute.availability_zones()] == ["nova"]


def test_networks_subnets_and_ports(conn: Connection, boot: Boot) -> None:
    network = conn.network.find_network("vdi-net", ignore_missing=False)
    [subnet] = conn.network.subnets(network_id=network.id)

    assert network.subnet_ids == [subnet.id]
    assert (subnet.cidr, subnet.gateway_ip) == ("10.20.0.0/16", "10.20.0.1")
    assert conn.network.get_network(network.id).name == "vdi-net"
    assert conn.network.find_network("no-such-net") is None
    server = conn.compute.wait_for_server(boot(conn, "ported"), interval=0.02, wait=5)
    [port] = conn.network.ports(device_id=server.id)
    assert port.fixed_ips[0]["ip_address"] == server.addresses["vdi-net"][0]["addr"]
    assert port.network_id == network.id


def test_security_groups_find_create_delete(conn: Connection, boot: Boot) -> None:
    rdp = conn.network.find_security_group("vdi-rdp", ignore_missing=False)
    assert any(r["port_range_min"] == 3389 and r["direction"] == "ingress" for r in rdp.security_group_rules)

    created = conn.network.create_security_group(name="pool-b-rdp", description="Pool B")

    assert conn.network.find_security_group("pool-b-rdp", ignore_missing=False).id == created.id
    assert {r["direction"] for r in created.security_group_rules} == {"egress"}
    server = boot(conn, "sg-user", security_groups=[{"name": "pool-b-rdp"}])
    with pytest.raises(exceptions.ConflictException):
        conn.network.delete_security_group(created)  # in use
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.02, wait=5)
    conn.network.delete_security_group(created)
    assert conn.network.find_security_group("pool-b-rdp") is None
    with pytest.raises(exceptions.ConflictException):
        conn.network.delete_security_group(rdp)  # seeded groups stay


def test_seed_data_is_configurable(
    cloud_host: CloudHost,
    make_config: Callable[..., CloudConfig],
    tmp_path: Path,
    connect: Callable[..., Connection],
    boot: Boot,
) -> None:
    seed: dict[str, Any] = {
        "region": "RegionTwo",
        "availability_zones": ["az-1", "az-2"],
        "projects": ["vdi"],
        "users": [{"name": "svc", "password": "s3cret", "project": "vdi", "roles": ["member"]}],
        "application_credentials": [],
        "images": [{"name": "win11-golden", "min_disk_gb": 60}],
        "flavors": [
            {"name": "vdi.small", "vcpus": 2, "ram_mb": 4096, "disk_gb": 64},
            {"name": "vdi.tiny", "vcpus": 1, "ram_mb": 1024, "disk_gb": 20},
        ],
        "networks": [{"name": "vdi-net", "cidr": "192.168.50.0/24"}],
        "security_groups": [{"name": "vdi-rdp", "ingress_tcp_ports": [3389]}],
    }
    with cloud_host.serve(make_config(tmp_path / "custom", seed=seed)) as custom:
        conn = connect(custom)
        assert conn.config.get_region_name() == "RegionTwo"
        server = conn.compute.wait_for_server(boot(conn, "custom", availability_zone="az-2"), interval=0.02, wait=5)
        assert server.availability_zone == "az-2"
        assert server.addresses["vdi-net"][0]["addr"] == "192.168.50.2"
        with pytest.raises(exceptions.BadRequestException, match="Flavor's disk is too small"):
            boot(conn, "tiny", flavor_id=conn.compute.find_flavor("vdi.tiny", ignore_missing=False).id)
        # A member (not admin) may not list other projects' servers.
        with pytest.raises(exceptions.ForbiddenException):
            list(conn.compute.servers(all_projects=True))


def test_seed_references_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown project 'missing'"):
        CloudConfig.model_validate({"seed": {"users": [{"name": "u", "password": "p", "project": "missing"}]}})
    with pytest.raises(ValueError, match="unknown user 'ghost'"):
        CloudConfig.model_validate(
            {"seed": {"application_credentials": [{"id": "a", "name": "a", "secret": "s", "user": "ghost"}]}}
        )
