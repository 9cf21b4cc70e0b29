"""The minicloud's own venv: OpenStack services pinned in requirements.txt, outside the repo.

Kept in ``${XDG_CACHE_HOME:-~/.cache}/deskpool/minicloud-<hash>/venv``, where the
hash covers requirements.txt, constraints.txt, the fakemech package and the
Python version: CI on the same machine reuses it, and a change to any of them
builds a new one (once). A file lock keeps two bring-ups from building it at
the same time; a ``complete`` marker, written last, tells a finished build
from an interrupted one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
CONSTRAINTS = HERE / "constraints.txt"
FAKEMECH = HERE / "fakemech"
INSTALL_TIMEOUT_S = 1800


class VenvError(RuntimeError):
    def __init__(self, message: str, log: Path) -> None:
        super().__init__(message)
        self.log = log


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deskpool"


def _fakemech_files() -> list[Path]:
    return sorted(
        p
        for p in FAKEMECH.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not any(part.endswith(".egg-info") for part in p.parts)
    )


def venv_hash() -> str:
    digest = hashlib.sha256()
    digest.update(f"python{sys.version_info.major}.{sys.version_info.minor}\n".encode())
    for path in [REQUIREMENTS, CONSTRAINTS, *_fakemech_files()]:
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def venv_dir() -> Path:
    return cache_root() / f"minicloud-{venv_hash()}" / "venv"


def is_ready(venv: Path) -> bool:
    return (venv.parent / "complete").exists() and (venv / "bin" / "python").exists()


def ensure_venv(say: Callable[[str], None] = print) -> tuple[Path, float | None]:
    """The venv's path, and the seconds spent building it (None when it was already there)."""
    venv = venv_dir()
    if is_ready(venv):
        return venv, None
    base = venv.parent
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(venv):  # another bring-up built it while we waited
            return venv, None
        started = time.monotonic()
        log = base / "install.log"
        say(f"building the minicloud venv in {venv} (once per requirements change; log: {log})")
        shutil.rmtree(venv, ignore_errors=True)
        with open(log, "w") as out:
            _run([sys.executable, "-m", "venv", str(venv)], out, log)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run([*pip, "install", "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS)], out, log)
            # Built from a copy: an in-tree build would leave build/ and *.egg-info in the repo.
            with tempfile.TemporaryDirectory(prefix="fakemech-") as tmp:
                src = Path(tmp) / "fakemech"
                shutil.copytree(FAKEMECH, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
                _run([*pip, "install", "--no-deps", str(src)], out, log)
        (base / "complete").write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        return venv, time.monotonic() - started


def _run(argv: list[str], out: IO[str], log: Path) -> None:
    out.write(f"$ {' '.join(argv)}\n")
    out.flush()
    result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise VenvError(f"building the minicloud venv failed: {' '.join(argv[:6])}... exited {result.returncode}", log)
