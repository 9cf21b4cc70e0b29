"""Heartbeats that can be repeated, so a cloud activity stays alive while it talks to the cloud.

A retry reads the details of the last heartbeat before it (`cloud.requested_before`: a reboot
or a rebuild already asked for), so a heartbeat sent only to say "still alive" must carry the
same details. `beat` heartbeats and remembers its details for this attempt; `keep_alive`, which
the cloud transport calls before every HTTP request and while a request waits for a rate token,
repeats them (before the attempt's first `beat`: the details the attempt before it left).

Why: in a cloud outage a create spent over 30 s in retried requests and rate waits without a
heartbeat. Temporal timed the attempt out while it still ran; the retry found no server yet
and made one, and the first attempt's create then made a second (docs/reliability.md, finding 9).

Only sync activities that opted in with `kept_alive` are kept alive: an async activity's
heartbeat must be sent from the event loop's thread, not from `asyncio.to_thread`'s.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity

# At most one keep-alive heartbeat a second per attempt: the SDK sends them on at its own pace
# anyway (a fraction of the heartbeat timeout), and each one is encoded on the event loop.
KEEP_ALIVE_EVERY_S = 1.0

F = TypeVar("F", bound=Callable[..., Any])


class _Attempt(threading.local):
    token: bytes | None = None
    details: tuple[Any, ...] = ()
    last_s: float = float("-inf")


_attempt = _Attempt()


def kept_alive(fn: F) -> F:
    """Let `keep_alive` heartbeat for this sync activity while it runs (on its own thread)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        info = activity.info()
        _attempt.token, _attempt.details, _attempt.last_s = (
            info.task_token,
            tuple(info.heartbeat_details),
            float("-inf"),
        )
        try:
            return fn(*args, **kwargs)
        finally:
            _attempt.token = None

    return run  # type: ignore[return-value]


def beat(*details: Any) -> None:
    """`activity.heartbeat`, remembered for this attempt's keep-alives."""
    if _attempt.token is not None and _attempt.token == activity.info().task_token:
        _attempt.details, _attempt.last_s = details, time.monotonic()
    activity.heartbeat(*details)


def keep_alive() -> None:
    """Heartbeat the attempt's last details again, if this thread runs a `kept_alive` activity."""
    if _attempt.token is None or not activity.in_activity() or activity.info().task_token != _attempt.token:
        return
    now = time.monotonic()
    if now - _attempt.last_s >= KEEP_ALIVE_EVERY_S:
        _attempt.last_s = now
        activity.heartbeat(*_attempt.details)
