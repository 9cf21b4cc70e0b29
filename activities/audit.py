"""Audit-log activity: who did what to which pool or desktop, and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio import activity

from activities.store.models import AuditEvent


@dataclass
class RecordAuditEventInput:
    key: str
    actor: str
    action: str
    at: datetime
    pool_id: str | None = None
    desktop_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordAuditEventResult:
    recorded: bool


class AuditActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def record_audit_event(self, event: RecordAuditEventInput) -> RecordAuditEventResult:
        """Insert once per key: a retry after a crash finds the row and stops."""
        row = AuditEvent(
            key=event.key,
            at=event.at,
            actor=event.actor,
            action=event.action,
            pool_id=event.pool_id,
            desktop_id=event.desktop_id,
            detail=event.detail,
        )
        with Session(self._engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return RecordAuditEventResult(recorded=False)
        return RecordAuditEventResult(recorded=True)
