"""The processes `make run` starts, on free ports, for the tests that drive them over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.run import Stack, launch, stack_on_free_ports


@contextmanager
def launched_stack(data: Path, cloud_args: list[str], *, crash_free: bool = True) -> Iterator[Stack]:
    """Started and stopped whatever happens in between; with `crash_free`, no deskpool process may
    have logged a traceback by the time it stopped (Temporal's own log is not deskpool's)."""
    running = stack_on_free_ports(data, cloud_args=cloud_args)
    try:
        launch(running)
        yield running
    finally:
        running.stop()
        for name, _ in running.processes if crash_free else ():
            log = running.data / "logs" / f"{name}.log"
            assert "Traceback" not in log.read_text(errors="replace") or name == "temporal", f"{name} crashed: {log}"
