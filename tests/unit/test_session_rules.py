"""A desktop's session timers as pure rules.

Seeds and issue 3: disconnected retention is a buffer after a disconnect before the
desktop is released (0 = at once), and a reconnect inside it cancels it; the user
inactivity timeout disconnects an idle user (0 = never); an optional max session ends
the session; a claimed desktop nobody connects to goes back; personal pools are
persistent, so nothing releases their desktops by timer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.messages import DesktopSnapshot, DesktopStatus, SessionEventKind
from workflows.pool_spec import Assignment, Timers
from workflows.session_rules import TimerAction, apply_session_event, next_deadline

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FLOATING, PERSONAL = Assignment.FLOATING, Assignment.PERSONAL
NOT_IN_SESSION = [
    DesktopStatus.PROVISIONING,
    DesktopStatus.READY,
    DesktopStatus.STANDBY,
    DesktopStatus.STARTING,
    DesktopStatus.RELEASING,
    DesktopStatus.AWAITING_RETURN,
    DesktopStatus.FAILED,
    DesktopStatus.DESTROYED,
]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def timers(
    retention: int = 1800,
    inactivity: int = 0,
    max_session: int | None = None,
    first_connect: int = 900,
) -> Timers:
    return Timers(
        disconnected_retention_s=retention,
        inactivity_timeout_s=inactivity,
        max_session_s=max_session,
        first_connect_timeout_s=first_connect,
    )


def assigned(at: datetime = T0) -> DesktopSnapshot:
    return DesktopSnapshot(status=DesktopStatus.ASSIGNED, user="alice", request_id="r1", assigned_at=at)


def connected(at: datetime = T0) -> DesktopSnapshot:
    snap = assigned(at)
    apply_session_event(snap, SessionEventKind.CONNECT, at)
    return snap


# --- applying events ------------------------------------------------------------------------------


def test_connect_starts_the_session() -> None:
    snap = assigned()
    wants_release = apply_session_event(snap, SessionEventKind.CONNECT, T0 + s(5))
    assert not wants_release
    assert snap.status is DesktopStatus.CONNECTED
    assert snap.connected_at == T0 + s(5)
    assert snap.session_started_at == T0 + s(5)


def test_disconnect_records_when() -> None:
    snap = connected()
    assert not apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(60))
    assert snap.status is DesktopStatus.DISCONNECTED
    assert snap.disconnected_at == T0 + s(60)


def test_reconnect_keeps_the_sessions_start_and_clears_the_disconnect() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(60))
    apply_session_event(snap, SessionEventKind.CONNECT, T0 + s(90))
    assert snap.status is DesktopStatus.CONNECTED
    assert snap.disconnected_at is None
    assert snap.session_started_at == T0  # max session counts from the first connect
    assert snap.connected_at == T0 + s(90)


def test_disconnect_before_any_connect_is_ignored() -> None:
    snap = assigned()
    assert not apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(10))
    assert snap.status is DesktopStatus.ASSIGNED
    assert snap.disconnected_at is None


def test_idle_marks_the_start_of_inactivity_once() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(100))
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(200))
    assert snap.idle_since == T0 + s(100)
    apply_session_event(snap, SessionEventKind.ACTIVE, T0 + s(300))
    assert snap.idle_since is None


def test_idle_while_disconnected_is_ignored() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(10))
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(20))
    assert snap.idle_since is None


@pytest.mark.parametrize("status", [DesktopStatus.ASSIGNED, DesktopStatus.CONNECTED, DesktopStatus.DISCONNECTED])
def test_logoff_asks_for_release(status: DesktopStatus) -> None:
    snap = DesktopSnapshot(status=status, user="alice", assigned_at=T0)
    assert apply_session_event(snap, SessionEventKind.LOGOFF, T0 + s(5))


@pytest.mark.parametrize("kind", list(SessionEventKind))
@pytest.mark.parametrize("status", NOT_IN_SESSION)
def test_events_outside_a_session_are_ignored(status: DesktopStatus, kind: SessionEventKind) -> None:
    snap = DesktopSnapshot(status=status)
    before = DesktopSnapshot(status=status)
    assert not apply_session_event(snap, kind, T0)
    assert snap == before


# --- deadlines ----------------------------------------------------------------------------------


def test_disconnected_retention_releases_after_the_buffer() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(60))
    deadline = next_deadline(snap, timers(retention=1800), FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(60 + 1800)
    assert deadline.action is TimerAction.RELEASE


def test_zero_retention_releases_at_once() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(60))
    deadline = next_deadline(snap, timers(retention=0), FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(60)
    assert deadline.action is TimerAction.RELEASE


def test_reconnect_inside_the_buffer_cancels_the_release() -> None:
    rules = timers(retention=1800)
    snap = connected()
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(60))
    apply_session_event(snap, SessionEventKind.CONNECT, T0 + s(600))
    assert next_deadline(snap, rules, FLOATING) is None
    # A second disconnect starts a fresh buffer.
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(700))
    deadline = next_deadline(snap, rules, FLOATING)
    assert deadline is not None and deadline.at == T0 + s(700 + 1800)


def test_connected_user_without_timers_has_no_deadline() -> None:
    assert next_deadline(connected(), timers(inactivity=0, max_session=None), FLOATING) is None


def test_inactivity_timeout_disconnects_the_user() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(120))
    deadline = next_deadline(snap, timers(inactivity=600), FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(120 + 600)
    assert deadline.action is TimerAction.DISCONNECT


def test_zero_inactivity_timeout_never_disconnects() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(120))
    assert next_deadline(snap, timers(inactivity=0), FLOATING) is None


def test_activity_cancels_the_inactivity_deadline() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(120))
    apply_session_event(snap, SessionEventKind.ACTIVE, T0 + s(130))
    assert next_deadline(snap, timers(inactivity=600), FLOATING) is None


def test_inactivity_disconnects_in_personal_pools_too() -> None:
    snap = connected()
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(120))
    deadline = next_deadline(snap, timers(inactivity=600), PERSONAL)
    assert deadline is not None and deadline.action is TimerAction.DISCONNECT


def test_max_session_ends_the_session_from_its_first_connect() -> None:
    rules = timers(max_session=3600)
    snap = connected(T0)
    deadline = next_deadline(snap, rules, FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(3600)
    assert deadline.action is TimerAction.RELEASE
    # Disconnecting and reconnecting does not restart the clock.
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(100))
    apply_session_event(snap, SessionEventKind.CONNECT, T0 + s(200))
    deadline = next_deadline(snap, rules, FLOATING)
    assert deadline is not None and deadline.at == T0 + s(3600)


def test_the_earliest_deadline_wins() -> None:
    snap = connected(T0)
    apply_session_event(snap, SessionEventKind.IDLE, T0 + s(3000))
    deadline = next_deadline(snap, timers(inactivity=900, max_session=3600), FLOATING)
    assert deadline is not None
    assert (deadline.at, deadline.action) == (T0 + s(3600), TimerAction.RELEASE)
    deadline = next_deadline(snap, timers(inactivity=300, max_session=3600), FLOATING)
    assert deadline is not None
    assert (deadline.at, deadline.action) == (T0 + s(3300), TimerAction.DISCONNECT)


def test_retention_shorter_than_max_session_wins_while_disconnected() -> None:
    snap = connected(T0)
    apply_session_event(snap, SessionEventKind.DISCONNECT, T0 + s(100))
    deadline = next_deadline(snap, timers(retention=60, max_session=3600), FLOATING)
    assert deadline is not None and deadline.at == T0 + s(160)


def test_first_connect_timeout_releases_an_unused_claim() -> None:
    """Timers.first_connect_timeout_s: 'a claimed desktop nobody connects to within this is released'."""
    deadline = next_deadline(assigned(T0), timers(retention=0, first_connect=900), FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(900)
    assert deadline.action is TimerAction.RELEASE


def test_first_connect_timeout_is_its_own_setting() -> None:
    """A first-connect timeout shorter than the disconnected retention still applies as set."""
    deadline = next_deadline(assigned(T0), timers(retention=1800, first_connect=300), FLOATING)
    assert deadline is not None
    assert deadline.at == T0 + s(300)


def test_connecting_cancels_the_first_connect_timeout() -> None:
    snap = assigned(T0)
    apply_session_event(snap, SessionEventKind.CONNECT, T0 + s(10))
    assert next_deadline(snap, timers(retention=0, first_connect=60), FLOATING) is None


@pytest.mark.parametrize(
    "snap",
    [
        pytest.param(assigned(T0), id="assigned-never-connected"),
        pytest.param(
            DesktopSnapshot(
                status=DesktopStatus.DISCONNECTED,
                user="alice",
                assigned_at=T0,
                session_started_at=T0,
                connected_at=T0,
                disconnected_at=T0 + s(10),
            ),
            id="disconnected",
        ),
        pytest.param(
            DesktopSnapshot(
                status=DesktopStatus.CONNECTED, user="alice", assigned_at=T0, session_started_at=T0, connected_at=T0
            ),
            id="connected",
        ),
    ],
)
def test_personal_pools_never_get_release_deadlines(snap: DesktopSnapshot) -> None:
    rules = timers(retention=0, max_session=60, first_connect=60)
    assert next_deadline(snap, rules, PERSONAL) is None
    # The same desktop in a floating pool would be released.
    floating = next_deadline(snap, rules, FLOATING)
    assert floating is not None and floating.action is TimerAction.RELEASE


@pytest.mark.parametrize("status", NOT_IN_SESSION)
def test_desktops_outside_a_session_have_no_deadline(status: DesktopStatus) -> None:
    snap = DesktopSnapshot(
        status=status,
        assigned_at=T0,
        session_started_at=T0,
        connected_at=T0,
        disconnected_at=T0,
        idle_since=T0,
    )
    assert next_deadline(snap, timers(retention=0, inactivity=60, max_session=60, first_connect=60), FLOATING) is None
