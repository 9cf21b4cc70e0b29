"""Read-model projections: workflows push their state into the store.

Called as local activities (cheap in history, close to the workflow). Each
write carries the workflow's sequence number and is applied only when newer
than the row, so a retried or reordered projection never rolls a row back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from activities.store.models import AuditEvent, DesktopRecord, PoolRecord
from workflows.activity_io import ProjectDesktopInput, ProjectDesktopResult, ProjectPoolInput, ProjectPoolResult


class ProjectionActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def project_desktop(self, update: ProjectDesktopInput) -> ProjectDesktopResult:
        with Session(self._engine) as session:
            row = session.get(DesktopRecord, update.desktop_id)
            if row is not None and row.sequence >= update.sequence:
                return ProjectDesktopResult(applied=False)
            if row is None:
                row = DesktopRecord(id=update.desktop_id, pool_id=update.pool_id, name=update.name, state=update.state)
                row.created_at = update.at
            row.state = update.state
            row.user = update.user
            row.template_version = update.template_version
            row.server_id = update.server_id or row.server_id
            row.address = update.address or row.address
            row.sequence = update.sequence
            row.updated_at = update.at
            session.add(row)
            if update.event:
                session.add(
                    AuditEvent(
                        key=f"desktop/{update.desktop_id}/{update.sequence}",
                        at=update.at,
                        actor=update.user or "deskpool",
                        action=f"desktop.{update.event}",
                        pool_id=update.pool_id,
                        desktop_id=update.desktop_id,
                        detail={"state": update.state},
                    )
                )
            try:
                session.commit()
            except IntegrityError:
                # A concurrent retry inserted it first; that write is at least as new.
                session.rollback()
                return ProjectDesktopResult(applied=False)
        return ProjectDesktopResult(applied=True)

    @activity.defn
    def project_pool(self, update: ProjectPoolInput) -> ProjectPoolResult:
        if update.removed:
            return self._remove_pool(update)
        with Session(self._engine) as session:
            row = session.get(PoolRecord, update.pool_id)
            if row is None:
                row = PoolRecord(id=update.pool_id, name=update.name, project=update.project)
                row.created_at = update.at
            elif row.updated_at is not None and _naive(row.updated_at) > _naive(update.at):
                return ProjectPoolResult(applied=False)
            row.name = update.name
            row.project = update.project
            row.spec = update.spec
            row.template_version = update.template_version
            row.enabled = update.enabled
            row.waiting = update.waiting
            row.restrained_reason = update.restrained_reason
            row.updated_at = update.at
            session.add(row)
            session.commit()
        return ProjectPoolResult(applied=True)

    def _remove_pool(self, update: ProjectPoolInput) -> ProjectPoolResult:
        """The pool is gone: its row deleted, the removal audited once; its desktops' rows
        (destroyed, detached, with their server ids) and every audit event stay."""
        key = f"pool/{update.pool_id}/removed"
        with Session(self._engine) as session:
            row = session.get(PoolRecord, update.pool_id)
            if row is not None:
                session.delete(row)
            if session.exec(select(AuditEvent).where(AuditEvent.key == key)).first() is None:
                detail = {"desktops": update.removal_mode, "reason": update.removal_reason, "name": update.name}
                session.add(
                    AuditEvent(
                        key=key,
                        at=update.at,
                        actor="deskpool",
                        action="pool.removed",
                        pool_id=update.pool_id,
                        detail=detail,
                    )
                )
            session.commit()
        return ProjectPoolResult(applied=row is not None)


def _naive(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return value.replace(tzinfo=None)
