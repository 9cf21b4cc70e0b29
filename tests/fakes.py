"""An in-memory cloud behind the CloudDriver interface, for workflow tests.

Deterministic: a server leaves BUILD after `build_polls` reads, not after
wall-clock time, so tests are fast and never flaky.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from openstack.exceptions import HttpException

from activities.cloud_driver import CloudDriver, ServerInfo, ServerRequest, desktop_tag


@dataclass
class FakeServer:
    id: str
    name: str
    tags: list[str]
    metadata: dict[str, str]
    image: str
    status: str = "BUILD"
    polls_left: int = 0
    rebuilds: int = 0


@dataclass
class FakeCloud:
    build_polls: int = 1
    # Names of desktops whose build ends in ERROR.
    fail_names: set[str] = field(default_factory=set)
    fail_all: bool = False
    # A cloud that answers 503 to every create and lookup (an outage), until set back.
    unavailable: bool = False
    servers: dict[str, FakeServer] = field(default_factory=dict)
    created: int = 0
    deleted: int = 0
    peak_servers: int = 0
    peak_building: int = 0
    listings: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    projects: dict[str, str] = field(default_factory=dict)  # name -> id
    # The project each server was created in (None: the default project).
    server_projects: dict[str, str | None] = field(default_factory=dict)

    def driver(self, cloud: str, region: str | None, project_id: str | None = None) -> CloudDriver:
        return _Scoped(self, project_id)  # type: ignore[return-value]

    def find_project(self, name_or_id: str) -> str | None:
        with self._lock:
            if name_or_id in self.projects.values():
                return name_or_id
            return self.projects.get(name_or_id)

    def create_project(self, name: str) -> str:
        with self._lock:
            self.projects[name] = f"proj-{len(self.projects) + 1}"
            return self.projects[name]

    def find_by_desktop(self, desktop_id: str) -> list[ServerInfo]:
        self._answer_or_503()
        tag = desktop_tag(desktop_id)
        with self._lock:
            return [self._info(s) for s in self.servers.values() if tag in s.tags]

    def list_tagged(self) -> list[ServerInfo]:
        with self._lock:
            return [self._info(s) for s in self.servers.values() if "deskpool" in s.tags]

    def list_changed(self, since: float) -> list[ServerInfo]:
        # Every tagged server: a superset of the changed ones is what a listing may answer.
        with self._lock:
            self.listings += 1
            tagged = [server for server in self.servers.values() if "deskpool" in server.tags]
            for server in tagged:
                self._advance(server)
            return [self._info(server) for server in tagged]

    def _advance(self, server: FakeServer) -> None:
        """Each look at a building server brings it a poll closer to ACTIVE (or ERROR)."""
        if server.status in ("BUILD", "REBUILD"):
            if server.polls_left <= 0:
                failing = self.fail_all or server.name in self.fail_names
                server.status = "ERROR" if failing else "ACTIVE"
            server.polls_left -= 1

    def image_id(self, image: str) -> str | None:
        return f"img-{image}"

    def add_foreign(self, name: str, desktop_id: str | None) -> str:
        """A server made outside deskpool's workflows (an orphan, a leftover)."""
        with self._lock:
            server = FakeServer(
                id=f"srv-{next(self._ids)}",
                name=name,
                tags=["deskpool", desktop_tag(desktop_id)] if desktop_id else ["deskpool"],
                metadata={"deskpool_desktop": desktop_id} if desktop_id else {},
                image="win11-golden",
                status="ACTIVE",
            )
            self.servers[server.id] = server
            return server.id

    def get(self, server_id: str) -> ServerInfo | None:
        with self._lock:
            server = self.servers.get(server_id)
            if server is None:
                return None
            self._advance(server)
            return self._info(server)

    def _answer_or_503(self) -> None:
        if self.unavailable:
            raise HttpException(message="Service Unavailable", http_status=503)

    def create(self, request: ServerRequest, project_id: str | None = None) -> ServerInfo:
        self._answer_or_503()
        with self._lock:
            server = FakeServer(
                id=f"srv-{next(self._ids)}",
                name=request.name,
                tags=["deskpool", desktop_tag(request.desktop_id)],
                metadata=dict(request.metadata),
                image=request.template.image,
                polls_left=self.build_polls,
            )
            self.servers[server.id] = server
            self.server_projects[server.id] = project_id
            self.created += 1
            self.peak_servers = max(self.peak_servers, len(self.servers))
            building = sum(1 for s in self.servers.values() if s.status == "BUILD")
            self.peak_building = max(self.peak_building, building)
            return self._info(server)

    def delete(self, server_id: str) -> bool:
        with self._lock:
            if self.servers.pop(server_id, None) is None:
                return False
            self.deleted += 1
            return True

    def start(self, server_id: str) -> None:
        with self._lock:
            self.servers[server_id].status = "ACTIVE"

    def stop(self, server_id: str) -> None:
        with self._lock:
            self.servers[server_id].status = "SHUTOFF"

    def reboot(self, server_id: str, hard: bool) -> None:
        with self._lock:
            self.servers[server_id].status = "ACTIVE"

    def rebuild(self, server_id: str, image: str) -> None:
        with self._lock:
            server = self.servers[server_id]
            server.status, server.image, server.polls_left = "REBUILD", image, self.build_polls
            server.rebuilds += 1

    def remove_tags(self, server_id: str, tags: list[str]) -> None:
        with self._lock:
            server = self.servers.get(server_id)
            if server is not None:
                server.tags = [t for t in server.tags if t not in tags]

    def delete_metadata(self, server_id: str, keys: list[str]) -> None:
        with self._lock:
            server = self.servers.get(server_id)
            if server is not None:
                server.metadata = {k: v for k, v in server.metadata.items() if k not in keys}

    def console_output(self, server_id: str, lines: int) -> str:
        return "\n".join(f"{server_id} boot line {i}" for i in range(lines))

    def console_url(self, server_id: str) -> tuple[str, str]:
        return "novnc", f"http://console.test/vnc_auto.html?token={server_id}"

    def statuses(self) -> list[str]:
        with self._lock:
            return sorted(s.status for s in self.servers.values())

    @staticmethod
    def _info(server: FakeServer) -> ServerInfo:
        address = f"10.0.0.{server.id.removeprefix('srv-')}"
        flavor = server.metadata.get("_flavor", "vdi.medium")
        return ServerInfo(
            server.id,
            server.name,
            server.status,
            address,
            dict(server.metadata),
            f"img-{server.image}",
            flavor,
            tags=list(server.tags),
        )


class _Scoped:
    """The fake cloud seen through a connection scoped to one project."""

    def __init__(self, cloud: FakeCloud, project_id: str | None) -> None:
        self._cloud, self._project_id = cloud, project_id

    def create(self, request: ServerRequest) -> ServerInfo:
        return self._cloud.create(request, self._project_id)

    def __getattr__(self, name: str) -> object:
        return getattr(self._cloud, name)
