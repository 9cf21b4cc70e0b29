"""Inputs and results of every activity the workflows call (cloud, projection)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from workflows.pool_spec import Template


class CloudErrorType:
    """Types of the cloud errors activities raise (ApplicationError.type); workflows read them."""

    QUOTA = "CloudQuotaExceeded"
    BAD_REQUEST = "CloudBadRequest"
    NOT_FOUND = "CloudResourceNotFound"
    CONFLICT = "CloudConflict"
    THROTTLED = "CloudThrottled"
    UNAVAILABLE = "CloudUnavailable"
    SERVER_FAILED = "ServerFailed"
    PROJECT_MISSING = "CloudProjectMissing"


# --- cloud -------------------------------------------------------------------------


@dataclass
class ServerRef:
    """Which server: by id when known, else by the desktop's tag (crash-safe lookups)."""

    cloud: str
    desktop_id: str
    server_id: str | None = None
    region: str | None = None
    project_id: str | None = None


@dataclass
class CreateServerInput:
    ref: ServerRef
    name: str
    pool_id: str
    template_version: int
    template: Template
    # Secrets never travel in workflow inputs; the agent's secret is derived
    # by the activity from the desktop id and the worker's key.
    # BUILD longer than this counts as failed (deleted and replaced).
    build_timeout_s: float = 600.0
    poll_interval_s: float = 1.0
    # A later provisioning call of the same desktop: an earlier call's create may have reached
    # the cloud, so even its first attempt looks for the desktop's server before creating one.
    look_first: bool = False


@dataclass
class CreateServerResult:
    server_id: str
    created: bool  # False when a retry found the server an earlier attempt made


@dataclass
class WaitServerInput:
    ref: ServerRef
    # BUILD longer than this counts as failed (deleted and replaced).
    build_timeout_s: float = 600.0
    poll_interval_s: float = 1.0


@dataclass
class WaitServerResult:
    server_id: str
    status: str
    address: str | None = None


class PowerAction(StrEnum):
    START = "start"
    STOP = "stop"
    REBOOT_SOFT = "reboot_soft"
    REBOOT_HARD = "reboot_hard"


@dataclass
class PowerServerInput:
    ref: ServerRef
    action: PowerAction
    wait_timeout_s: float = 300.0


@dataclass
class PowerServerResult:
    status: str


@dataclass
class RebuildServerInput:
    ref: ServerRef
    image: str
    build_timeout_s: float = 600.0


@dataclass
class RebuildServerResult:
    status: str
    address: str | None = None


@dataclass
class ConsoleOutputInput:
    ref: ServerRef
    lines: int = 200


@dataclass
class ConsoleOutputResult:
    output: str


@dataclass
class ConsoleUrlInput:
    ref: ServerRef


@dataclass
class ConsoleUrlResult:
    """A short-lived console address with a token in it: handle it like a secret."""

    console_type: str
    url: str


@dataclass
class DeleteServerInput:
    ref: ServerRef
    wait_timeout_s: float = 600.0


@dataclass
class DeleteServerResult:
    existed: bool


@dataclass
class DetachServerInput:
    """Leave a desktop's server to itself: deskpool's tags and metadata stripped, the server kept."""

    ref: ServerRef


@dataclass
class DetachServerResult:
    existed: bool  # False when the server was already gone: nothing to keep
    server_id: str | None = None
    # deskpool's tags, taken off (a tag already absent is no error), and the metadata keys deleted.
    tags: list[str] = field(default_factory=list)
    metadata_keys: list[str] = field(default_factory=list)


@dataclass
class EnsureProjectInput:
    cloud: str
    region: str | None
    # An existing project's name or id, or the name to create.
    project: str
    create: bool = False


@dataclass
class EnsureProjectResult:
    project_id: str
    created: bool


# --- read model ------------------------------------------------------------------


@dataclass
class ProjectDesktopInput:
    desktop_id: str
    pool_id: str
    name: str
    state: str
    template_version: int
    sequence: int
    at: datetime
    user: str | None = None
    server_id: str | None = None
    address: str | None = None
    event: str = ""
    gone: bool = False


@dataclass
class ProjectDesktopResult:
    applied: bool


@dataclass
class ProjectPoolInput:
    pool_id: str
    name: str
    project: str
    spec: dict[str, Any]
    template_version: int
    enabled: bool
    waiting: int
    restrained_reason: str
    at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    # The pool's removal is complete: its row goes (its audit events stay).
    removed: bool = False
    removal_mode: str = ""
    removal_reason: str = ""


@dataclass
class ProjectPoolResult:
    applied: bool


# --- reconciliation ----------------------------------------------------------------


@dataclass
class CloudScope:
    cloud: str
    region: str | None = None


@dataclass
class ListTaggedServersResult:
    servers: list[TaggedServerInfo]


@dataclass
class TaggedServerInfo:
    """A server carrying deskpool's tag, as the cloud lists it."""

    server_id: str
    name: str
    status: str
    desktop_id: str | None = None
    image_id: str | None = None
    flavor_name: str | None = None


@dataclass
class SurveyDesktopsResult:
    live: list[LiveDesktopInfo]


@dataclass
class LiveDesktopInfo:
    """A desktop whose workflow is running, as the workflow itself says."""

    desktop_id: str
    server_id: str | None
    status: str
    expected_image_id: str | None = None
    expected_flavor: str | None = None


@dataclass
class DeleteOrphanInput:
    scope: CloudScope
    server_id: str
    name: str
    desktop_id: str | None
    at: datetime


@dataclass
class DeleteOrphanResult:
    deleted: bool
    reason: str = ""
