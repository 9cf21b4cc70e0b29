"""Nova emulation driven through openstacksdk like deskpool's driver does:
create, wait, list/filter, power actions, rebuild, consoles, tags, metadata,
delete. Real time with 0.05 s delays."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection

from tools.embedded_cloud import RunningCloud

Boot = Callable[..., Server]
POLL = 0.02


def wait(conn: Connection, server: Server, status: str = "ACTIVE") -> Server:
    return conn.compute.wait_for_server(server, status=status, interval=POLL, wait=5)


def test_create_wait_and_inspect_server(conn: Connection, boot: Boot) -> None:
    image = conn.image.find_image("win11-golden", ignore_missing=False)
    user_data = base64.b64encode(b"#cloud-config\nhostname: desk-1\n").decode()
    created = boot(conn, "desk-1", availability_zone="nova", user_data=user_data)
    assert created.status is None or created.status == "BUILD"

    server = wait(conn, created)

    assert server.status == "ACTIVE"
    assert server.vm_state == "active"
    assert server.power_state == 1
    assert server.task_state is None
    assert server.availability_zone == "nova"
    assert server.image.id == image.id
    assert server.flavor.original_name == "vdi.small"
    assert server.flavor.vcpus == 2
    assert server.metadata == {"deskpool:pool": "pool-a"}
    assert sorted(server.tags) == ["deskpool", "pool:pool-a"]
    assert server.user_data == user_data
    assert server.security_groups == [{"name": "vdi-rdp"}]
    [address] = server.addresses["vdi-net"]
    assert ipaddress.IPv4Address(address["addr"]) in ipaddress.IPv4Network("10.20.0.0/16")
    assert address["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e:")
    created_at = datetime.fromisoformat(server.created_at.replace("Z", "+00:00"))
    updated_at = datetime.fromisoformat(server.updated_at.replace("Z", "+00:00"))
    assert updated_at >= created_at
    assert server.launched_at is not None
    assert server.compute_host is not None
    assert conn.compute.get_server(server.id).name == "desk-1"


def test_list_by_tag_name_and_status(conn: Connection, boot: Boot) -> None:
    a1 = boot(conn, "pool-a-1")
    a2 = boot(conn, "pool-a-2")
    b1 = boot(conn, "pool-b-1", tags=["deskpool", "pool:pool-b"], metadata={})
    for server in (a1, a2, b1):
        wait(conn, server)

    def names(**filters: Any) -> list[str]:
        return sorted(s.name for s in conn.compute.servers(**filters))

    assert names(tags="pool:pool-a") == ["pool-a-1", "pool-a-2"]
    assert names(tags="deskpool,pool:pool-b") == ["pool-b-1"]
    assert names(any_tags="pool:pool-b,nothing") == ["pool-b-1"]
    assert names(not_tags="pool:pool-a") == ["pool-b-1"]
    # Nova's name filter is an unanchored regular expression.
    assert names(name="^pool-a-") == ["pool-a-1", "pool-a-2"]
    assert names(name="b-1") == ["pool-b-1"]
    assert names(status="ACTIVE") == ["pool-a-1", "pool-a-2", "pool-b-1"]
    assert names(status="SHUTOFF") == []
    assert names(changes_since="2000-01-01T00:00:00Z") == ["pool-a-1", "pool-a-2", "pool-b-1"]
    assert names(changes_since="2999-01-01T00:00:00Z") == []
    assert conn.compute.find_server("pool-a-2", ignore_missing=False).id == a2.id
    # Listing order is Nova's: newest first.
    assert [s.name for s in conn.compute.servers()] == ["pool-b-1", "pool-a-2", "pool-a-1"]


def test_listing_is_paged_like_nova(conn: Connection, boot: Boot) -> None:
    for i in range(5):
        boot(conn, f"page-{i}")

    first_page = conn.compute.get("/servers", params={"limit": 2}).json()

    assert len(first_page["servers"]) == 2
    assert first_page["servers_links"][0]["rel"] == "next"
    # openstacksdk follows the "next" links transparently.
    assert len(list(conn.compute.servers(details=False, limit=2))) == 5


def test_stop_start_reboot_and_conflicts(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "power"))

    with pytest.raises(exceptions.ConflictException, match=r"Cannot 'start' instance .* vm_state active"):
        conn.compute.start_server(server)

    conn.compute.stop_server(server)
    assert wait(conn, server, "SHUTOFF").power_state == 4
    with pytest.raises(exceptions.ConflictException, match=r"Cannot 'stop' instance .* vm_state stopped"):
        conn.compute.stop_server(server)
    with pytest.raises(exceptions.ConflictException, match=r"Cannot 'reboot' instance .* vm_state stopped"):
        conn.compute.reboot_server(server, "SOFT")

    conn.compute.start_server(server)
    assert wait(conn, server).power_state == 1

    conn.compute.reboot_server(server, "SOFT")
    assert wait(conn, server).status == "ACTIVE"
    conn.compute.reboot_server(server, "HARD")
    assert wait(conn, server).status == "ACTIVE"
    with pytest.raises(exceptions.BadRequestException):
        conn.compute.reboot_server(server, "SIDEWAYS")


def test_actions_on_building_server_conflict(manual_conn: Connection, boot: Boot) -> None:
    server = boot(manual_conn, "still-building")  # manual clock: builds forever

    with pytest.raises(exceptions.ConflictException, match="while it is in vm_state building"):
        manual_conn.compute.stop_server(server)
    with pytest.raises(exceptions.ConflictException, match="vm_state building"):
        manual_conn.compute.add_tag_to_server(server, "late")
    with pytest.raises(exceptions.ConflictException, match="vm_state building"):
        manual_conn.compute.set_server_metadata(server, late="yes")
    with pytest.raises(exceptions.ConflictException, match="not ready"):
        manual_conn.compute.create_server_remote_console(server, protocol="vnc", type="novnc")
    with pytest.raises(exceptions.ConflictException, match="vm_state building"):
        manual_conn.compute.get_server_console_output(server)


def test_rebuild_switches_image(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "rebuild-me"))
    ubuntu = conn.image.find_image("ubuntu-desktop", ignore_missing=False)

    conn.compute.rebuild_server(server, image=ubuntu.id, name="rebuilt", metadata={"gen": "2"})
    rebuilt = wait(conn, server)

    assert rebuilt.image.id == ubuntu.id
    assert rebuilt.name == "rebuilt"
    assert rebuilt.metadata == {"gen": "2"}
    assert "Generation 1" in conn.compute.get_server_console_output(server)["output"]
    with pytest.raises(exceptions.BadRequestException, match="could not be found"):
        conn.compute.rebuild_server(server, image="no-such-image")


def test_console_output_and_remote_consoles(conn: Connection, boot: Boot, cloud: RunningCloud) -> None:
    server = wait(conn, boot(conn, "console-desk"))
    ip = server.addresses["vdi-net"][0]["addr"]

    output = conn.compute.get_server_console_output(server)["output"]
    last_two = conn.compute.get_server_console_output(server, length=2)["output"]
    console = conn.compute.create_server_remote_console(server, protocol="vnc", type="novnc")
    legacy = conn.compute.get_server_console_url(server, "spice-html5")

    assert "console-desk" in output and ip in output
    assert len(last_two.splitlines()) == 2
    assert console.url.startswith(f"{cloud.base_url}/_console/novnc.html?token=")
    assert console.protocol == "vnc"
    page = httpx.get(console.url)
    assert page.status_code == 200 and "console-desk" in page.text
    assert legacy is not None
    assert legacy["type"] == "spice-html5"
    assert httpx.get(legacy["url"]).status_code == 200
    assert httpx.get(f"{cloud.base_url}/_console/novnc.html?token=forged").status_code == 404


def test_tags_endpoints(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "tagged"))

    conn.compute.add_tag_to_server(server, "assigned:alice")
    conn.compute.remove_tag_from_server(server, "pool:pool-a")

    assert sorted(conn.compute.get_server(server).tags) == ["assigned:alice", "deskpool"]
    assert server.fetch_tags(conn.compute).tags == ["deskpool", "assigned:alice"]
    server.check_tag(conn.compute, "deskpool")
    with pytest.raises(exceptions.NotFoundException):
        server.check_tag(conn.compute, "pool:pool-a")
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.remove_tag_from_server(server, "never-there")
    with pytest.raises(exceptions.BadRequestException):
        server.set_tags(conn.compute, ["bad/tag"])
    server.set_tags(conn.compute, ["only"])
    assert conn.compute.get_server(server).tags == ["only"]
    conn.compute.remove_tags_from_server(server)
    assert conn.compute.get_server(server).tags == []


def test_metadata_endpoints(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "meta"))

    conn.compute.set_server_metadata(server, assigned="alice", session="s-1")
    conn.compute.delete_server_metadata(server, ["session"])

    expected = {"deskpool:pool": "pool-a", "assigned": "alice"}
    assert conn.compute.fetch_server_metadata(server).metadata == expected
    assert conn.compute.get_server(server).metadata == expected
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.delete_server_metadata(server, ["session"])
    assert conn.compute.get(f"/servers/{server.id}/metadata/assigned").json() == {"meta": {"assigned": "alice"}}


def test_delete_and_wait_for_delete(conn: Connection, boot: Boot) -> None:
    server = wait(conn, boot(conn, "doomed"))
    ip = server.addresses["vdi-net"][0]["addr"]

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=POLL, wait=5)

    with pytest.raises(exceptions.NotFoundException, match="could not be found"):
        conn.compute.get_server(server.id)
    assert conn.compute.find_server("doomed") is None
    assert list(conn.compute.servers()) == []
    # The freed address is handed out again (lowest free first).
    assert wait(conn, boot(conn, "next")).addresses["vdi-net"][0]["addr"] == ip
