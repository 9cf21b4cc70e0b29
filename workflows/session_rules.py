"""A desktop's session timers as pure rules: which deadline is next, what happens then.

disconnected retention: a disconnected desktop is released after the buffer;
a reconnect inside it cancels it, so a reboot or a network blip costs nothing.
inactivity timeout: an idle user is disconnected. max session: the session
ends. first connect: a claimed desktop nobody connects to goes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workflows.messages import DesktopSnapshot, DesktopStatus, SessionEventKind
from workflows.pool_spec import Assignment, Timers


class TimerAction(StrEnum):
    RELEASE = "release"
    DISCONNECT = "disconnect"


@dataclass
class Deadline:
    at: datetime
    action: TimerAction
    reason: str


def next_deadline(snap: DesktopSnapshot, timers: Timers, assignment: Assignment) -> Deadline | None:
    candidates: list[Deadline] = []
    floating = assignment is Assignment.FLOATING
    if snap.status is DesktopStatus.ASSIGNED and floating and snap.assigned_at is not None:
        candidates.append(
            Deadline(
                snap.assigned_at + timedelta(seconds=timers.first_connect_timeout_s),
                TimerAction.RELEASE,
                "nobody connected after the claim",
            )
        )
    if snap.status is DesktopStatus.DISCONNECTED and floating and snap.disconnected_at is not None:
        candidates.append(
            Deadline(
                snap.disconnected_at + timedelta(seconds=timers.disconnected_retention_s),
                TimerAction.RELEASE,
                "disconnected retention expired",
            )
        )
    if snap.status is DesktopStatus.CONNECTED and timers.inactivity_timeout_s > 0 and snap.idle_since is not None:
        candidates.append(
            Deadline(
                snap.idle_since + timedelta(seconds=timers.inactivity_timeout_s),
                TimerAction.DISCONNECT,
                "user inactivity timeout",
            )
        )
    in_session = snap.status in (DesktopStatus.CONNECTED, DesktopStatus.DISCONNECTED)
    if in_session and floating and timers.max_session_s is not None and snap.session_started_at is not None:
        candidates.append(
            Deadline(
                snap.session_started_at + timedelta(seconds=timers.max_session_s),
                TimerAction.RELEASE,
                "maximum session duration reached",
            )
        )
    return min(candidates, key=lambda d: d.at, default=None)


SESSION_STATES = (DesktopStatus.ASSIGNED, DesktopStatus.CONNECTED, DesktopStatus.DISCONNECTED)


def apply_session_event(snap: DesktopSnapshot, kind: SessionEventKind, now: datetime) -> bool:
    """Update the snapshot for an agent event; True when the event asks for a release."""
    if snap.status not in SESSION_STATES:
        return False
    if kind is SessionEventKind.CONNECT:
        snap.status = DesktopStatus.CONNECTED
        snap.connected_at = now
        snap.session_started_at = snap.session_started_at or now
        snap.disconnected_at = None
        snap.idle_since = None
    elif kind is SessionEventKind.DISCONNECT and snap.status is DesktopStatus.CONNECTED:
        # Only a real transition starts the buffer: a repeated report must not extend it.
        snap.status = DesktopStatus.DISCONNECTED
        snap.disconnected_at = now
        snap.idle_since = None
    elif kind is SessionEventKind.IDLE and snap.status is DesktopStatus.CONNECTED:
        snap.idle_since = snap.idle_since or now
    elif kind is SessionEventKind.ACTIVE:
        snap.idle_since = None
    elif kind is SessionEventKind.LOGOFF:
        return True
    return False
