"""The pool's counts over time (pool_sample): written by the pool's projection, one row per pool
per bucket, idempotent, never rolled back by a stale retry, pruned, gone with the pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment

from activities.projection import SAMPLE_BUCKET_S, SAMPLE_RETENTION, ProjectionActivities, sample_bucket
from activities.store.database import make_engine
from activities.store.migrate import upgrade
from activities.store.models import PoolSample
from workflows.activity_io import ProjectPoolInput

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def _update(at: datetime, ready: int, assigned: int = 0, waiting: int = 0, **more: object) -> ProjectPoolInput:
    counts = {"ready": ready, "standby": 0, "assigned": assigned, "provisioning": 1}
    return ProjectPoolInput(pool_id="p", name="P", project="default", spec={}, template_version=1, enabled=True,
                            waiting=waiting, restrained_reason="", at=at, counts=counts, **more)  # type: ignore[arg-type]  # fmt: skip


def _samples(engine: object) -> list[tuple[datetime, int, int, int]]:
    with Session(engine) as session:  # type: ignore[call-overload]
        rows = session.exec(select(PoolSample).order_by(col(PoolSample.at))).all()
    return [(r.at.replace(tzinfo=UTC), r.ready, r.assigned, r.waiting) for r in rows]


def test_one_sample_per_bucket_latest_counts_win_and_stale_retries_are_ignored(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    activities = ProjectionActivities(engine)
    run = ActivityEnvironment().run
    run(activities.project_pool, _update(T0, ready=2))
    run(activities.project_pool, _update(T0 + timedelta(seconds=1), ready=1, assigned=1))
    run(activities.project_pool, _update(T0 + timedelta(seconds=1), ready=1, assigned=1))  # a retry
    run(activities.project_pool, _update(T0 + timedelta(seconds=SAMPLE_BUCKET_S), ready=0, assigned=2, waiting=3))
    # A late retry of an older projection rolls nothing back.
    run(activities.project_pool, _update(T0 + timedelta(seconds=2), ready=5))
    assert _samples(engine) == [
        (T0, 1, 1, 0),
        (T0 + timedelta(seconds=SAMPLE_BUCKET_S), 0, 2, 3),
    ]
    engine.dispose()


def test_old_samples_are_pruned_and_removal_takes_them(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    activities = ProjectionActivities(engine)
    run = ActivityEnvironment().run
    run(activities.project_pool, _update(T0, ready=1))
    later = T0 + SAMPLE_RETENTION + timedelta(seconds=SAMPLE_BUCKET_S)
    run(activities.project_pool, _update(later, ready=2))
    assert [s[0] for s in _samples(engine)] == [sample_bucket(later)]
    run(activities.project_pool, _update(later + timedelta(seconds=1), ready=2, removed=True))
    assert _samples(engine) == []
    engine.dispose()


def test_bucket_start_is_a_multiple_of_the_bucket() -> None:
    at = datetime(2026, 1, 1, 0, 0, 17, 500, tzinfo=UTC)
    start = sample_bucket(at)
    assert start <= at < start + timedelta(seconds=SAMPLE_BUCKET_S) and int(start.timestamp()) % SAMPLE_BUCKET_S == 0
    naive = datetime(2026, 1, 1, 0, 0, 17)
    assert sample_bucket(naive) == sample_bucket(naive.replace(tzinfo=UTC))
