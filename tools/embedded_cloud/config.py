"""Configuration of the embedded cloud: seed data, delays, faults and limits.

Everything here is a pydantic model so the same shapes are used for the
command line (``--config FILE``), the in-process test harness and the
``/_admin`` endpoints that change faults and delays at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    # Typos in a config file or admin request should fail loudly, not be
    # silently ignored.
    model_config = ConfigDict(extra="forbid")


class ImageSeed(_Strict):
    name: str
    size_bytes: int = 8 * 1024**3
    min_disk_gb: int = 0
    min_ram_mb: int = 0
    disk_format: str = "qcow2"
    os_distro: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)


class FlavorSeed(_Strict):
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    extra_specs: dict[str, str] = Field(default_factory=dict)


class NetworkSeed(_Strict):
    name: str
    # Fixed IPs for servers on this network are handed out from this range.
    cidr: str = "10.0.0.0/16"
    shared: bool = True


class SecurityGroupSeed(_Strict):
    name: str
    description: str = ""
    # Ingress TCP ports opened by the group (e.g. 3389 for RDP).
    ingress_tcp_ports: list[int] = Field(default_factory=list)


class UserSeed(_Strict):
    name: str
    password: str
    # Default project of the user. Users with the ``admin`` role may also
    # scope tokens to any other project (including ones created at run time).
    project: str
    roles: list[str] = Field(default_factory=lambda: ["admin", "member", "reader"])


class ApplicationCredentialSeed(_Strict):
    """Keystone application credential (the auth type deskpool's deployment
    docs recommend), bound to ``project`` or else the user's own project."""

    id: str
    name: str
    secret: str
    user: str
    project: str | None = None


class SeedData(_Strict):
    region: str = "RegionOne"
    availability_zones: list[str] = Field(default_factory=lambda: ["nova"])
    projects: list[str] = Field(default_factory=lambda: ["deskpool"])
    users: list[UserSeed] = Field(
        default_factory=lambda: [UserSeed(name="deskpool", password="deskpool", project="deskpool")]
    )
    application_credentials: list[ApplicationCredentialSeed] = Field(
        default_factory=lambda: [
            ApplicationCredentialSeed(id="deskpool-app-cred", name="deskpool", secret="deskpool", user="deskpool")
        ]
    )
    images: list[ImageSeed] = Field(
        default_factory=lambda: [
            ImageSeed(
                name="win11-golden",
                size_bytes=24 * 1024**3,
                min_disk_gb=64,
                min_ram_mb=4096,
                os_distro="windows",
                properties={
                    "os_type": "windows",
                    "hw_machine_type": "q35",
                    "hw_firmware_type": "uefi",
                },
            ),
            ImageSeed(
                name="ubuntu-desktop",
                size_bytes=6 * 1024**3,
                min_disk_gb=20,
                min_ram_mb=2048,
                os_distro="ubuntu",
                properties={"os_type": "linux"},
            ),
        ]
    )
    flavors: list[FlavorSeed] = Field(
        default_factory=lambda: [
            FlavorSeed(name="vdi.small", vcpus=2, ram_mb=4096, disk_gb=64),
            FlavorSeed(name="vdi.medium", vcpus=4, ram_mb=8192, disk_gb=80),
            FlavorSeed(name="vdi.large", vcpus=8, ram_mb=16384, disk_gb=120),
        ]
    )
    networks: list[NetworkSeed] = Field(default_factory=lambda: [NetworkSeed(name="vdi-net", cidr="10.20.0.0/16")])
    security_groups: list[SecurityGroupSeed] = Field(
        default_factory=lambda: [
            SecurityGroupSeed(
                name="vdi-rdp",
                description="RDP access to virtual desktops",
                ingress_tcp_ports=[3389],
            ),
            SecurityGroupSeed(name="default", description="Default security group"),
        ]
    )

    @model_validator(mode="after")
    def _references_exist(self) -> SeedData:
        # Catch seed typos at start instead of as puzzling 401s later.
        users = {u.name for u in self.users}
        for user in self.users:
            if user.project not in self.projects:
                raise ValueError(f"user {user.name!r}: unknown project {user.project!r}")
        for credential in self.application_credentials:
            if credential.user not in users:
                raise ValueError(f"application credential {credential.id!r}: unknown user {credential.user!r}")
            if credential.project is not None and credential.project not in self.projects:
                raise ValueError(f"application credential {credential.id!r}: unknown project {credential.project!r}")
        if not self.availability_zones:
            raise ValueError("at least one availability zone is needed")
        if not self.users:
            raise ValueError("at least one user is needed (clouds.yaml uses the first)")
        return self


class Delays(_Strict):
    """Seconds each asynchronous transition takes (0 = done on next read)."""

    build: float = Field(2.0, ge=0)
    delete: float = Field(0.5, ge=0)
    stop: float = Field(0.5, ge=0)
    start: float = Field(0.5, ge=0)
    reboot: float = Field(0.5, ge=0)
    rebuild: float = Field(1.0, ge=0)


class Faults(_Strict):
    """Injected failures and limits; all can be changed at run time."""

    # Fraction of created servers that end in ERROR after the build delay.
    create_error_rate: float = Field(0.0, ge=0, le=1)
    # Fraction of created servers that stay in BUILD forever.
    stuck_build_rate: float = Field(0.0, ge=0, le=1)
    # Fractions of compute API requests answered 409 / 429 / 503 up front.
    conflict_rate: float = Field(0.0, ge=0, le=1)
    throttle_rate: float = Field(0.0, ge=0, le=1)
    unavailable_rate: float = Field(0.0, ge=0, le=1)
    # Every API request (identity included) answers 503 while this is on.
    outage: bool = False
    # Value of the Retry-After header on every 429.
    retry_after_seconds: int = Field(1, ge=0)
    # Nova "instances" quota per project; None means unlimited.
    instances_quota: int | None = Field(None, ge=0)
    # Servers allowed in BUILD at once (stuck builds count); None = no limit.
    max_builds_in_flight: int | None = Field(None, ge=0)
    # Status returned when max_builds_in_flight is hit (403 like Nova quota).
    build_limit_status: Literal[403, 409, 429] = 403
    # Global API request rate limit over a sliding 1 s window; None = off.
    max_requests_per_second: float | None = Field(None, gt=0)


class CloudConfig(_Strict):
    seed: SeedData = Field(default_factory=SeedData)
    delays: Delays = Field(default_factory=Delays)
    faults: Faults = Field(default_factory=Faults)
    # Seeds the generator behind every fault decision (reproducible tests).
    random_seed: int = 0
    # Where servers, created projects and the token key are kept; None keeps
    # everything in memory (lost on restart).
    data_dir: Path | None = None
    token_ttl_seconds: int = Field(3600, gt=0)
    # Highest compute microversion advertised; openstacksdk negotiates
    # min(this, what each resource class supports).
    nova_max_microversion: str = "2.90"
    # Base URL put into the service catalog. None = derived from each
    # request's Host header, which is right unless behind a proxy.
    public_url: str | None = None


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML/JSON config file into a dict for ``CloudConfig``."""
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at top level")
    return data
