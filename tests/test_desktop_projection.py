"""A desktop's row follows its newest projection, whatever order the writes land in, even when
two land at the same moment (two projections retried together after a read-model outage)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.projection import ProjectionActivities
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.store.models import AuditEvent, DesktopRecord
from workflows.activity_io import ProjectDesktopInput

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def projection(desktop_id: str, sequence: int, state: str, server_id: str | None = None) -> ProjectDesktopInput:
    return ProjectDesktopInput(
        desktop_id=desktop_id,
        pool_id="p",
        name=desktop_id,
        state=state,
        template_version=1,
        sequence=sequence,
        at=T0 + timedelta(seconds=sequence),
        user=None,
        server_id=server_id,
        address=None,
        event=state,
    )


def row(engine: object, desktop_id: str) -> DesktopRecord:
    with Session(engine) as session:  # type: ignore[call-overload]
        found: DesktopRecord = session.get(DesktopRecord, desktop_id)
    return found


def test_an_older_projection_never_rolls_the_row_back_and_a_known_server_id_stays(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    activities, env = ProjectionActivities(engine), ActivityEnvironment()
    assert env.run(activities.project_desktop, projection("p.1", 1, "provisioning", server_id="srv-1")).applied
    assert env.run(activities.project_desktop, projection("p.1", 3, "destroyed")).applied
    assert not env.run(activities.project_desktop, projection("p.1", 2, "releasing")).applied
    found = row(engine, "p.1")
    assert (found.state, found.sequence, found.server_id) == ("destroyed", 3, "srv-1")
    with Session(engine) as session:
        events = session.exec(select(AuditEvent.action).where(AuditEvent.desktop_id == "p.1")).all()
    assert sorted(events) == ["desktop.destroyed", "desktop.provisioning"]


def test_two_projections_landing_together_leave_the_newer(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    activities = ProjectionActivities(engine)
    for n in range(15):
        desktop_id = f"p.{n + 10}"
        ActivityEnvironment().run(activities.project_desktop, projection(desktop_id, 1, "ready"))
        start = threading.Barrier(2)

        def land(update: ProjectDesktopInput, start: threading.Barrier) -> None:
            start.wait()
            ActivityEnvironment().run(activities.project_desktop, update)

        older = threading.Thread(target=land, args=(projection(desktop_id, 2, "releasing"), start))
        newer = threading.Thread(target=land, args=(projection(desktop_id, 3, "destroyed"), start))
        older.start(), newer.start()
        older.join(), newer.join()
        found = row(engine, desktop_id)
        assert (found.state, found.sequence) == ("destroyed", 3), f"round {n}"
    engine.dispose()
