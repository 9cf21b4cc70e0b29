"""JSON documents of the compute API, shaped by the negotiated microversion.

openstacksdk negotiates the highest version both sides support (2.90 with
the default config), so the 2.47+ embedded flavor and 2.26+ tags are what it
normally sees; older shapes are kept for clients that pin a microversion.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from tools.embedded_cloud import lifecycle
from tools.embedded_cloud.catalog import SEED_TIMESTAMP, Flavor, Image
from tools.embedded_cloud.microversion import Microversion
from tools.embedded_cloud.records import ServerRecord
from tools.embedded_cloud.state import CloudState

FAKE_HOSTS = ("compute-1", "compute-2", "compute-3", "compute-4")


def _links(base: str, kind: str, item_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/compute/v2.1/{kind}/{item_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/{kind}/{item_id}"},
    ]


def _usage_time(ts: float | None) -> str | None:
    # OS-SRV-USG timestamps have microseconds and no zone suffix in Nova.
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def host_of(server: ServerRecord) -> str | None:
    if server.vm_state == "building" or (server.vm_state == "error" and not server.launched_at):
        return None  # not scheduled yet / no valid host
    return FAKE_HOSTS[int(server.id.replace("-", ""), 16) % len(FAKE_HOSTS)]


def flavor_view(flavor: Flavor, mv: Microversion, base: str) -> dict[str, Any]:
    seed = flavor.seed
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": seed.name,
        "ram": seed.ram_mb,
        "vcpus": seed.vcpus,
        "disk": seed.disk_gb,
        "OS-FLV-EXT-DATA:ephemeral": seed.ephemeral_gb,
        # Nova returned "" for no swap until 2.75.
        "swap": seed.swap_mb or ("" if mv < (2, 75) else 0),
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": True,
        "OS-FLV-DISABLED:disabled": False,
        "links": _links(base, "flavors", flavor.id),
    }
    if mv >= (2, 55):
        body["description"] = None
    if mv >= (2, 61):
        body["extra_specs"] = dict(seed.extra_specs)
    return body


def nova_image_view(image: Image, base: str) -> dict[str, Any]:
    """The deprecated /images proxy (only below microversion 2.36)."""
    return {
        "id": image.id,
        "name": image.seed.name,
        "status": "ACTIVE",
        "progress": 100,
        "minDisk": image.seed.min_disk_gb,
        "minRam": image.seed.min_ram_mb,
        "created": SEED_TIMESTAMP,
        "updated": SEED_TIMESTAMP,
        "metadata": dict(image.seed.properties),
        "OS-EXT-IMG-SIZE:size": image.seed.size_bytes,
        "links": _links(base, "images", image.id),
    }


def server_summary(server: ServerRecord, base: str) -> dict[str, Any]:
    return {"id": server.id, "name": server.name, "links": _links(base, "servers", server.id)}


def _server_flavor(cloud: CloudState, server: ServerRecord, mv: Microversion, base: str) -> Any:
    flavor = cloud.catalog.flavors.get(server.flavor_id)
    if mv < (2, 47) or flavor is None:
        return {"id": server.flavor_id, "links": _links(base, "flavors", server.flavor_id)[1:]}
    seed = flavor.seed
    return {
        "vcpus": seed.vcpus,
        "ram": seed.ram_mb,
        "disk": seed.disk_gb,
        "ephemeral": seed.ephemeral_gb,
        "swap": seed.swap_mb,
        "original_name": seed.name,
        "extra_specs": dict(seed.extra_specs),
    }


def server_view(cloud: CloudState, server: ServerRecord, mv: Microversion, base: str) -> dict[str, Any]:
    host = host_of(server)
    addresses: dict[str, list[dict[str, Any]]] = {}
    for port in server.ports:
        addresses.setdefault(port.network_name, []).append(
            {
                "version": 4,
                "addr": port.ip,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": port.mac,
            }
        )
    body: dict[str, Any] = {
        "id": server.id,
        "name": server.name,
        "status": lifecycle.status(server),
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "metadata": dict(server.metadata),
        # Nova: sha224(project_id + host), "" before scheduling.
        "hostId": hashlib.sha224(f"{server.project_id}{host}".encode()).hexdigest() if host else "",
        # Boot-from-volume servers have no image: Nova returns "".
        "image": {"id": server.image_id, "links": _links(base, "images", server.image_id)[1:]}
        if server.image_id
        else "",
        "flavor": _server_flavor(cloud, server, mv, base),
        "created": lifecycle.iso(server.created_at),
        "updated": lifecycle.iso(server.updated_at),
        "addresses": addresses,
        "accessIPv4": "",
        "accessIPv6": "",
        "links": _links(base, "servers", server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": server.availability_zone,
        "config_drive": "",
        "key_name": server.key_name,
        "OS-SRV-USG:launched_at": _usage_time(server.launched_at),
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{int(server.created_at * 1000) % 16**8:08x}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": f"{host}.embedded" if host else None,
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": server.vm_state,
        "OS-EXT-STS:power_state": lifecycle.power_state(server),
        "os-extended-volumes:volumes_attached": [
            {"id": v.id, "delete_on_termination": v.delete_on_termination} for v in server.volumes
        ],
    }
    if server.security_groups:
        body["security_groups"] = [{"name": name} for name in server.security_groups]
    if mv >= (2, 3):
        body.update(
            {
                "OS-EXT-SRV-ATTR:reservation_id": f"r-{server.id[:8]}",
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:hostname": server.hostname or server.name,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": server.user_data,
            }
        )
    if mv >= (2, 9):
        body["locked"] = False
    if mv >= (2, 16):
        body["host_status"] = "UP" if host else ""
    if mv >= (2, 19):
        body["description"] = server.description
    if mv >= (2, 26):
        body["tags"] = list(server.tags)
    if mv >= (2, 63):
        body["trusted_image_certificates"] = None
    if mv >= (2, 71):
        group = server.scheduler_hints.get("group")
        body["server_groups"] = [group] if group else []
    if mv >= (2, 73):
        body["locked_reason"] = None
    if server.vm_state == "error" and server.fault:
        body["fault"] = server.fault
    return body
