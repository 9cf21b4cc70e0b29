"""Persisted records: servers, projects and security groups created at run time.

A server's state is stored as a *settled* ``vm_state`` plus at most one
pending task with a wall-clock due time. The visible status is computed from
those on every read (see ``lifecycle``), so nothing needs a timer and a
restart simply continues where the timestamps say the server is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Port(BaseModel):
    network_id: str
    network_name: str
    ip: str
    mac: str


class Volume(BaseModel):
    """A volume from block_device_mapping_v2 (there is no Cinder behind it)."""

    id: str
    size_gb: int
    volume_type: str | None = None
    boot_index: int | None = None
    image_id: str | None = None
    delete_on_termination: bool = False


class ServerRecord(BaseModel):
    id: str
    name: str
    project_id: str
    user_id: str
    # "" for boot-from-volume servers, which is what Nova returns for them.
    image_id: str
    flavor_id: str
    availability_zone: str
    ports: list[Port] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    user_data: str | None = None
    key_name: str | None = None
    description: str | None = None
    hostname: str | None = None
    volumes: list[Volume] = Field(default_factory=list)
    scheduler_hints: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float
    launched_at: float | None = None

    # --- state machine (see lifecycle.py) ---
    # Settled state: building | active | stopped | error
    vm_state: str = "building"
    # Pending task (spawning, powering-off, rebooting, deleting, ...)
    task_state: str | None = None
    # When the task completes; None with a task set = never (stuck build).
    task_due: float | None = None
    # vm_state once the task completes, or "deleted".
    task_result: str | None = None
    # Nova fault dict shown once the server is in ERROR.
    pending_fault: dict[str, Any] | None = None
    fault: dict[str, Any] | None = None
    # Bumped on rebuild so console output changes like a real reinstall.
    generation: int = 0


class ProjectRecord(BaseModel):
    id: str
    name: str
    description: str = ""
    domain_id: str = "default"
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)


class SecurityGroupRule(BaseModel):
    id: str
    direction: str
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None


class SecurityGroupRecord(BaseModel):
    id: str
    name: str
    description: str = ""
    project_id: str
    rules: list[SecurityGroupRule] = Field(default_factory=list)
    created_at: float
    stateful: bool = True
