"""Read-model projections: workflows push their state into the store.

Called as local activities (cheap in history, close to the workflow). Each
write carries the workflow's sequence number and is applied only when newer
than the row, so a retried or reordered projection never rolls a row back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity

from activities.store.models import AuditEvent, DesktopRecord, PoolRecord, PoolSample
from workflows.activity_io import ProjectDesktopInput, ProjectDesktopResult, ProjectPoolInput, ProjectPoolResult

# The portal's charts: one sample row per pool per bucket (the bucket's latest counts win), kept this long.
SAMPLE_BUCKET_S = 10
SAMPLE_RETENTION = timedelta(days=3)


class ProjectionActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def project_desktop(self, update: ProjectDesktopInput) -> ProjectDesktopResult:
        """Applied only when newer than the row, in one conditional UPDATE: two projections of a
        desktop retried at the same moment (after a read-model outage) used to read the same old
        row and both write it, the older one last (chaos C4 found a destroyed desktop shown
        `releasing`)."""
        for _ in range(2):  # a second pass only when a concurrent first insert won
            with Session(self._engine) as session:
                changes = {
                    "state": update.state,
                    "user": update.user,
                    "template_version": update.template_version,
                    "sequence": update.sequence,
                    "updated_at": update.at,
                    # Once known, a server id and address stay (a later step may not carry them).
                    "server_id": update.server_id or DesktopRecord.server_id,
                    "address": update.address or DesktopRecord.address,
                }
                newer = col(DesktopRecord.sequence) < update.sequence
                statement = sql_update(DesktopRecord).where(col(DesktopRecord.id) == update.desktop_id, newer)
                applied = session.execute(statement.values(changes)).rowcount  # type: ignore[attr-defined]
                if not applied:
                    if session.get(DesktopRecord, update.desktop_id) is not None:
                        return ProjectDesktopResult(applied=False)  # the row is as new or newer
                    row = DesktopRecord(
                        id=update.desktop_id,
                        pool_id=update.pool_id,
                        name=update.name,
                        state=update.state,
                        user=update.user,
                        template_version=update.template_version,
                        server_id=update.server_id,
                        address=update.address,
                        sequence=update.sequence,
                        created_at=update.at,
                        updated_at=update.at,
                    )
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
                    # A concurrent projection inserted the row (or this event) first: judge again.
                    session.rollback()
                    continue
            return ProjectDesktopResult(applied=True)
        return ProjectDesktopResult(applied=False)

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
            _sample(session, update)
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
            session.execute(delete(PoolSample).where(PoolSample.pool_id == update.pool_id))  # type: ignore[arg-type]
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


def sample_bucket(at: datetime) -> datetime:
    """The start of the SAMPLE_BUCKET_S bucket `at` falls in (UTC)."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    seconds = int(aware.timestamp())
    return datetime.fromtimestamp(seconds - seconds % SAMPLE_BUCKET_S, UTC)


def _sample(session: Session, update: ProjectPoolInput) -> None:
    """The pool's counts into its bucket's sample row: idempotent (a retry writes the same row),
    bounded (one row per bucket; a new bucket prunes the pool's rows past the retention)."""
    counts = update.counts
    bucket = sample_bucket(update.at)
    sample = session.get(PoolSample, (update.pool_id, bucket))
    if sample is None:
        sample = PoolSample(pool_id=update.pool_id, at=bucket)
        cutoff = bucket - SAMPLE_RETENTION
        session.execute(
            delete(PoolSample).where(PoolSample.pool_id == update.pool_id, PoolSample.at < cutoff)  # type: ignore[arg-type]
        )
    sample.ready = counts.get("ready", 0) + counts.get("standby", 0)
    sample.assigned = counts.get("assigned", 0)
    sample.waiting = update.waiting
    sample.provisioning = counts.get("provisioning", 0)
    session.add(sample)


def _naive(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return value.replace(tzinfo=None)
