"""Validation of ``POST /servers`` bodies into a new ``ServerRecord``.

Messages follow Nova's wording for the mistakes a driver is likely to make
(unknown flavor/image/network/security group, missing ``networks`` at 2.37+,
fields newer than the requested microversion, disk too small for the image).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import uuid
from typing import Any

from tools.embedded_cloud.catalog import Flavor, Image, Network
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.microversion import Microversion
from tools.embedded_cloud.records import Port, ServerRecord, Volume
from tools.embedded_cloud.state import CloudState
from tools.embedded_cloud.tokens import TokenInfo

GIB = 1024**3
MAX_METADATA_ITEMS = 128  # Nova's default metadata_items quota
MAX_TAGS = 50


def _unexpected(field: str) -> ApiError:
    return ApiError(
        400,
        "Invalid input for field/attribute server. Value: ... Additional "
        f"properties are not allowed ('{field}' was unexpected)",
    )


def validate_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict):
        raise ApiError(400, "Malformed request body: metadata must be an object")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise ApiError(400, "Invalid metadata key: length must be 1-255")
        if not isinstance(value, str) or len(value) > 255:
            raise ApiError(400, f"Invalid metadata value for '{key}': string of <= 255")
    if len(metadata) > MAX_METADATA_ITEMS:
        raise ApiError(
            403, f"Quota exceeded for metadata_items: Maximum number of metadata items exceeds {MAX_METADATA_ITEMS}"
        )
    return dict(metadata)


def validate_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
        raise ApiError(400, f"Invalid tag {tag!r}: 1-60 characters, no '/' or ','")
    return tag


def validate_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        raise ApiError(400, "Malformed request body: tags must be a list")
    if len(tags) > MAX_TAGS:
        raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    return list(dict.fromkeys(validate_tag(tag) for tag in tags))


def validate_user_data(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 65535:
        raise ApiError(400, "User data too large or not a string.")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "User data needs to be valid base 64.") from None
    return value


def _availability_zone(cloud: CloudState, value: Any) -> str:
    zones = cloud.config.seed.availability_zones
    if value in (None, ""):
        return zones[0]
    # "zone:host[:node]" forces a host (admin only in Nova); keep the zone.
    zone = str(value).split(":", 1)[0]
    if zone not in zones:
        raise ApiError(400, "The requested availability zone is not available")
    return zone


def _volumes(cloud: CloudState, mappings: Any, mv: Microversion) -> tuple[list[Volume], bool]:
    """Fake volumes for block_device_mapping_v2 and whether it boots from one."""
    if not isinstance(mappings, list):
        raise ApiError(400, "Malformed request body: block_device_mapping_v2")
    volumes: list[Volume] = []
    boots_from_volume = False
    for bdm in mappings:
        if "volume_type" in bdm and mv < (2, 67):
            raise _unexpected("volume_type")
        source = bdm.get("source_type")
        destination = bdm.get("destination_type") or ("local" if source == "blank" else "volume")
        boot_index = bdm.get("boot_index")
        boot_index = int(boot_index) if boot_index not in (None, "", "none") else None
        if destination != "volume":
            continue  # local image/ephemeral/swap disks live on the hypervisor
        image_id: str | None = None
        size = int(bdm.get("volume_size") or 0)
        if source == "image":
            image = cloud.catalog.image(str(bdm.get("uuid", "")))
            if image is None:
                raise ApiError(400, f"Image {bdm.get('uuid')} could not be found.")
            if size <= 0:
                raise ApiError(400, "Images with destination_type 'volume' need to have a non-zero size specified")
            if size < image.seed.min_disk_gb:
                raise ApiError(
                    400,
                    "Volume is smaller than the minimum size specified "
                    f"in image metadata. Volume size is {size * GIB} bytes, "
                    f"minimum size is {image.seed.min_disk_gb * GIB} bytes.",
                )
            image_id = image.id
        elif source == "blank" and size <= 0:
            raise ApiError(400, "Blank volumes need a non-zero volume_size")
        elif source not in ("image", "blank", "volume", "snapshot"):
            raise ApiError(400, f"Invalid source_type {source!r}")
        volume_id = bdm.get("uuid") if source == "volume" else str(uuid.uuid4())
        volumes.append(
            Volume(
                id=str(volume_id),
                size_gb=size,
                volume_type=bdm.get("volume_type"),
                boot_index=boot_index,
                image_id=image_id,
                delete_on_termination=bool(bdm.get("delete_on_termination", False)),
            )
        )
        boots_from_volume = boots_from_volume or boot_index == 0
    return volumes, boots_from_volume


def _check_fits(image: Image, flavor: Flavor) -> None:
    seed = flavor.seed
    if seed.disk_gb and image.seed.min_disk_gb > seed.disk_gb:
        raise ApiError(
            400,
            "Flavor's disk is too small for requested image. Flavor "
            f"disk is {seed.disk_gb * GIB} bytes, image is "
            f"{image.seed.min_disk_gb * GIB} bytes.",
        )
    if image.seed.min_ram_mb > seed.ram_mb:
        raise ApiError(400, "Flavor's memory is too small for requested image.")


def _networks(cloud: CloudState, spec: Any, mv: Microversion) -> list[tuple[Network, str | None]]:
    if spec is None:
        if mv >= (2, 37):
            raise ApiError(
                400, "Invalid input for field/attribute server. Value: ... 'networks' is a required property"
            )
        spec = "auto"
    if spec == "none":
        return []
    if spec == "auto":
        default = cloud.catalog.default_network
        if default is None:
            raise ApiError(400, "Unable to automatically allocate a network for project")
        return [(default, None)]
    if not isinstance(spec, list):
        raise ApiError(400, "Bad networks format")
    wanted: list[tuple[Network, str | None]] = []
    for item in spec:
        if not isinstance(item, dict) or "uuid" not in item:
            raise ApiError(400, "Bad networks format: only {'uuid': ...} is supported")
        network = cloud.catalog.networks.get(item["uuid"])
        if network is None:
            raise ApiError(400, f"Network {item['uuid']} could not be found.")
        wanted.append((network, item.get("fixed_ip")))
    return wanted


def allocate_port(
    cloud: CloudState,
    network: Network,
    server_id: str,
    wanted_ip: str | None,
    pending: list[Port],
) -> Port:
    """A fixed IP on the network: the lowest free host address of its CIDR."""
    # Deleting (not yet purged) servers keep their IPs, like Neutron ports.
    ports = [p for s in cloud.store.servers.values() for p in s.ports] + pending
    used = {p.ip for p in ports if p.network_id == network.id}
    used.add(network.gateway)
    mac_bytes = hashlib.sha256(f"{server_id}:{network.id}".encode()).digest()[:3]
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in mac_bytes)
    if wanted_ip is not None:
        try:
            inside = ipaddress.IPv4Address(wanted_ip) in network.cidr
        except ValueError:
            inside = False
        if not inside:
            raise ApiError(400, f"Invalid fixed IP address {wanted_ip} for network.")
        if wanted_ip in used:
            raise ApiError(400, f"Fixed IP address {wanted_ip} is already in use.")
        return Port(network_id=network.id, network_name=network.seed.name, ip=wanted_ip, mac=mac)
    for host in network.cidr.hosts():
        if str(host) not in used:
            return Port(network_id=network.id, network_name=network.seed.name, ip=str(host), mac=mac)
    raise ApiError(400, f"No more IP addresses available on network {network.id}.")


def build_server(
    cloud: CloudState, auth: TokenInfo, body: dict[str, Any], mv: Microversion, now: float
) -> ServerRecord:
    spec = body.get("server")
    if not isinstance(spec, dict):
        raise ApiError(400, "Malformed request body: 'server' is required")
    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise ApiError(400, "Invalid input for field/attribute name.")
    if int(spec.get("min_count", 1)) != 1 or int(spec.get("max_count", 1)) != 1:
        raise ApiError(400, "min_count/max_count other than 1 are not supported by the embedded cloud")
    for field, since in (("tags", (2, 52)), ("description", (2, 19)), ("hostname", (2, 90))):
        if field in spec and mv < since:
            raise _unexpected(field)
    flavor = cloud.catalog.flavor(str(spec.get("flavorRef", "")))
    if flavor is None:
        raise ApiError(400, "Invalid flavorRef provided.")
    volumes, boots_from_volume = _volumes(cloud, spec.get("block_device_mapping_v2") or [], mv)
    image_id = ""
    if not boots_from_volume:
        image_ref = spec.get("imageRef")
        if not image_ref:
            raise ApiError(400, "Missing imageRef attribute")
        image = cloud.catalog.image(str(image_ref))
        if image is None:
            raise ApiError(400, f"Image {image_ref} could not be found.")
        _check_fits(image, flavor)
        image_id = image.id
    groups = cloud.security_groups()
    group_names: list[str] = []
    for ref in spec.get("security_groups") or [{"name": "default"}]:
        wanted = ref.get("name") if isinstance(ref, dict) else None
        match = next((g for g in groups.values() if wanted in (g.id, g.name)), None)
        if match is None:
            if wanted == "default" and "security_groups" not in spec:
                continue  # no "default" group seeded: boot without one
            raise ApiError(400, f"Security group {wanted} not found.")
        group_names.append(str(wanted))
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    server_id = str(uuid.uuid4())
    server = ServerRecord(
        id=server_id,
        name=name,
        project_id=auth.project_id,
        user_id=auth.user_id,
        image_id=image_id,
        flavor_id=flavor.id,
        availability_zone=_availability_zone(cloud, spec.get("availability_zone")),
        security_groups=group_names,
        metadata=validate_metadata(spec.get("metadata") or {}),
        tags=validate_tags(spec.get("tags") or []),
        user_data=validate_user_data(spec.get("user_data")),
        key_name=spec.get("key_name"),
        description=spec.get("description"),
        hostname=spec.get("hostname"),
        volumes=volumes,
        scheduler_hints=dict(hints) if isinstance(hints, dict) else {},
        created_at=now,
        updated_at=now,
    )
    for network, fixed_ip in _networks(cloud, spec.get("networks"), mv):
        server.ports.append(allocate_port(cloud, network, server_id, fixed_ip, server.ports))
    return server
