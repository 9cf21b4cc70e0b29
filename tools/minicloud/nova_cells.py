"""Run by the minicloud venv's Python, not imported by deskpool: nova's database set-up in one process.

`nova-manage api_db sync`, `cell_v2 map_cell0`, `cell_v2 create_cell` and `db sync`
as four commands cost four interpreter starts and four imports of nova (seconds each
on two cores); this calls the same command methods in order, after one config parse.
usage: python nova_cells.py NOVA_CONF CELL0_DATABASE_URL
"""

import sys
from collections.abc import Callable
from typing import Any

# nova.cmd first: importing it sets up nova's concurrency mode (eventlet or threads), as nova-manage does.
import nova.cmd  # type: ignore[import-not-found]  # noqa: F401
from nova import config, objects
from nova.cmd import manage
from oslo_config import cfg  # type: ignore[import-not-found]
from oslo_log import log as logging  # type: ignore[import-not-found]


def main(nova_conf: str, cell0_url: str) -> int:
    config.parse_args([sys.argv[0], "--config-file", nova_conf])
    logging.setup(cfg.CONF, "nova")
    objects.register_all()
    cells = manage.CellV2Commands()
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("api_db sync", lambda: manage.ApiDbCommands().sync()),
        ("cell_v2 map_cell0", lambda: cells.map_cell0(database_connection=cell0_url)),
        ("cell_v2 create_cell", lambda: cells.create_cell(name="cell1")),
        ("db sync", lambda: manage.DbCommands().sync()),
    ]
    for name, step in steps:
        print(f"nova-manage {name}", flush=True)
        result = step()
        if result not in (0, None):
            print(f"nova-manage {name} returned {result}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
