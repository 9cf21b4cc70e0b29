"""tools/directory_servers/install.sh, which `make directory-servers` runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tools.directory_servers.common import INSTALL_SCRIPT, REQUIRED_PROGRAMS, ensure_installed


def test_install_is_idempotent_once_installed() -> None:
    ensure_installed()  # what the server fixtures do first
    again = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, timeout=120, capture_output=True, text=True)
    assert "installing" not in again.stderr  # the script says so when it installs anything
    assert all(Path(program).exists() for program in REQUIRED_PROGRAMS)


def test_the_makefile_target_runs_it() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert "directory-servers:\n\tbash tools/directory_servers/install.sh" in makefile
