"""Schema migrations with Alembic, configured in code (no alembic.ini to drift).

`python -m activities.store.migrate` upgrades the configured database to head;
every process also runs it at start so a fresh data folder just works.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # The URL travels in attributes, not the ini options, so '%' in a
    # password is not taken for ini interpolation.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    with sqlite_file_lock(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextlib.contextmanager
def sqlite_file_lock(database_url: str) -> Iterator[None]:
    """Processes starting together (two workers and the API) must not both create the tables:
    on a SQLite file the upgrade runs under an exclusive lock on a file beside it. PostgreSQL
    takes an advisory lock instead (migrations/env.py)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    with open(f"{url.database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main() -> int:
    from worker.settings import load_worker_settings

    settings = load_worker_settings()
    upgrade(settings.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
