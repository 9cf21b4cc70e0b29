"""Nova server creation options through openstacksdk: addressing, boot from
volume, networks auto/none, scheduler hints, validation errors, and the
microversion negotiation that decides which fields are accepted."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from openstack import exceptions, utils
from openstack.compute.v2.server import Server
from openstack.connection import Connection

Boot = Callable[..., Server]
POLL = 0.02


def wait(conn: Connection, server: Server) -> Server:
    return conn.compute.wait_for_server(server, interval=POLL, wait=5)


def test_each_server_gets_its_own_ip(conn: Connection, boot: Boot) -> None:
    servers = [wait(conn, boot(conn, f"ip-{i}")) for i in range(3)]

    ips = {s.addresses["vdi-net"][0]["addr"] for s in servers}

    assert len(ips) == 3
    assert "10.20.0.1" not in ips  # the gateway


def test_boot_from_volume(conn: Connection, boot: Boot) -> None:
    image = conn.image.find_image("win11-golden", ignore_missing=False)
    volume_boot = [
        {
            "boot_index": 0,
            "uuid": image.id,
            "source_type": "image",
            "destination_type": "volume",
            "volume_size": 80,
            "volume_type": "ssd",
            "delete_on_termination": True,
        }
    ]

    server = wait(conn, boot(conn, "bfv", image_id=None, block_device_mapping=volume_boot))

    # Nova shows "" as the image of a volume-backed server (openstacksdk: {}).
    assert not server.image
    [volume] = server.attached_volumes
    assert volume.delete_on_termination is True
    record = next(s for s in conn.compute.get("/servers/detail").json()["servers"] if s["id"] == server.id)
    assert record["image"] == ""
    too_small = [dict(volume_boot[0], volume_size=10)]
    with pytest.raises(exceptions.BadRequestException, match="Volume is smaller than the minimum size"):
        boot(conn, "bfv-small", image_id=None, block_device_mapping=too_small)


def test_create_validation_errors(conn: Connection, boot: Boot) -> None:
    with pytest.raises(exceptions.BadRequestException, match="'networks' is a required property"):
        boot(conn, "no-net", networks=None)
    with pytest.raises(exceptions.BadRequestException, match="Invalid flavorRef"):
        boot(conn, "no-flavor", flavor_id="nope")
    with pytest.raises(exceptions.BadRequestException, match="Security group nope not found"):
        boot(conn, "no-sg", security_groups=[{"name": "nope"}])
    with pytest.raises(exceptions.BadRequestException, match="availability zone is not available"):
        boot(conn, "no-az", availability_zone="elsewhere")
    with pytest.raises(exceptions.BadRequestException, match="valid base 64"):
        boot(conn, "bad-ud", user_data="***")
    assert list(conn.compute.servers()) == []


def test_networks_auto_and_none(conn: Connection, boot: Boot) -> None:
    auto = wait(conn, boot(conn, "auto-net", networks="auto"))
    isolated = wait(conn, boot(conn, "no-net", networks="none"))

    assert list(auto.addresses) == ["vdi-net"]
    assert isolated.addresses == {}


def test_scheduler_hints_are_recorded(conn: Connection, boot: Boot, admin: httpx.Client) -> None:
    server = wait(conn, boot(conn, "hinted", scheduler_hints={"group": "sg-uuid", "different_host": []}))

    assert server.server_groups == ["sg-uuid"]
    raw = next(s for s in admin.get("/servers").json()["servers"] if s["id"] == server.id)
    assert raw["scheduler_hints"] == {"group": "sg-uuid", "different_host": []}


def test_microversions_are_negotiated_like_nova(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "mv"))

    # openstacksdk negotiates min(server max 2.90, Server class max 2.100).
    assert utils.maximum_supported_microversion(conn.compute, "2.100") == "2.90"
    latest = conn.compute.get(f"/servers/{server.id}", microversion="2.90")
    old = conn.compute.get(f"/servers/{server.id}", microversion="2.1")
    too_new = conn.compute.get("/servers", microversion="2.999")

    assert latest.headers["OpenStack-API-Version"] == "compute 2.90"
    assert latest.json()["server"]["flavor"]["original_name"] == "vdi.small"
    assert set(old.json()["server"]["flavor"]) == {"id", "links"}
    assert "tags" not in old.json()["server"]
    assert too_new.status_code == 406
    old_body = {"server": {"name": "x", "imageRef": server.image.id, "flavorRef": "x", "tags": ["a"]}}
    rejected = conn.compute.post("/servers", json=old_body, microversion="2.40")
    assert rejected.status_code == 400
    assert "'tags' was unexpected" in rejected.json()["badRequest"]["message"]
