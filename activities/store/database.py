"""Creating the SQLAlchemy engine for the configured database URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url


def normalise_url(database_url: str) -> URL:
    """`postgresql://` means psycopg 3 here (the driver we ship), not psycopg2."""
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(database_url: str, busy_timeout_s: float = 30.0) -> Engine:
    """`busy_timeout_s`: how long a statement waits for a locked database (SQLite) or a connection
    (PostgreSQL). The worker's is short: a projection that cannot write soon should fail and be
    retried on a workflow timer, not hold its workflow task (docs/reliability.md, C4)."""
    url = normalise_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            connect_args={"connect_timeout": max(1, round(busy_timeout_s))},
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # WAL lets the API read while the worker's projections write.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        # No fsync per commit (WAL syncs at checkpoints): a crashed process loses nothing, a power
        # cut at most the last projections, which the workflows write again. Every desktop
        # transition is a commit, and a workflow task waits for its local activity: B3 in
        # docs/benchmarks.md.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
