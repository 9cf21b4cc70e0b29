"""The cloud as deskpool needs it, and its openstacksdk implementation.

Activities talk to a `CloudDriver`; the worker builds `OpenStackDriver`s from
clouds.yaml, tests hand in fakes. Every call here is blocking (openstacksdk),
so activities using it are synchronous and run on the worker's thread pool.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cachetools import TTLCache
from openstack.exceptions import raise_from_response

from activities.cloud_metrics import CloudMetrics, instrumented
from activities.cloud_rate import TokenBucket, limit_requests, request_bucket
from activities.heartbeats import keep_alive
from workflows.pool_spec import Template

DESKPOOL_TAG = "deskpool"
# The User-Agent's first word on deskpool's requests to a cloud (worker and API say which they are).
APP_NAME = "deskpool"
# How long one HTTP request to a cloud may take unless clouds.yaml says (`api_timeout`; requests'
# default is forever). Below the cloud activities' 30 s heartbeat timeout: a hung request fails
# and is retried by its own attempt, rather than outliving it while a retry creates a second
# server (docs/reliability.md, finding 9).
REQUEST_TIMEOUT_S = 20.0
# Every metadata key deskpool writes on a server starts so (owner, version, agent secret).
METADATA_PREFIX = "deskpool_"


def desktop_tag(desktop_id: str) -> str:
    """Nova tags are at most 60 characters; a desktop id may be longer, so hash it."""
    return "dpd-" + hashlib.sha256(desktop_id.encode()).hexdigest()[:24]


@dataclass
class ServerInfo:
    id: str
    name: str
    status: str  # Nova's: BUILD, ACTIVE, SHUTOFF, REBOOT, REBUILD, ERROR, DELETED...
    address: str | None = None
    metadata: dict[str, str] | None = None
    image_id: str | None = None
    flavor_name: str | None = None
    # Nova's action in progress (powering-off, rebooting, rebuilding...); None when settled.
    task_state: str | None = None
    # Nova's reason for an ERROR.
    fault: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ServerRequest:
    name: str
    desktop_id: str
    pool_id: str
    template_version: int
    template: Template
    metadata: dict[str, str]


class CloudDriver(Protocol):
    def find_project(self, name_or_id: str) -> str | None: ...
    def create_project(self, name: str) -> str: ...
    def find_by_desktop(self, desktop_id: str) -> list[ServerInfo]: ...
    def list_tagged(self) -> list[ServerInfo]: ...
    def list_changed(self, since: float) -> list[ServerInfo]: ...
    def image_id(self, image: str) -> str | None: ...
    def get(self, server_id: str) -> ServerInfo | None: ...
    def create(self, request: ServerRequest) -> ServerInfo: ...
    def delete(self, server_id: str) -> bool: ...
    def start(self, server_id: str) -> None: ...
    def stop(self, server_id: str) -> None: ...
    def reboot(self, server_id: str, hard: bool) -> None: ...
    def rebuild(self, server_id: str, image: str) -> None: ...
    def console_output(self, server_id: str, lines: int) -> str: ...
    def console_url(self, server_id: str) -> tuple[str, str]: ...
    def remove_tags(self, server_id: str, tags: list[str]) -> None: ...
    def delete_metadata(self, server_id: str, keys: list[str]) -> None: ...


class NameCache:
    """Image, flavor and network ids by the names a template uses, shared by a cloud's threads.

    Each create used to look all three up (six calls: openstacksdk's find tries the name as
    an id first), more than the create itself; ids of a name change rarely, so they are kept
    for `ttl_s`. A create with a stale id fails like any create and its retry resolves again.
    """

    def __init__(self, ttl_s: float = 300.0) -> None:
        self._ids: TTLCache[tuple[str, str], str] = TTLCache(maxsize=1024, ttl=ttl_s)
        self._lock = threading.Lock()

    def resolve(self, kind: str, name: str, lookup: Callable[[], Any]) -> str:
        key = (kind, name)
        with self._lock:
            known = self._ids.get(key)
        if known is not None:
            return known
        found = str(lookup())
        with self._lock:
            self._ids[key] = found
        return found

    def forget(self) -> None:
        with self._lock:
            self._ids.clear()


# Tags (2.26) and the flavor's name embedded in the server (2.47) in one listing.
LISTING_MICROVERSION = "2.47"


def server_info_of(server: dict[str, Any]) -> ServerInfo:
    """A server of Nova's JSON (microversion 2.47 or later)."""
    address = None
    for entries in (server.get("addresses") or {}).values():
        for entry in entries:
            address = address or entry.get("addr")
    image = server.get("image") or None
    flavor = server.get("flavor") or {}
    fault = server.get("fault") or {}
    return ServerInfo(
        str(server["id"]),
        str(server.get("name", "")),
        str(server.get("status", "")),
        address,
        dict(server.get("metadata") or {}),
        str(image["id"]) if isinstance(image, dict) and image.get("id") else None,
        flavor.get("original_name") or flavor.get("name"),
        server.get("OS-EXT-STS:task_state"),
        fault.get("message") if isinstance(fault, dict) else None,
        list(server.get("tags") or []),
    )


class OpenStackDriver:
    """One cloud (a clouds.yaml entry and region) through openstacksdk."""

    def __init__(self, connection: Any, names: NameCache | None = None) -> None:
        self._conn = connection
        self._names = names or NameCache()

    def find_by_desktop(self, desktop_id: str) -> list[ServerInfo]:
        return [s for s in self._servers({"tags": desktop_tag(desktop_id)}) if s.status != "DELETED"]

    def find_project(self, name_or_id: str) -> str | None:
        project = self._conn.identity.find_project(name_or_id, ignore_missing=True)
        return None if project is None else str(project.id)

    def create_project(self, name: str) -> str:
        current = self._conn.current_project
        domain = (current.domain_id if current is not None else None) or "default"
        return str(self._conn.identity.create_project(name=name, domain_id=domain).id)

    def list_tagged(self) -> list[ServerInfo]:
        """Every server carrying deskpool's tag, across the project."""
        return self._servers({"tags": DESKPOOL_TAG})

    def list_changed(self, since: float) -> list[ServerInfo]:
        """deskpool's servers changed since `since` (epoch seconds): Nova's changes-since."""
        stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._servers({"tags": DESKPOOL_TAG, "changes-since": stamp})

    def _servers(self, params: dict[str, str]) -> list[ServerInfo]:
        """A detailed listing, every page, read as plain JSON.

        Reads skip openstacksdk's resource objects: the shared listing runs every half second
        for every wait of a worker, and deletes read their servers until gone; building a
        resource per server in each answer cost more worker CPU than the rest of a refill
        (docs/benchmarks.md). Errors are openstacksdk's all the same (`raise_from_response`),
        so `cloud_errors` maps them as before.
        """
        url: str | None = "/servers/detail"
        query: dict[str, str] | None = params
        found: list[ServerInfo] = []
        while url:
            response = self._conn.compute.get(url, params=query, microversion=LISTING_MICROVERSION)
            raise_from_response(response)
            body = response.json()
            found += [server_info_of(server) for server in body.get("servers", [])]
            url = next((link["href"] for link in body.get("servers_links", []) if link.get("rel") == "next"), None)
            query = None  # the next link carries the query
        return found

    def image_id(self, image: str) -> str | None:
        found = self._conn.image.find_image(image, ignore_missing=True)
        return None if found is None else str(found.id)

    def get(self, server_id: str) -> ServerInfo | None:
        """The server, or None once it is gone (a 404 here is an answer, not an error). Plain JSON,
        as `_servers`: deletes and the first looks of waits read a server this way."""
        response = self._conn.compute.get(f"/servers/{server_id}", microversion=LISTING_MICROVERSION)
        if response.status_code == 404:
            return None
        raise_from_response(response)
        server = server_info_of(response.json()["server"])
        return None if server.status == "DELETED" else server

    def create(self, request: ServerRequest) -> ServerInfo:
        t = request.template
        compute = self._conn.compute
        image_id = self._names.resolve(
            "image", t.image, lambda: self._conn.image.find_image(t.image, ignore_missing=False).id
        )
        flavor_id = self._names.resolve(
            "flavor", t.flavor, lambda: compute.find_flavor(t.flavor, ignore_missing=False).id
        )
        networks: Any = [{"uuid": self._network_id(n)} for n in t.networks]
        kwargs: dict[str, Any] = {
            "name": request.name,
            "flavor_id": flavor_id,
            "networks": networks or "auto",
            "metadata": request.metadata,
            "tags": [DESKPOOL_TAG, desktop_tag(request.desktop_id)],
        }
        if t.security_groups:
            kwargs["security_groups"] = [{"name": g} for g in t.security_groups]
        if t.user_data:
            kwargs["user_data"] = base64.b64encode(t.user_data.encode()).decode()
        if t.availability_zone:
            kwargs["availability_zone"] = t.availability_zone
        hints = dict(t.scheduler_hints)
        if t.server_group:
            hints["group"] = t.server_group
        if hints:
            kwargs["scheduler_hints"] = hints
        if t.disk_size_gb is not None:
            volume: dict[str, Any] = {
                "boot_index": 0,
                "uuid": image_id,
                "source_type": "image",
                "destination_type": "volume",
                "volume_size": t.disk_size_gb,
                "delete_on_termination": True,
            }
            if t.disk_type is not None:
                volume["volume_type"] = t.disk_type.value
            kwargs["block_device_mapping"] = [volume]
        else:
            kwargs["image_id"] = image_id
        return self._info(compute.create_server(**kwargs))

    def _network_id(self, name: str) -> str:
        return self._names.resolve(
            "network", name, lambda: self._conn.network.find_network(name, ignore_missing=False).id
        )

    def delete(self, server_id: str) -> bool:
        """Ask the cloud to delete the server: True if it took the request, False if the server
        was already gone (a 404: so a delete needs no look first)."""
        response = self._conn.compute.delete(f"/servers/{server_id}")
        if response.status_code == 404:
            return False
        raise_from_response(response)
        return True

    def start(self, server_id: str) -> None:
        self._conn.compute.start_server(server_id)

    def stop(self, server_id: str) -> None:
        self._conn.compute.stop_server(server_id)

    def reboot(self, server_id: str, hard: bool) -> None:
        self._conn.compute.reboot_server(server_id, "HARD" if hard else "SOFT")

    def rebuild(self, server_id: str, image: str) -> None:
        image_id = self._conn.image.find_image(image, ignore_missing=False).id
        self._conn.compute.rebuild_server(server_id, image=image_id)

    def remove_tags(self, server_id: str, tags: list[str]) -> None:
        """Take tags off a server; one it no longer carries is fine (Nova answers 404)."""
        from openstack import exceptions

        for tag in tags:
            with contextlib.suppress(exceptions.NotFoundException):
                self._conn.compute.remove_tag_from_server(server_id, tag)

    def delete_metadata(self, server_id: str, keys: list[str]) -> None:
        """Delete metadata items of a server; one already gone is fine (Nova answers 404)."""
        from openstack import exceptions

        for key in keys:
            with contextlib.suppress(exceptions.NotFoundException):
                self._conn.compute.delete_server_metadata(server_id, [key])

    def console_output(self, server_id: str, lines: int) -> str:
        """The server's console log, the last `lines` lines (the seeds' log extraction)."""
        output = self._conn.compute.get_server_console_output(server_id, length=lines)
        return str(output.get("output", ""))

    def console_url(self, server_id: str) -> tuple[str, str]:
        """A remote console for operators: SPICE where the cloud offers it, else noVNC."""
        from openstack import exceptions

        last: Exception | None = None
        for protocol, kind in (("spice", "spice-html5"), ("vnc", "novnc")):
            try:
                console = self._conn.compute.create_console(server_id, console_type=kind, console_protocol=protocol)
            except exceptions.HttpException as err:  # this cloud has no such console: try the next
                last = err
                continue
            if console and console.get("url"):
                return str(console.get("type", kind)), str(console["url"])
        raise last or RuntimeError("the cloud offered no remote console")

    @staticmethod
    def _info(server: Any) -> ServerInfo:
        address = None
        for entries in (server.addresses or {}).values():
            for entry in entries:
                address = address or entry.get("addr")
        image = server.image.id if server.image and getattr(server.image, "id", None) else None
        flavor = getattr(server.flavor, "original_name", None) or getattr(server.flavor, "name", None)
        fault = server.fault.get("message") if isinstance(getattr(server, "fault", None), dict) else None
        return ServerInfo(
            server.id,
            server.name,
            server.status,
            address,
            dict(server.metadata or {}),
            image,
            flavor,
            getattr(server, "task_state", None),
            fault,
            list(getattr(server, "tags", None) or []),
        )


class CloudConnections:
    """openstacksdk connections by (cloud, region), one per thread.

    A Connection's session is not documented as thread-safe, and activities
    run on a thread pool; a connection per thread avoids sharing one. Every
    operation is counted and timed (`cloud_metrics`, the worker's registry
    unless `metrics` says otherwise), its wait for the rate limit included;
    the limit itself is on each HTTP request (`cloud_rate`), shared by the
    threads' connections to one cloud.
    """

    def __init__(
        self,
        clouds_yaml: Path | None,
        calls_per_second: float | None = None,
        metrics: CloudMetrics | None = None,
        app_name: str = APP_NAME,
    ) -> None:
        self._clouds_yaml = clouds_yaml
        self._app_name = app_name
        self._metrics = metrics
        self._local = threading.local()
        self._calls_per_second = calls_per_second
        # One bucket per cloud, shared by all threads: the limit is the process's.
        self._buckets: dict[str, TokenBucket] = {}
        # Resolved image, flavor and network ids, shared by the threads' connections.
        self._names: dict[tuple[str, str | None, str | None], NameCache] = {}
        self._lock = threading.Lock()

    def driver(self, cloud: str, region: str | None, project_id: str | None = None) -> CloudDriver:
        cache: dict[tuple[str, str | None, str | None], CloudDriver] = self._local.__dict__.setdefault("drivers", {})
        key = (cloud, region, project_id)
        if key not in cache:
            with self._lock:
                names = self._names.setdefault(key, NameCache())
            connection = connect(self._clouds_yaml, cloud, region, project_id, self._app_name)
            # Every request keeps a worker's activity alive (heartbeats.keep_alive; a no-op elsewhere).
            bucket = self.bucket(cloud) if self._calls_per_second else None
            limit_requests(connection.session.session, bucket, before_send=keep_alive)
            cache[key] = instrumented(OpenStackDriver(connection, names), cloud, self._metrics)
        return cache[key]

    def bucket(self, cloud: str) -> TokenBucket:
        assert self._calls_per_second
        with self._lock:
            if cloud not in self._buckets:
                self._buckets[cloud] = request_bucket(self._calls_per_second)
            return self._buckets[cloud]


def connect(
    clouds_yaml: Path | None,
    cloud: str,
    region: str | None = None,
    project_id: str | None = None,
    app_name: str = APP_NAME,
) -> Any:
    """An openstacksdk Connection for a clouds.yaml entry (the default search path when None),
    scoped to `project_id` instead of the entry's own project when given. `app_name` leads the
    User-Agent of its requests, so a cloud's operator (and the embedded cloud's stats) can tell
    which deskpool process sent them."""
    import openstack
    from openstack.config import loader

    files = [str(clouds_yaml)] if clouds_yaml else None
    config = loader.OpenStackConfig(config_files=files, app_name=app_name)
    if project_id:
        region_config = config.get_one(cloud=cloud, region_name=region, project_id=project_id)
    else:
        region_config = config.get_one(cloud=cloud, region_name=region)
    if region_config.config.get("api_timeout") is None:  # clouds.yaml's own value wins
        region_config.config["api_timeout"] = REQUEST_TIMEOUT_S
    return openstack.connection.Connection(config=region_config)
