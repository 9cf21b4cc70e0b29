"""Neutron v2.0 subset: networks, subnets, ports (derived from servers) and
security groups (seeded ones plus groups created at run time).

``find_network(name)`` / ``find_security_group(name)`` first GET the item by
the name as if it were an ID (404 here), then list with ``?name=``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tools.embedded_cloud import lifecycle
from tools.embedded_cloud.catalog import SEED_TIMESTAMP, Network, stable_id
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.records import SecurityGroupRecord, SecurityGroupRule
from tools.embedded_cloud.state import CloudState, auth_of, cloud_of, json_body

router = APIRouter(prefix="/network")
_NOT_FILTERS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


@router.get("", name="network.versions")
@router.get("/", name="network.versions")
async def versions(request: Request) -> dict[str, Any]:
    base = cloud_of(request).base_url(request)
    return {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{base}/network/v2.0/"}],
            }
        ]
    }


@router.get("/v2.0", name="network.resources")
@router.get("/v2.0/", name="network.resources")
async def resources(request: Request) -> dict[str, Any]:
    names = ("network", "subnet", "port", "security_group")
    return {"resources": [{"name": n, "collection": f"{n}s", "links": []} for n in names]}


def _filter(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron-style equality filters on any top-level field (repeat = OR)."""
    params = request.query_params
    for key in {k for k in params if k not in _NOT_FILTERS}:
        wanted = params.getlist(key)
        items = [
            item
            for item in items
            if key not in item or (str(item[key]).lower() if isinstance(item[key], bool) else str(item[key])) in wanted
        ]
    return items


def _owner(cloud: CloudState) -> str:
    return next(iter(cloud.catalog.projects), "")


def _common(project_id: str) -> dict[str, Any]:
    return {
        "tenant_id": project_id,
        "project_id": project_id,
        "description": "",
        "tags": [],
        "created_at": SEED_TIMESTAMP,
        "updated_at": SEED_TIMESTAMP,
        "revision_number": 1,
    }


def network_view(cloud: CloudState, net: Network) -> dict[str, Any]:
    return {
        **_common(_owner(cloud)),
        "id": net.id,
        "name": net.seed.name,
        "status": "ACTIVE",
        "admin_state_up": True,
        "subnets": [net.subnet_id],
        "shared": net.seed.shared,
        "router:external": False,
        "mtu": 1450,
        "port_security_enabled": True,
        "availability_zones": list(cloud.config.seed.availability_zones),
        "availability_zone_hints": [],
        "provider:network_type": "vxlan",
        "is_default": False,
    }


def subnet_view(cloud: CloudState, net: Network) -> dict[str, Any]:
    hosts = list(net.cidr.hosts())
    return {
        **_common(_owner(cloud)),
        "id": net.subnet_id,
        "name": f"{net.seed.name}-subnet",
        "network_id": net.id,
        "cidr": str(net.cidr),
        "ip_version": 4,
        "gateway_ip": net.gateway,
        "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
        "enable_dhcp": True,
        "dns_nameservers": [],
        "host_routes": [],
        "subnetpool_id": None,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
    }


def group_view(group: SecurityGroupRecord) -> dict[str, Any]:
    rules = [
        {
            **_common(group.project_id),
            **rule.model_dump(),
            "security_group_id": group.id,
            "remote_group_id": None,
        }
        for rule in group.rules
    ]
    return {
        **_common(group.project_id),
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "security_group_rules": rules,
        "stateful": group.stateful,
        "shared": False,
        "created_at": lifecycle.iso(group.created_at),
    }


@router.get("/v2.0/networks", name="network.networks.list")
async def list_networks(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    nets = [network_view(cloud, n) for n in cloud.catalog.networks.values()]
    return {"networks": _filter(request, nets)}


@router.get("/v2.0/networks/{network_id}", name="network.networks.get")
async def get_network(request: Request, network_id: str) -> dict[str, Any]:
    cloud = cloud_of(request)
    net = cloud.catalog.networks.get(network_id)
    if net is None:
        raise ApiError(
            404, f"Network {network_id} could not be found.", service="network", neutron_type="NetworkNotFound"
        )
    return {"network": network_view(cloud, net)}


@router.get("/v2.0/subnets", name="network.subnets.list")
async def list_subnets(request: Request) -> dict[str, Any]:
    cloud = cloud_of(request)
    subnets = [subnet_view(cloud, n) for n in cloud.catalog.networks.values()]
    return {"subnets": _filter(request, subnets)}


@router.get("/v2.0/subnets/{subnet_id}", name="network.subnets.get")
async def get_subnet(request: Request, subnet_id: str) -> dict[str, Any]:
    cloud = cloud_of(request)
    for net in cloud.catalog.networks.values():
        if net.subnet_id == subnet_id:
            return {"subnet": subnet_view(cloud, net)}
    raise ApiError(404, f"Subnet {subnet_id} could not be found.", service="network", neutron_type="SubnetNotFound")


@router.get("/v2.0/ports", name="network.ports.list")
async def list_ports(request: Request) -> dict[str, Any]:
    """Ports of the servers (read-only), e.g. for ``ports(device_id=...)``."""
    cloud, auth = cloud_of(request), auth_of(request)
    groups = {g.name: g.id for g in cloud.security_groups().values()}
    ports = []
    for server in cloud.live_servers():
        if not auth.is_admin and server.project_id != auth.project_id:
            continue
        for port in server.ports:
            net = cloud.catalog.networks[port.network_id]
            ports.append(
                {
                    **_common(server.project_id),
                    "id": stable_id("port", f"{server.id}:{port.network_id}:{port.ip}"),
                    "name": "",
                    "network_id": port.network_id,
                    "device_id": server.id,
                    "device_owner": f"compute:{server.availability_zone}",
                    "mac_address": port.mac,
                    "fixed_ips": [{"subnet_id": net.subnet_id, "ip_address": port.ip}],
                    "status": "ACTIVE" if lifecycle.status(server) == "ACTIVE" else "DOWN",
                    "admin_state_up": True,
                    "security_groups": [groups[n] for n in server.security_groups if n in groups],
                }
            )
    return {"ports": _filter(request, ports)}


@router.get("/v2.0/security-groups", name="network.security_groups.list")
async def list_security_groups(request: Request) -> dict[str, Any]:
    groups = [group_view(g) for g in cloud_of(request).security_groups().values()]
    return {"security_groups": _filter(request, groups)}


def _group_or_404(cloud: CloudState, group_id: str) -> SecurityGroupRecord:
    group = cloud.security_groups().get(group_id)
    if group is None:
        raise ApiError(
            404, f"Security group {group_id} does not exist", service="network", neutron_type="SecurityGroupNotFound"
        )
    return group


@router.get("/v2.0/security-groups/{group_id}", name="network.security_groups.get")
async def get_security_group(request: Request, group_id: str) -> dict[str, Any]:
    return {"security_group": group_view(_group_or_404(cloud_of(request), group_id))}


@router.post("/v2.0/security-groups", name="network.security_groups.create")
async def create_security_group(request: Request) -> Response:
    cloud, auth = cloud_of(request), auth_of(request)
    spec = (await json_body(request, "network")).get("security_group") or {}
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Invalid input for name.", service="network")
    group_id = str(uuid.uuid4())
    group = SecurityGroupRecord(
        id=group_id,
        name=name,
        description=str(spec.get("description") or ""),
        project_id=spec.get("project_id") or auth.project_id,
        stateful=bool(spec.get("stateful", True)),
        # Neutron adds allow-all egress rules to every new group.
        rules=[SecurityGroupRule(id=str(uuid.uuid4()), direction="egress", ethertype=e) for e in ("IPv4", "IPv6")],
        created_at=cloud.now(),
    )
    cloud.store.save_security_group(group)
    return JSONResponse({"security_group": group_view(group)}, status_code=201)


@router.delete("/v2.0/security-groups/{group_id}", name="network.security_groups.delete")
async def delete_security_group(request: Request, group_id: str) -> Response:
    cloud = cloud_of(request)
    group = _group_or_404(cloud, group_id)
    in_use = any(group.name in s.security_groups for s in cloud.live_servers())
    if group_id not in cloud.store.security_groups or in_use:
        raise ApiError(409, f"Security Group {group_id} in use.", service="network", neutron_type="SecurityGroupInUse")
    cloud.store.remove_security_group(group_id)
    return Response(status_code=204)
