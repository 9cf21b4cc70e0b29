"""Tables of the store.

The workflows are the source of truth for what exists and who holds it; these
tables are (a) the pool configuration an administrator submitted, (b) a read
model projected from the workflows by activities so the API can list thousands
of desktops without querying thousands of workflows, and (c) the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, **kwargs))


class PoolRecord(SQLModel, table=True):
    __tablename__ = "pool"
    __table_args__ = (UniqueConstraint("project", "name", name="uq_pool_project_name"),)

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    project: str = Field(default="default", max_length=64)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    template_version: int = 1
    enabled: bool = True
    # Projected from the pool workflow: claims in line, why creation is held back.
    waiting: int = 0
    restrained_reason: str = Field(default="", max_length=1000)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class DesktopRecord(SQLModel, table=True):
    __tablename__ = "desktop"
    __table_args__ = (
        Index("ix_desktop_pool_state", "pool_id", "state"),
        Index("ix_desktop_user", "user"),
    )

    id: str = Field(primary_key=True, max_length=128)
    pool_id: str = Field(max_length=64)
    name: str = Field(max_length=64)
    state: str = Field(max_length=32)
    user: str | None = Field(default=None, max_length=256)
    template_version: int = 1
    server_id: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=64)
    # Workflow history events are ordered; a projection carrying an older
    # sequence number than the row must not overwrite it (retries, reorders).
    sequence: int = 0
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_pool_at", "pool_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Idempotency key: an activity retried after a crash writes the same key
    # and the duplicate insert is ignored.
    key: str = Field(max_length=200, unique=True)
    at: datetime = _timestamp()
    actor: str = Field(max_length=256)
    action: str = Field(max_length=64)
    pool_id: str | None = Field(default=None, max_length=64)
    desktop_id: str | None = Field(default=None, max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RoleGrant(SQLModel, table=True):
    """A role given to a directory user or group on a pool, a cloud[/region] or the whole system."""

    __tablename__ = "role_grant"
    __table_args__ = (
        UniqueConstraint("role", "principal_kind", "principal", "scope_kind", "scope", name="uq_role_grant"),
        Index("ix_role_grant_principal", "principal_kind", "principal"),
    )

    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=32)
    principal_kind: str = Field(max_length=16)
    principal: str = Field(max_length=256)
    scope_kind: str = Field(max_length=16)
    # Pool id, "cloud" or "cloud/region"; empty for system scope.
    scope: str = Field(default="", max_length=128)
    granted_by: str = Field(max_length=256)
    granted_at: datetime = _timestamp()


class ApiToken(SQLModel, table=True):
    """An administrator's API token. Only a hash of its secret is kept; the secret is shown once."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_owner", "owner"),)

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128)
    owner: str = Field(max_length=256)
    secret_sha256: str = Field(max_length=64)
    created_at: datetime = _timestamp()
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ConsoleDefaults(SQLModel, table=True):
    """Console options a user set for a pool: that user's default for that pool (oVirt seed)."""

    __tablename__ = "console_defaults"

    username: str = Field(primary_key=True, max_length=256)
    pool_id: str = Field(primary_key=True, max_length=64)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _timestamp()


class CapacityRuleRecord(SQLModel, table=True):
    """A pool's capacity rule (workflows/capacity_rules.CapacityRule as JSON). Its Temporal Schedule
    (`capacity/<pool id>/<slug>`) decides the firing; this row lists it and re-creates a lost schedule."""

    __tablename__ = "capacity_rule"

    pool_id: str = Field(primary_key=True, max_length=64)
    # The rule's name made an id part ("Night shift" -> "night-shift"): unique per pool.
    slug: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64)
    rule: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=256)
    created_at: datetime = _timestamp()


class PoolSample(SQLModel, table=True):
    """A pool's counts at one moment, for the portal's charts: written by the pool's projection,
    at most one row per pool per bucket of `activities/projection.SAMPLE_BUCKET_S` (the latest
    counts of the bucket win), pruned after `SAMPLE_RETENTION`."""

    __tablename__ = "pool_sample"

    pool_id: str = Field(primary_key=True, max_length=64)
    # The start of the sample's time bucket (UTC).
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    ready: int = 0
    assigned: int = 0
    waiting: int = 0
    provisioning: int = 0
