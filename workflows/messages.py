"""Every dataclass that crosses the Temporal boundary between API, pools and desktops.

One dataclass in and one out for each workflow, update, signal and query;
a field added later gets a default so recorded histories still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.pool_spec import PoolSpec, Template


class DesktopStatus(StrEnum):
    PROVISIONING = "provisioning"
    READY = "ready"  # idle and running: the hot reserve
    STANDBY = "standby"  # idle and powered off: the warm tier of revert/manual pools
    STARTING = "starting"  # assigned while powered off; booting for its user
    ASSIGNED = "assigned"  # given to a user who has not connected yet
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RELEASING = "releasing"  # being destroyed or reverted after use
    AWAITING_RETURN = "awaiting_return"  # manual pools: until an administrator returns it
    FAILED = "failed"
    DESTROYED = "destroyed"
    # Left its pool on the pool's removal, its server kept as an independent server
    # (deskpool's tags and metadata stripped): final, like destroyed.
    DETACHED = "detached"


# --- the pool workflow --------------------------------------------------------


@dataclass
class ClaimRequest:
    user: str
    # Idempotency key: the same request id always gets the same answer.
    request_id: str


@dataclass
class ClaimBatchInput:
    claims: list[ClaimRequest]


class ClaimStatus(StrEnum):
    ASSIGNED = "assigned"
    WAITING = "waiting"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ENDED = "ended"  # the desktop given for this claim has been released, or its pool removed


@dataclass
class ClaimOutcome:
    request_id: str
    user: str
    status: ClaimStatus
    desktop_id: str | None = None
    desktop_name: str | None = None
    address: str | None = None
    # False while an assigned desktop still boots (a powered-off standby).
    desktop_ready: bool = False
    # Place in line, 1-based, while waiting.
    position: int | None = None
    # True while waiting for a desktop being created; False when the pool is full.
    preparing: bool = False
    reason: str = ""


@dataclass
class ClaimBatchResult:
    outcomes: list[ClaimOutcome]


@dataclass
class ClaimStatusInput:
    request_id: str


@dataclass
class ClaimStatusesInput:
    """Many claims' status in one query (api/claim_status_board.py)."""

    request_ids: list[str]


@dataclass
class ClaimStatusesResult:
    outcomes: list[ClaimOutcome]


class ReportKind(StrEnum):
    READY = "ready"  # idle, up or standby, available to the pool
    ASSIGNMENT_REJECTED = "assignment_rejected"  # could not take the user the pool sent
    RELEASED = "released"  # user's session over; the desktop is being destroyed or reverted
    AWAITING_RETURN = "awaiting_return"
    GONE = "gone"  # server deleted, workflow ending
    # Still provisioning, but its creates keep failing for a reason a retry may cure (the cloud
    # answers 5xx or 429, or cannot be reached): the pool shows it and holds further creates.
    CLOUD_TROUBLE = "cloud_trouble"


@dataclass
class DesktopReport:
    """A desktop telling its pool about a transition the pool cares about."""

    desktop_id: str
    kind: ReportKind
    powered_on: bool = True
    address: str | None = None
    user: str | None = None
    request_id: str | None = None
    failed: bool = False
    reason: str = ""
    # The cloud error type behind a failure (activities/cloud_errors.py), if any.
    failure_type: str = ""


@dataclass
class PoolCounts:
    provisioning: int = 0
    ready: int = 0
    standby: int = 0
    assigned: int = 0
    releasing: int = 0
    awaiting_return: int = 0
    removing: int = 0
    waiting: int = 0

    @property
    def live(self) -> int:
        return (
            self.provisioning
            + self.ready
            + self.standby
            + self.assigned
            + self.releasing
            + self.awaiting_return
            + self.removing
        )


@dataclass
class PoolStatusInput:
    pass


@dataclass
class PoolStatusResult:
    pool_id: str
    spec: PoolSpec
    template_version: int
    counts: PoolCounts
    restrained_reason: str = ""
    consecutive_failures: int = 0
    # While the pool is being removed: what it does with its desktops (a RemovalMode value).
    removal: str = ""


@dataclass
class AssignDesktopInput:
    """Personal pools: an administrator assigns a desktop to a user."""

    user: str
    request_id: str
    desktop_id: str | None = None


class RemovalMode(StrEnum):
    """What a pool's removal does with its desktops (oVirt seed: destroyed or detached first)."""

    DESTROY = "destroy"  # sessions end, servers deleted
    DETACH = "detach"  # servers kept as independent servers, outside deskpool
    NONE = "none"  # only a pool without live desktops


@dataclass
class RemovePoolInput:
    # A RemovalMode value; a plain string so an unknown one reaches the validator's clear refusal.
    # The default refuses while desktops live: nothing is deleted unless asked for.
    desktops: str = RemovalMode.NONE.value
    reason: str = ""


@dataclass
class RemovePoolResult:
    accepted: bool
    # Desktops still to leave the pool when the request was taken.
    live_desktops: int


@dataclass
class UserClaimsInput:
    user: str


@dataclass
class UserClaimsResult:
    """A user's current claims in one pool: assigned ones, then waiting ones in line order."""

    claims: list[ClaimOutcome]


@dataclass
class DesktopHolderInput:
    desktop_id: str


@dataclass
class DesktopHolderResult:
    """Who the pool has given the desktop to (None: nobody), before the desktop may know it."""

    user: str | None = None


@dataclass
class UpdateSpecInput:
    spec: PoolSpec


@dataclass
class UpdateSpecResult:
    template_version: int


# --- the desktop workflow -----------------------------------------------------


@dataclass
class DesktopWorkflowInput:
    pool_id: str
    desktop_id: str
    name: str
    number: int
    template_version: int
    template: Template
    spec: PoolSpec
    power_on: bool = True
    # Carried across continue-as-new; None on the first run.
    carried: DesktopSnapshot | None = None
    # The pool's cloud project; None: the clouds.yaml entry's own.
    project_id: str | None = None


@dataclass
class DesktopSnapshot:
    status: DesktopStatus
    server_id: str | None = None
    address: str | None = None
    powered_on: bool = True
    user: str | None = None
    request_id: str | None = None
    assigned_at: datetime | None = None
    connected_at: datetime | None = None
    session_started_at: datetime | None = None
    disconnected_at: datetime | None = None
    idle_since: datetime | None = None
    sequence: int = 0
    # Carried across continue-as-new too: what the agent must still do, the event log.
    pending_command: str | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class DesktopWorkflowResult:
    desktop_id: str
    final_status: DesktopStatus
    reason: str = ""


@dataclass
class AssignInput:
    user: str
    request_id: str


class SessionEventKind(StrEnum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    LOGOFF = "logoff"
    IDLE = "idle"
    ACTIVE = "active"
    AGENT_READY = "ready"


@dataclass
class SessionEvent:
    """From the in-guest agent or the connection gateway, via the API."""

    kind: SessionEventKind


@dataclass
class ReleaseInput:
    reason: str = "released by user"
    # True: give the desktop back now (Release, immediate release). False: the
    # user's Disconnect; the disconnected-retention buffer starts instead.
    immediate: bool = True
    # The pool's immediate release of disconnected desktops: refused unless the desktop is
    # disconnected when the update is taken (its user may have come back meanwhile).
    only_if_disconnected: bool = False


@dataclass
class ReleaseResult:
    accepted: bool
    status: DesktopStatus


@dataclass
class RemoveInput:
    """Pool to desktop: leave the pool (scale down, recreate: idle desktops only).

    On the pool's removal: `force` also takes a desktop in use (its assignment ends);
    `detach` keeps the server, stripped of deskpool's tags and metadata, instead of deleting it.
    """

    reason: str
    force: bool = False
    detach: bool = False


@dataclass
class PowerInput:
    on: bool


class PowerOperation(StrEnum):
    """What an administrator does to a desktop's power (`DesktopWorkflow.operate_power`)."""

    ON = "on"
    OFF = "off"
    RESTART = "restart"  # the guest is asked to reboot (Nova SOFT)
    FORCE_RESTART = "force_restart"  # reset, whatever the guest does (Nova HARD)


@dataclass
class OperatePowerInput:
    operation: PowerOperation
    actor: str = "admin"


@dataclass
class OperatePowerResult:
    accepted: bool
    status: DesktopStatus
    # False: the same operation was already under way or queued; nothing was added.
    queued: bool = True


@dataclass
class DetachInput:
    """An administrator detaches one powered-off desktop from its pool: its server is kept as an
    independent server (deskpool's tags and metadata stripped, everything else untouched)."""

    reason: str


@dataclass
class DetachResult:
    accepted: bool
    status: DesktopStatus


@dataclass
class DesktopStatusInput:
    pass


@dataclass
class DesktopStatusResult:
    desktop_id: str
    pool_id: str
    name: str
    template_version: int
    snapshot: DesktopSnapshot
    pending_command: str | None = None
    events: list[str] = field(default_factory=list)
    cloud: str = ""
    region: str | None = None
    image: str = ""
    flavor: str = ""
    # The cloud project of the desktop's server (None: the clouds.yaml entry's own).
    project_id: str | None = None


@dataclass
class ServerLostInput:
    """From the reconciler: this desktop's server vanished, failed or was changed outside."""

    reason: str


@dataclass
class ReturnInput:
    """Manual pools: an administrator returns a used desktop (it is reverted first)."""

    actor: str = "admin"


def pool_workflow_id(pool_id: str) -> str:
    return f"pool/{pool_id}"


def desktop_workflow_id(desktop_id: str) -> str:
    return f"desktop/{desktop_id}"
