"""Alembic environment: runs migrations against the URL handed in by migrate.py."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from activities.store import models  # noqa: F401  (registers the tables)
from activities.store.database import make_engine

# Any fixed 64-bit number; it names "deskpool's schema migration" among advisory locks.
MIGRATION_LOCK_KEY = 0x6465736B706F6F6C

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.attributes["database_url"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas starting together upgrade one after the other; released at commit.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            context.run_migrations()
    engine.dispose()


run_migrations_online()
