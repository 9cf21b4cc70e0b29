"""Cloud activities: create, wait, power, rebuild, delete, detach — each idempotent.

A retry after a crash must never make a second server: create looks for the
desktop's tag first. Waits poll and heartbeat, so a dead worker is noticed in
seconds and the wait resumes elsewhere.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_secret import agent_secret
from activities.cloud_driver import DESKPOOL_TAG, METADATA_PREFIX, CloudDriver, ServerInfo, ServerRequest, desktop_tag
from activities.cloud_errors import PROJECT_MISSING, SERVER_FAILED, call
from activities.cloud_limits import CloudLimits
from activities.heartbeats import beat, kept_alive
from activities.server_watch import ServerWatches
from workflows.activity_io import (
    ConsoleOutputInput,
    ConsoleOutputResult,
    ConsoleUrlInput,
    ConsoleUrlResult,
    CreateServerInput,
    CreateServerResult,
    DeleteServerInput,
    DeleteServerResult,
    DetachServerInput,
    DetachServerResult,
    EnsureProjectInput,
    EnsureProjectResult,
    PowerAction,
    PowerServerInput,
    PowerServerResult,
    RebuildServerInput,
    RebuildServerResult,
    ServerRef,
    WaitServerInput,
    WaitServerResult,
)

# (cloud, region, project id or None for the clouds.yaml entry's own project)
DriverFactory = Callable[[str, str | None, str | None], CloudDriver]
TARGET_STATUS = {
    PowerAction.START: "ACTIVE",
    PowerAction.STOP: "SHUTOFF",
    PowerAction.REBOOT_SOFT: "ACTIVE",
    PowerAction.REBOOT_HARD: "ACTIVE",
}
REBOOTS = (PowerAction.REBOOT_SOFT, PowerAction.REBOOT_HARD)
# First heartbeat detail of an attempt that has asked the cloud for a reboot or a rebuild:
# a retry after it only waits (a second reboot would interrupt the user again). Every later
# heartbeat of that attempt carries it too, as the last heartbeat's details are what a retry sees.
REBOOT_REQUESTED = "reboot requested"
REBUILD_REQUESTED = "rebuild requested"


def requested_before(marker: str) -> bool:
    """Whether an earlier attempt of this activity heartbeated that it made the request."""
    details = activity.info().heartbeat_details
    return bool(details) and details[0] == marker


class CloudActivities:
    def __init__(
        self,
        drivers: DriverFactory,
        sleep: Callable[[float], None] = time.sleep,
        agent_key: bytes | None = None,
        limits: CloudLimits | None = None,
        build_timeout_s: float | None = None,
        watches: ServerWatches | None = None,
    ) -> None:
        self._drivers = drivers
        # Waits share one changes-since listing per cloud project instead of a GET each.
        self.watches = watches or ServerWatches()
        self._sleep = sleep
        self._agent_key = agent_key
        self.limits = limits or CloudLimits()
        # The worker's cap on how long a build may take (None: what the workflow asks, 600 s).
        self._build_timeout_cap = build_timeout_s

    def _build_timeout(self, asked_s: float) -> float:
        return asked_s if self._build_timeout_cap is None else min(asked_s, self._build_timeout_cap)

    @property
    def drivers(self) -> DriverFactory:
        return self._drivers

    def _driver(self, ref: ServerRef) -> CloudDriver:
        return self._drivers(ref.cloud, ref.region, ref.project_id)

    @activity.defn
    @kept_alive
    def ensure_project(self, request: EnsureProjectInput) -> EnsureProjectResult:
        """Find the pool's project, or create it (idempotent: found by name on a retry). Never deletes."""
        driver = self._drivers(request.cloud, request.region, None)
        found = call(lambda: driver.find_project(request.project))
        if found is not None:
            return EnsureProjectResult(project_id=found, created=False)
        if not request.create:
            raise ApplicationError(
                f"project {request.project!r} not found in cloud {request.cloud}",
                type=PROJECT_MISSING,
                non_retryable=True,
            )
        return EnsureProjectResult(project_id=call(lambda: driver.create_project(request.project)), created=True)

    def _resolve(self, ref: ServerRef) -> ServerInfo | None:
        driver = self._driver(ref)
        if ref.server_id:
            return call(lambda: driver.get(ref.server_id or ""))
        found = call(lambda: driver.find_by_desktop(ref.desktop_id))
        return found[0] if found else None

    @activity.defn
    @kept_alive
    def provision_server(self, request: CreateServerInput) -> WaitServerResult:
        """Create (or find, after a crash) and wait until ACTIVE, holding one build slot of the cloud."""
        with self.limits.slot(request.ref.cloud, "build"):
            created = self._find_or_create(request)
            beat(created.server_id)
            ref = dataclasses.replace(request.ref, server_id=created.server_id)
            server = self._wait_for(
                ref,
                ("ACTIVE",),
                self._build_timeout(request.build_timeout_s),
                request.poll_interval_s,
                fresh_first=not created.created,  # a new server's create answer is in the watch
            )
        return WaitServerResult(server_id=server.id, status=server.status, address=server.address)

    @activity.defn
    @kept_alive
    def create_server(self, request: CreateServerInput) -> CreateServerResult:
        return self._find_or_create(request)

    def _find_or_create(self, request: CreateServerInput) -> CreateServerResult:
        driver = self._driver(request.ref)
        # Only a retry (or a later call, `look_first`) can find a server of its own: an earlier
        # attempt's create may have reached the cloud. A first attempt spares the cloud a listing.
        if activity.info().attempt > 1 or request.look_first:
            existing = call(lambda: driver.find_by_desktop(request.ref.desktop_id))
            if existing:
                return CreateServerResult(server_id=existing[0].id, created=False)
        metadata = {
            **request.template.metadata,
            "deskpool_pool": request.pool_id,
            "deskpool_desktop": request.ref.desktop_id,
            "deskpool_template_version": str(request.template_version),
        }
        if self._agent_key:
            # The in-guest agent reads this from the metadata service to report events.
            metadata["deskpool_agent_secret"] = agent_secret(self._agent_key, request.ref.desktop_id)
        server_request = ServerRequest(
            name=request.name,
            desktop_id=request.ref.desktop_id,
            pool_id=request.pool_id,
            template_version=request.template_version,
            template=request.template,
            metadata=metadata,
        )
        server = call(lambda: driver.create(server_request))
        self.watches.of(request.ref.cloud, request.ref.region, request.ref.project_id).note(server)
        return CreateServerResult(server_id=server.id, created=True)

    @activity.defn
    @kept_alive
    def wait_server_active(self, request: WaitServerInput) -> WaitServerResult:
        timeout_s = self._build_timeout(request.build_timeout_s)
        server = self._wait_for(request.ref, ("ACTIVE",), timeout_s, request.poll_interval_s)
        return WaitServerResult(server_id=server.id, status=server.status, address=server.address)

    @activity.defn
    @kept_alive
    def power_server(self, request: PowerServerInput) -> PowerServerResult:
        """Bring the server to the action's end state. Decided on a settled server: while
        Nova is still stopping, a server reads ACTIVE, so the status alone would lie.

        Start and stop are idempotent by the state (done when the server already is there).
        A reboot is asked for once: the attempt heartbeats that it asked, and a retry after
        that only waits for ACTIVE again (a worker that dies between the request and the
        heartbeat leaving the server may reboot it twice: the one case a retry repeats)."""
        driver = self._driver(request.ref)
        rebooted = request.action in REBOOTS and requested_before(REBOOT_REQUESTED)
        marker = REBOOT_REQUESTED if rebooted else None
        server = self._settle(request.ref, request.wait_timeout_s, marker)
        action = request.action
        if action is PowerAction.REBOOT_SOFT and server.status == "SHUTOFF" and not rebooted:
            action = PowerAction.START  # Nova refuses to reboot a stopped server; a restart means: up
        target = TARGET_STATUS[action]
        if action in REBOOTS:
            if not rebooted:
                # A 409 (wrong state, e.g. still rebooting) maps to a retryable error.
                call(lambda: driver.reboot(server.id, hard=action is PowerAction.REBOOT_HARD))
                beat(REBOOT_REQUESTED)
            marker = REBOOT_REQUESTED
        elif server.status != target:
            start_or_stop = driver.start if action is PowerAction.START else driver.stop
            call(lambda: start_or_stop(server.id))
        done = self._wait_for(request.ref, (target,), request.wait_timeout_s, 0.5, marker)
        return PowerServerResult(status=done.status)

    @activity.defn
    @kept_alive
    def rebuild_server(self, request: RebuildServerInput) -> RebuildServerResult:
        """Rebuild from the image and leave the desktop running (Nova keeps a stopped one stopped)."""
        driver = self._driver(request.ref)
        # An attempt that already issued the rebuild heartbeated so (and every heartbeat after
        # says so too); a retry after it only waits (a second rebuild would be harmless, but slow).
        rebuilt = requested_before(REBUILD_REQUESTED)
        server = self._settle(request.ref, request.build_timeout_s, REBUILD_REQUESTED if rebuilt else None)
        if not rebuilt:
            call(lambda: driver.rebuild(server.id, request.image))
            beat(REBUILD_REQUESTED)
        done = self._wait_for(request.ref, ("ACTIVE", "SHUTOFF"), request.build_timeout_s, 0.5, REBUILD_REQUESTED)
        if done.status == "SHUTOFF":
            call(lambda: driver.start(done.id))
            done = self._wait_for(request.ref, ("ACTIVE",), request.build_timeout_s, 0.5, REBUILD_REQUESTED)
        return RebuildServerResult(status=done.status, address=done.address)

    @activity.defn
    @kept_alive
    def console_output(self, request: ConsoleOutputInput) -> ConsoleOutputResult:
        driver = self._driver(request.ref)
        server = self._require(request.ref)
        return ConsoleOutputResult(output=call(lambda: driver.console_output(server.id, request.lines)))

    @activity.defn
    @kept_alive
    def console_url(self, request: ConsoleUrlInput) -> ConsoleUrlResult:
        driver = self._driver(request.ref)
        server = self._require(request.ref)
        console_type, url = call(lambda: driver.console_url(server.id))
        return ConsoleUrlResult(console_type=console_type, url=url)

    @activity.defn
    @kept_alive
    def delete_server(self, request: DeleteServerInput) -> DeleteServerResult:
        """Delete and wait until gone, holding one delete slot of the cloud; 'not found' is success."""
        with self.limits.slot(request.ref.cloud, "delete"):
            return self._delete(request)

    def _delete(self, request: DeleteServerInput) -> DeleteServerResult:
        driver = self._driver(request.ref)
        existed = False
        ids = [request.ref.server_id] if request.ref.server_id else []
        ids += [s.id for s in call(lambda: driver.find_by_desktop(request.ref.desktop_id)) if s.id not in ids]
        for server_id in ids:
            # The delete's own answer says whether the server was there (404: already gone).
            existed = call(lambda sid=server_id: driver.delete(sid)) or existed  # type: ignore[misc]
        deadline = time.monotonic() + request.wait_timeout_s
        while any(call(lambda sid=sid: driver.get(sid)) is not None for sid in ids):  # type: ignore[misc]
            if time.monotonic() > deadline:
                raise ApplicationError("server still exists after delete; will retry")
            beat("deleting")
            self._sleep(0.5)
        return DeleteServerResult(existed=existed)

    @activity.defn
    @kept_alive
    def detach_server(self, request: DetachServerInput) -> DetachServerResult:
        """Make the desktop's server an independent server: deskpool's tags, then its metadata,
        stripped; nothing else about the server changes.

        Tags first: the reconciler lists servers by the `deskpool` tag, so from then on it
        never sees this one (while the metadata still named the owner, a listed server was
        still owned). Idempotent: a retry finds the server by id and strips what is left.
        Every error is raised retryable (see DETACH_RETRY in workflows/desktop_steps.py).
        """
        driver = self._driver(request.ref)
        try:
            server = self._resolve(request.ref)
            if server is None:
                return DetachServerResult(existed=False)
            tags = [DESKPOOL_TAG, desktop_tag(request.ref.desktop_id)]
            call(lambda: driver.remove_tags(server.id, tags))
            keys = sorted(k for k in (server.metadata or {}) if k.startswith(METADATA_PREFIX))
            call(lambda: driver.delete_metadata(server.id, keys))
        except ApplicationError as err:
            if not err.non_retryable:
                raise
            raise ApplicationError(f"{err.message}; retrying the detach", type=err.type) from err
        return DetachServerResult(existed=True, server_id=server.id, tags=tags, metadata_keys=keys)

    def _require(self, ref: ServerRef) -> ServerInfo:
        server = self._resolve(ref)
        if server is None:
            raise ApplicationError(
                f"server of desktop {ref.desktop_id} has vanished", type=SERVER_FAILED, non_retryable=True
            )
        return server

    def _watched(self, ref: ServerRef) -> ServerInfo:
        """`_require` through the cloud project's shared watch, once the server id is known."""
        if not ref.server_id:
            return self._require(ref)
        server_id = ref.server_id
        server = self.watches.of(ref.cloud, ref.region, ref.project_id).current(server_id, self._driver(ref))
        if server is None:
            raise ApplicationError(
                f"server of desktop {ref.desktop_id} has vanished", type=SERVER_FAILED, non_retryable=True
            )
        return server

    def _settle(self, ref: ServerRef, timeout_s: float, marker: str | None = None) -> ServerInfo:
        """Wait until Nova has no action in progress on the server."""
        deadline = time.monotonic() + timeout_s
        while True:
            server = self._require(ref)
            if server.task_state is None or time.monotonic() > deadline:
                return server
            beat(*_progress(marker, f"{server.status}/{server.task_state}"))
            self._sleep(0.5)

    def _wait_for(
        self,
        ref: ServerRef,
        targets: tuple[str, ...],
        timeout_s: float,
        interval_s: float,
        marker: str | None = None,
        *,
        fresh_first: bool = True,
    ) -> ServerInfo:
        """Poll until the server is settled in one of `targets`; ERROR and a timeout are failures.
        Heartbeats carry `marker` first, when given (see `requested_before`). The first look is a
        GET (`fresh_first`) unless the caller has just told the watch what the cloud answered: after
        an action, what the watch held before it (ACTIVE, before a reboot) would end the wait early."""
        if fresh_first and ref.server_id:
            self.watches.of(ref.cloud, ref.region, ref.project_id).forget(ref.server_id)
        deadline = time.monotonic() + timeout_s
        while True:
            server = self._watched(ref)
            if server.status in targets and server.task_state is None:
                return server
            if server.status == "ERROR":
                reason = f": {server.fault}" if server.fault else ""
                raise ApplicationError(
                    f"server {server.id} went to ERROR{reason}", type=SERVER_FAILED, non_retryable=True
                )
            if time.monotonic() > deadline:
                raise ApplicationError(
                    f"server {server.id} stuck in {server.status} for {timeout_s:.0f}s",
                    type=SERVER_FAILED,
                    non_retryable=True,
                )
            beat(*_progress(marker, server.status))
            # A look is cheap now (the shared listing): look when the watch lists next.
            if self.watches.interval_s > 0:
                self._sleep(min(interval_s, self.watches.of(ref.cloud, ref.region, ref.project_id).next_look_in()))
            else:
                self._sleep(interval_s)


def _progress(marker: str | None, status: str) -> tuple[str, ...]:
    return (marker, status) if marker else (status,)
