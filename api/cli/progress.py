"""Waiting with something to look at: a pool filling, a template rollout.

On a terminal a rich progress bar (on stderr); otherwise one stderr line whenever the state
changes. Polling goes through `Runtime.sleep` and `Runtime.clock`, so tests never sleep.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from api.cli.client import ApiClient
from api.cli.config import Runtime
from api.cli.output import stderr

FILL_POLL_S = 1.0
ROLLOUT_POLL_S = 1.0
ROLLOUT_ACTIVE = {"pending", "queued", "running", "in_progress", "started", "rolling"}
# A rollout pauses itself (failed canary, too many failures) and waits for an administrator.
ROLLOUT_PAUSED = {"paused"}
ROLLOUT_SUCCEEDED = {"completed", "complete", "succeeded", "done", "finished"}
ROLLOUT_FAILED = {"failed", "cancelled", "canceled", "aborted", "error"}


class Meter:
    """A progress bar, or plain lines when stderr is not a terminal."""

    def __init__(self, label: str) -> None:
        self._console = stderr()
        self._label = label
        self._last: tuple[int, int, str] | None = None
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Meter:
        if self._console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._label, total=None)
        return self

    def update(self, done: int, total: int, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=max(total, 1), description=f"{self._label}: {text}")
        elif self._last != (done, total, text):
            self._console.print(Text(f"{self._label}: {text}"))
        self._last = (done, total, text)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()


def fill_target(view: dict[str, Any]) -> int:
    spec = view.get("spec") or {}
    return max(int(spec.get("min_desktops") or 0), int(spec.get("prestarted") or 0))


def idle_count(view: dict[str, Any]) -> int:
    counts = view.get("counts") or {}
    return int(counts.get("ready") or 0) + int(counts.get("standby") or 0)


def _fill_text(view: dict[str, Any]) -> str:
    text = str(view.get("fill") or f"{idle_count(view)} of {fill_target(view)} desktops ready")
    failed = int((view.get("counts") or {}).get("failed") or 0)
    if failed:
        text += f", {failed} failed"
    if view.get("restrained_reason"):
        text += f" (restrained: {view['restrained_reason']})"
    return text


def wait_for_fill(rt: Runtime, client: ApiClient, view: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the pool every second until ready + standby reaches max(min_desktops, prestarted)."""
    pool_id = str(view["id"])
    deadline = rt.clock() + timeout
    with Meter(f"pool {pool_id}") as meter:
        while True:
            target, idle = fill_target(view), idle_count(view)
            meter.update(min(idle, target), target, _fill_text(view))
            if idle >= target:
                return view
            if rt.clock() >= deadline:
                break
            rt.sleep(FILL_POLL_S)
            view = client.get_pool(pool_id)
    stderr().print(Text(f"error: timed out after {timeout:g}s waiting for pool {pool_id}: {_fill_text(view)}"))
    raise typer.Exit(1)


def rollout_finished(rollout: dict[str, Any]) -> bool:
    status = str(rollout.get("status") or "").lower()
    if status in ROLLOUT_SUCCEEDED or status in ROLLOUT_FAILED or status in ROLLOUT_PAUSED:
        return True
    if status in ROLLOUT_ACTIVE:
        return False
    return int(rollout.get("done") or 0) >= int(rollout.get("total") or 0)


def rollout_text(rollout: dict[str, Any]) -> str:
    return f"{rollout.get('status', '?')}, {rollout.get('done', 0)} of {rollout.get('total', '?')} desktops recreated"


def wait_for_rollout(rt: Runtime, client: ApiClient, pool_id: str, timeout: float) -> dict[str, Any]:
    """Poll GET /pools/{id}/rollout until it finishes; exit 1 if it failed or the timeout passed."""
    deadline = rt.clock() + timeout
    with Meter(f"recreate {pool_id}") as meter:
        while True:
            rollout: dict[str, Any] = client.rollout(pool_id)
            meter.update(int(rollout.get("done") or 0), int(rollout.get("total") or 0), rollout_text(rollout))
            if rollout_finished(rollout):
                break
            if rt.clock() >= deadline:
                stderr().print(Text(f"error: timed out after {timeout:g}s: {rollout_text(rollout)}"))
                raise typer.Exit(1)
            rt.sleep(ROLLOUT_POLL_S)
    status = str(rollout.get("status") or "").lower()
    if status in ROLLOUT_PAUSED:
        reason = rollout.get("paused_reason") or "no reason given"
        stderr().print(Text(f"error: the rollout of pool {pool_id} paused ({reason}); resume or cancel it"))
        raise typer.Exit(1)
    if status in ROLLOUT_FAILED:
        stderr().print(Text(f"error: the rollout of pool {pool_id} ended: {rollout_text(rollout)}"))
        raise typer.Exit(1)
    return rollout
