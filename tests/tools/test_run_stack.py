"""tools/run.py's Stack stops its processes with interrupts ignored, and gives them back after."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tools.run import Stack


def test_stop_ends_its_processes_and_restores_the_interrupt_handlers(tmp_path: Path) -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack(data=tmp_path)
    sleeper = stack.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    stack.stop()
    assert sleeper.returncode == -signal.SIGTERM
    # A test run stops many stacks: if SIGTERM stayed ignored, every process it started later
    # would inherit that and ignore terminate() (seen with tests/test_server_watch.py).
    assert {signum: signal.getsignal(signum) for signum in before} == before
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.terminate()
    assert child.wait(timeout=10) == -signal.SIGTERM
