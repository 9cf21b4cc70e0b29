"""What a cloud offers the wizard: instance types, images (with their minimum disk and whether they
are ready), networks and security groups, read with openstacksdk through the API's clouds.yaml,
cached briefly. A cloud that cannot be reached leaves the fields free text: the pool's own
restraint then tells what the cloud refused."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool

from activities.cloud_driver import connect
from api.settings import ApiSettings

log = logging.getLogger("deskpool.api.portal")
CACHE_S = 60.0
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Image:
    name: str
    min_disk_gb: int
    status: str


@dataclass(frozen=True)
class Catalog:
    flavors: list[str] = field(default_factory=list)
    images: dict[str, Image] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)


_cache: dict[str, tuple[float, Catalog | None]] = {}


def _read(settings: ApiSettings, cloud: str) -> Catalog:
    conn: Any = connect(settings.clouds_yaml, cloud, app_name="deskpool-api")
    try:
        images = {
            i.name: Image(i.name, int(i.min_disk or 0), str(i.status or "")) for i in conn.image.images() if i.name
        }
        return Catalog(
            flavors=sorted(f.name for f in conn.compute.flavors() if f.name),
            images=dict(sorted(images.items())),
            networks=sorted(n.name for n in conn.network.networks() if n.name),
            security_groups=sorted({g.name for g in conn.network.security_groups() if g.name}),
        )
    finally:
        conn.close()


async def catalog_of(settings: ApiSettings, cloud: str) -> Catalog | None:
    """The cloud's catalog, or None when it cannot be read now (logged, cached briefly too)."""
    now = time.monotonic()
    cached = _cache.get(cloud)
    if cached is not None and now - cached[0] < CACHE_S:
        return cached[1]
    try:
        found: Catalog | None = await asyncio.wait_for(run_in_threadpool(_read, settings, cloud), TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any cloud failure: the wizard falls back to free text
        log.warning("cloud %s: catalog not readable (%s)", cloud, type(exc).__name__)
        found = None
    _cache[cloud] = (now, found)
    return found


def cloud_errors(catalog: Catalog | None, values: dict[str, Any]) -> dict[str, str]:
    """The seed's rules only the cloud can answer: types and images that exist, an image that has
    finished uploading, a disk no smaller than the image's minimum, security groups that exist."""
    if catalog is None:
        return {}
    errors: dict[str, str] = {}
    flavor, image_name = values.get("flavor", ""), values.get("image", "")
    if flavor and catalog.flavors and flavor not in catalog.flavors:
        errors["flavor"] = f"no instance type {flavor!r} in this project"
    image = catalog.images.get(image_name)
    if image_name and catalog.images and image is None:
        errors["image"] = f"no image {image_name!r} in this project"
    elif image is not None and image.status != "active":
        errors["image"] = f"the image is not ready yet ({image.status}): wait until its upload is complete"
    size = str(values.get("disk_size_gb", ""))
    if image is not None and size.isdigit() and int(size) < image.min_disk_gb:
        errors["disk_size_gb"] = f"must be at least {image.min_disk_gb} GB, the minimum disk of image {image.name}"
    unknown = [g for g in values.get("security_groups", []) if g not in catalog.security_groups]
    if unknown and catalog.security_groups:
        errors["security_groups"] = f"no security group {', '.join(unknown)} in this project"
    return errors
