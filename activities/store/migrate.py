"""Schema migrations with Alembic, configured in code (no alembic.ini to drift).

`python -m activities.store.migrate` upgrades the configured database to head;
every process also runs it at start so a fresh data folder just works.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # The URL travels in attributes, not the ini options, so '%' in a
    # password is not taken for ini interpolation.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def main() -> int:
    from worker.settings import load_worker_settings

    settings = load_worker_settings()
    upgrade(settings.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
