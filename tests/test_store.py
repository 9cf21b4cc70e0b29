"""The store: migrations reach the models' schema on SQLite and PostgreSQL."""

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities, RecordAuditEventInput
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.store.models import AuditEvent, PoolRecord


def test_migrations_create_exactly_the_models_schema(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"pool", "desktop", "audit_event", "alembic_version"} <= tables


def test_processes_starting_together_upgrade_one_after_the_other(database_url: str) -> None:
    """Two workers and the API start at once and each runs the upgrade: none may fail on a
    table another has just created."""
    import subprocess
    import sys

    code = "import sys; from activities.store.migrate import upgrade; upgrade(sys.argv[1])"
    starters = [subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE) for _ in range(4)]
    failures = [p.stderr.read().decode()[-400:] for p in starters if p.wait(timeout=120) != 0 and p.stderr]
    assert failures == []
    engine = make_engine(database_url)
    assert {"pool", "desktop", "pool_sample"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_pool_name_is_unique_within_a_project(database_url: str) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(PoolRecord(id="p1", name="Call centre", project="acme"))
        session.add(PoolRecord(id="p2", name="Call centre", project="other"))
        session.commit()
        session.add(PoolRecord(id="p3", name="Call centre", project="acme"))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_audit_event_recorded_once_per_key(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    activities = AuditActivities(engine)
    event = RecordAuditEventInput(
        key="pool-created/p1", actor="alice", action="pool.create", at=datetime.now(UTC), pool_id="p1"
    )
    env = ActivityEnvironment()
    first = env.run(activities.record_audit_event, event)
    retried = env.run(activities.record_audit_event, event)
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent)).all()
    engine.dispose()
    assert first.recorded and not retried.recorded
    assert [(r.actor, r.action, r.pool_id) for r in rows] == [("alice", "pool.create", "p1")]
