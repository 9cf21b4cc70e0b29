"""Response models and the read-model queries behind them."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from activities.store.models import DesktopRecord, PoolRecord

LIVE_STATES = ("provisioning", "ready", "standby", "starting", "assigned", "connected", "disconnected",
               "releasing", "awaiting_return", "failed")  # fmt: skip


class DesktopCounts(BaseModel):
    provisioning: int = 0
    ready: int = 0
    standby: int = 0
    starting: int = 0
    assigned: int = 0
    connected: int = 0
    disconnected: int = 0
    releasing: int = 0
    awaiting_return: int = 0
    failed: int = 0


class PoolView(BaseModel):
    id: str
    name: str
    project: str
    enabled: bool
    template_version: int
    spec: dict[str, Any]
    counts: DesktopCounts
    waiting: int = Field(description="claims waiting in line for a desktop")
    restrained_reason: str = Field(description="why creation is held back, empty when it is not")
    fill: str = Field(description='progress while the pool fills, e.g. "3 of 5 desktops ready"')
    workflow_url: str


class DesktopView(BaseModel):
    id: str
    pool_id: str
    name: str
    state: str
    user: str | None
    template_version: int
    server_id: str | None
    address: str | None
    created_at: datetime
    updated_at: datetime
    workflow_url: str


def temporal_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_url.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id, safe='')}"


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:56] or "pool"


def desktop_counts(engine: Engine, pool_ids: list[str]) -> dict[str, DesktopCounts]:
    rows: dict[str, dict[str, int]] = defaultdict(dict)
    with Session(engine) as session:
        query = (
            select(DesktopRecord.pool_id, DesktopRecord.state, func.count())
            .where(col(DesktopRecord.pool_id).in_(pool_ids), col(DesktopRecord.state).in_(LIVE_STATES))
            .group_by(col(DesktopRecord.pool_id), col(DesktopRecord.state))
        )
        for pool_id, state, count in session.exec(query):
            rows[pool_id][state] = count
    return {pool_id: DesktopCounts(**rows.get(pool_id, {})) for pool_id in pool_ids}


def pool_view(record: PoolRecord, counts: DesktopCounts, ui_url: str, namespace: str) -> PoolView:
    spec = record.spec
    target = max(int(spec.get("min_desktops", 0)), int(spec.get("prestarted", 0)))
    idle = counts.ready + counts.standby
    return PoolView(
        id=record.id,
        name=record.name,
        project=record.project,
        enabled=record.enabled,
        template_version=record.template_version,
        spec=spec,
        counts=counts,
        waiting=record.waiting,
        restrained_reason=record.restrained_reason,
        fill=f"{min(idle, target)} of {target} desktops ready",
        workflow_url=temporal_link(ui_url, namespace, f"pool/{record.id}"),
    )


DESKTOP_FIELDS = {"id", "pool_id", "name", "state", "user", "template_version", "server_id", "address",
                  "created_at", "updated_at"}  # fmt: skip


def desktop_view(record: DesktopRecord, ui_url: str, namespace: str) -> DesktopView:
    return DesktopView(
        **record.model_dump(include=DESKTOP_FIELDS),
        workflow_url=temporal_link(ui_url, namespace, f"desktop/{record.id}"),
    )
