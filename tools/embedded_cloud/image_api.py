"""Glance v2 subset: discovery and read-only image listing.

``conn.image.find_image(name)`` first GETs ``/v2/images/<name>`` (404 here,
as the name is no UUID), then lists ``/v2/images?name=<name>``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request

from tools.embedded_cloud.catalog import SEED_TIMESTAMP, Image
from tools.embedded_cloud.errors import ApiError
from tools.embedded_cloud.state import cloud_of

router = APIRouter(prefix="/image")


@router.get("", name="image.versions")
@router.get("/", name="image.versions")
@router.get("/versions", name="image.versions")
async def versions(request: Request) -> dict[str, Any]:
    base = cloud_of(request).base_url(request)
    # Glance lists every minor version; keystoneauth picks the newest 2.x.
    return {
        "versions": [
            {
                "id": f"v2.{minor}",
                "status": "CURRENT" if minor == 16 else "SUPPORTED",
                "links": [{"rel": "self", "href": f"{base}/image/v2/"}],
            }
            for minor in (16, 15, 9, 0)
        ]
    }


def image_view(image: Image, owner: str) -> dict[str, Any]:
    seed = image.seed
    digest = hashlib.sha512(image.id.encode()).hexdigest()
    body: dict[str, Any] = {
        "id": image.id,
        "name": seed.name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "size": seed.size_bytes,
        "virtual_size": None,
        "min_disk": seed.min_disk_gb,
        "min_ram": seed.min_ram_mb,
        "disk_format": seed.disk_format,
        "container_format": "bare",
        "checksum": hashlib.md5(image.id.encode(), usedforsecurity=False).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": digest,
        "owner": owner,
        "created_at": SEED_TIMESTAMP,
        "updated_at": SEED_TIMESTAMP,
        "tags": [],
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }
    if seed.os_distro:
        body["os_distro"] = seed.os_distro
    # Glance flattens custom properties into the image document.
    body.update(seed.properties)
    return body


def _owner(request: Request) -> str:
    return next(iter(cloud_of(request).catalog.projects), "")


@router.get("/v2/images", name="image.images.list")
async def list_images(request: Request) -> dict[str, Any]:
    params = request.query_params
    images = [image_view(i, _owner(request)) for i in cloud_of(request).catalog.images.values()]
    for key in ("name", "id", "status", "visibility", "disk_format", "os_distro"):
        if key in params:
            images = [i for i in images if str(i.get(key)) == params[key]]
    return {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}


@router.get("/v2/images/{image_id}", name="image.images.get")
async def get_image(request: Request, image_id: str) -> dict[str, Any]:
    image = cloud_of(request).catalog.images.get(image_id)
    if image is None:
        raise ApiError(404, f"No image found with ID {image_id}", service="image")
    return image_view(image, _owner(request))
