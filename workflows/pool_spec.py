"""The pool definition an administrator submits, with every rule from the seeds.

A pydantic dataclass: it crosses the Temporal boundary as an ordinary
dataclass (the house style) and validates on construction, so the API, the
workflow input and a decoded history all obey the same rules. Error messages
name the rule, pydantic names the field.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

NAME_RE = re.compile(r"[A-Za-z0-9 _-]{3,128}")
USER_GROUP_RE = re.compile(r"[A-Za-z0-9._-]{3,100}")
# 3 to 15 characters in all, the optional trailing "-" included (cloud seed).
MASK_RE = re.compile(r"(?=.{3,15}\Z)[a-z]+-?")
# oVirt's MaxVmsInPool default; an operator may lower a pool's ceiling.
DEFAULT_MAX_DESKTOPS_CEILING = 1000


class Assignment(StrEnum):
    FLOATING = "floating"  # the seeds' sessional / dynamic / automatic
    PERSONAL = "personal"  # the seeds' personalized


class ReleasePolicy(StrEnum):
    DESTROY = "destroy"  # delete the VM after use: every trace wiped
    REVERT = "revert"  # rebuild from the template and return to the pool
    MANUAL = "manual"  # returned (and reverted) only when an administrator says so


class DiskType(StrEnum):
    HDD = "hdd"
    SSD = "ssd"
    HIGH_IOPS_SSD = "high-iops-ssd"


def _is_proxy_address(value: str) -> bool:
    """protocol://host:port, the host optionally in brackets (an IPv6 address)."""
    if value != value.strip() or "\n" in value:
        return False
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return False
    return (
        bool(parts.scheme and parts.hostname and port and 1 <= port <= 65535)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )


Seconds = Annotated[int, Field(ge=0, le=366 * 24 * 3600)]


@dataclass
class Template:
    """What a desktop is made of; a change makes a new template version."""

    image: str = Field(min_length=1, max_length=255)
    flavor: str = Field(min_length=1, max_length=255)
    # None: the flavor's own disk. Set: boot from a volume of this size.
    disk_size_gb: int | None = Field(default=None, ge=1, le=65536)
    disk_type: DiskType | None = None
    networks: list[str] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    user_data: str = Field(default="", max_length=65535)
    availability_zone: str | None = None
    server_group: str | None = None
    scheduler_hints: dict[str, str] = Field(default_factory=dict)

    @field_validator("disk_type")
    @classmethod
    def _volume_needs_size(cls, value: DiskType | None, info: ValidationInfo) -> DiskType | None:
        if value is not None and info.data.get("disk_size_gb") is None:
            raise ValueError("needs disk_size_gb: a disk_type means booting from a volume of that size")
        return value


@dataclass
class Peripherals:
    usb: bool = False
    clipboard: bool = True
    audio: bool = True
    printers: bool = False
    drives: bool = False
    smart_cards: bool = False


@dataclass
class Entitlement:
    """Who may use the pool: resolved by the directory into one de-duplicated user set."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    org_units: list[str] = Field(default_factory=list)
    # The cloud seed's single "user group" field.
    user_group: str | None = None

    @field_validator("user_group")
    @classmethod
    def _user_group(cls, value: str | None) -> str | None:
        if value is not None and not USER_GROUP_RE.fullmatch(value):
            raise ValueError("must be 3-100 characters: Latin letters, digits, '-', '_', '.'")
        return value


@dataclass
class Timers:
    # Buffer after a disconnect before the desktop is released; 0 = at once.
    disconnected_retention_s: Seconds = 1800
    # Disconnect a user idle this long; 0 = never.
    inactivity_timeout_s: Seconds = 0
    # End a session this long after its first connect; None = no limit.
    max_session_s: Seconds | None = None
    # How long a claim may wait in line when the pool is full.
    claim_wait_timeout_s: Seconds = 3600
    # A claimed desktop nobody connects to within this is released (floating pools).
    first_connect_timeout_s: Seconds = 900


# validate_default: the sizing rules must also hold for defaulted fields.
@dataclass(config=ConfigDict(validate_default=True))
class PoolSpec:
    # Field order matters: a sizing rule is checked on the later field of the
    # pair, with the earlier one in `info.data`, so errors name a real field.
    name: str
    template: Template
    naming_mask: str
    naming_digits: int = Field(default=3, ge=1, le=6)
    project: str = Field(default="default", min_length=1, max_length=64)
    description: str = Field(default="", max_length=250)
    comment: str = Field(default="", max_length=4000)
    assignment: Assignment = Assignment.FLOATING
    release: ReleasePolicy = ReleasePolicy.DESTROY
    max_desktops_ceiling: int = Field(default=DEFAULT_MAX_DESKTOPS_CEILING, ge=1, le=100_000)
    min_desktops: int = Field(default=0, ge=0)
    max_desktops: int = Field(default=10, ge=1)
    prestarted: int = Field(default=1, ge=0)
    max_desktops_per_user: int = Field(default=1, ge=1, le=32767)
    timers: Timers = Field(default_factory=Timers)
    entitlement: Entitlement = Field(default_factory=Entitlement)
    peripherals: Peripherals = Field(default_factory=Peripherals)
    spice_proxy: str | None = None
    delete_protection: bool = False
    enabled: bool = True
    # Creations in flight for this pool at once (the anchors' default is 30).
    max_concurrent_creations: int = Field(default=30, ge=1, le=1000)
    cloud: str = Field(default="embedded", min_length=1, max_length=64)
    region: str | None = None
    # An existing project (name or id) for the pool's desktops; None: the
    # clouds.yaml entry's own project, unless auto_create_project.
    cloud_project: str | None = Field(default=None, min_length=1, max_length=64)
    # Create a project "<pool name>-<8 random chars>" (dynamic-pool seed); never deleted.
    auto_create_project: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("must be 3-128 characters: Latin letters, digits, '-', '_' and spaces")
        return value

    @field_validator("naming_mask")
    @classmethod
    def _mask(cls, value: str) -> str:
        if not MASK_RE.fullmatch(value):
            raise ValueError("must be 3-15 characters: lowercase Latin letters, optionally ending in '-'")
        return value

    @field_validator("spice_proxy")
    @classmethod
    def _spice_proxy(cls, value: str | None) -> str | None:
        if value is not None and not _is_proxy_address(value):
            raise ValueError("must have the form protocol://[host]:[port] with a port from 1 to 65535")
        return value

    @field_validator("max_desktops")
    @classmethod
    def _max(cls, value: int, info: ValidationInfo) -> int:
        digits, ceiling, minimum = (info.data.get(k) for k in ("naming_digits", "max_desktops_ceiling", "min_desktops"))
        if minimum is not None and minimum > value:
            raise ValueError(f"must not be below min_desktops ({minimum})")
        if ceiling is not None and value > ceiling:
            raise ValueError(f"must not exceed the pool ceiling of {ceiling}")
        if digits is not None and value > 10**digits - 1:
            raise ValueError(f"{digits} naming digits allow at most {10**digits - 1}")
        return value

    @field_validator("prestarted")
    @classmethod
    def _prestarted(cls, value: int, info: ValidationInfo) -> int:
        data = info.data
        maximum, minimum = data.get("max_desktops"), data.get("min_desktops")
        if maximum is not None and value > maximum:
            raise ValueError(f"must not exceed max_desktops ({maximum})")
        if data.get("assignment") is Assignment.PERSONAL:
            if value > 0:
                raise ValueError("must be 0: a hot reserve is for floating pools only")
            return value
        destroy = data.get("release") is ReleasePolicy.DESTROY
        if value > 0 and minimum is not None and minimum == maximum:
            hint = "; a destroy pool needs a reserve, so raise max_desktops above min_desktops" if destroy else ""
            raise ValueError(f"must be 0 when min_desktops equals max_desktops (no room for a hot reserve){hint}")
        if destroy and value < 1:
            raise ValueError("must be at least 1 for a pool whose desktops are destroyed after use")
        return value

    @field_validator("auto_create_project")
    @classmethod
    def _one_project_source(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("cloud_project"):
            raise ValueError("must be false when cloud_project names an existing project")
        return value

    def desktop_name(self, number: int) -> str:
        return f"{self.naming_mask}{number:0{self.naming_digits}d}"


# The store keeps a pool's definition as JSON; these are the one way in and out.
_SPEC = TypeAdapter(PoolSpec)
_ENTITLEMENT = TypeAdapter(Entitlement)


def spec_to_json(spec: PoolSpec) -> dict[str, Any]:
    result: dict[str, Any] = _SPEC.dump_python(spec, mode="json")
    return result


def spec_from_json(data: dict[str, Any]) -> PoolSpec:
    return _SPEC.validate_python(data)


def entitlement_from_json(spec: dict[str, Any]) -> Entitlement:
    """Only the entitlement of a stored definition (the claim path needs no more)."""
    return _ENTITLEMENT.validate_python(spec.get("entitlement", {}))
