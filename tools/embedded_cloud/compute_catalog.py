"""Nova read-only resources: flavors, the image proxy, limits, zones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tools.embedded_cloud.catalog import Flavor
from tools.embedded_cloud.compute_views import flavor_view, nova_image_view
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.server_request import MAX_METADATA_ITEMS
from tools.embedded_cloud.state import auth_of, cloud_of, microversion_of

router = APIRouter(prefix="/compute/v2.1")


def _flavors(request: Request) -> list[Flavor]:
    params = request.query_params
    flavors = list(cloud_of(request).catalog.flavors.values())
    if "minDisk" in params:
        flavors = [f for f in flavors if f.seed.disk_gb >= int(params["minDisk"])]
    if "minRam" in params:
        flavors = [f for f in flavors if f.seed.ram_mb >= int(params["minRam"])]
    return sorted(flavors, key=lambda f: (f.seed.ram_mb, f.seed.name))


@router.get("/flavors", name="compute.flavors.list")
async def list_flavors(request: Request) -> dict[str, Any]:
    base = cloud_of(request).base_url(request)
    return {
        "flavors": [
            {"id": f.id, "name": f.seed.name, "links": flavor_view(f, (2, 1), base)["links"]} for f in _flavors(request)
        ]
    }


@router.get("/flavors/detail", name="compute.flavors.list_detail")
async def list_flavors_detail(request: Request) -> dict[str, Any]:
    base, mv = cloud_of(request).base_url(request), microversion_of(request)
    return {"flavors": [flavor_view(f, mv, base) for f in _flavors(request)]}


@router.get("/flavors/{flavor_id}", name="compute.flavors.get")
async def get_flavor(request: Request, flavor_id: str) -> dict[str, Any]:
    cloud = cloud_of(request)
    flavor = cloud.catalog.flavors.get(flavor_id)
    if flavor is None:
        raise ApiError(404, f"Flavor {flavor_id} could not be found.")
    return {"flavor": flavor_view(flavor, microversion_of(request), cloud.base_url(request))}


def _require_image_proxy(request: Request) -> None:
    # The image proxy API was removed in microversion 2.36. openstacksdk's
    # conn.compute.find_image sends no microversion (2.1), so it still works.
    if microversion_of(request) >= (2, 36):
        raise ApiError(404, "The resource could not be found.")


@router.get("/images", name="compute.images.list")
@router.get("/images/detail", name="compute.images.list_detail")
async def list_images(request: Request) -> dict[str, Any]:
    _require_image_proxy(request)
    cloud = cloud_of(request)
    base, name = cloud.base_url(request), request.query_params.get("name")
    images = [nova_image_view(i, base) for i in cloud.catalog.images.values() if name is None or i.seed.name == name]
    if not request.url.path.endswith("/detail"):
        images = [{k: i[k] for k in ("id", "name", "links")} for i in images]
    return {"images": images}


@router.get("/images/{image_id}", name="compute.images.get")
async def get_image(request: Request, image_id: str) -> dict[str, Any]:
    _require_image_proxy(request)
    cloud = cloud_of(request)
    image = cloud.catalog.images.get(image_id)
    if image is None:
        raise ApiError(404, "Image not found.")
    return {"image": nova_image_view(image, cloud.base_url(request))}


@router.get("/limits", name="compute.limits")
async def limits(request: Request) -> dict[str, Any]:
    """Absolute limits and usage, so a driver can read the instances quota."""
    cloud, auth = cloud_of(request), auth_of(request)
    mine = [s for s in cloud.live_servers() if s.project_id == auth.project_id]
    flavors = [cloud.catalog.flavors.get(s.flavor_id) for s in mine]
    quota = cloud.faults.instances_quota
    return {
        "limits": {
            "rate": [],
            "absolute": {
                "maxTotalInstances": -1 if quota is None else quota,
                "totalInstancesUsed": len(mine),
                "maxTotalCores": -1,
                "totalCoresUsed": sum(f.seed.vcpus for f in flavors if f),
                "maxTotalRAMSize": -1,
                "totalRAMUsed": sum(f.seed.ram_mb for f in flavors if f),
                "maxServerMeta": MAX_METADATA_ITEMS,
                "maxTotalKeypairs": 100,
                "maxServerGroups": 10,
                "maxServerGroupMembers": 10,
                "totalServerGroupsUsed": 0,
            },
        }
    }


@router.get("/os-availability-zone", name="compute.availability_zones")
async def availability_zones(request: Request) -> dict[str, Any]:
    zones = cloud_of(request).config.seed.availability_zones
    return {
        "availabilityZoneInfo": [{"zoneName": zone, "zoneState": {"available": True}, "hosts": None} for zone in zones]
    }
