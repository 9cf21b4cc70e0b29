"""DesktopWorkflow session timers and release paths on the time-skipping test server.

Issue 3 and seed 001 (dynamic pools): a disconnected desktop is released only
after the disconnected-retention buffer (0 = at once); a reconnect inside the
buffer cancels it, so a reboot or a network blip never costs the user the
desktop; an idle user is disconnected after the inactivity timeout; the max
session ends a session; a claimed desktop nobody connects to goes back; logoff
releases at once in a floating pool and only disconnects in a personal one;
revert pools rebuild and reuse, manual pools wait for an administrator; the
warm tier idles powered off; a failed build leaves nothing behind.

Time is the test server's: it jumps to the next timer while the test awaits a
workflow result, and `env.sleep` moves it by a given amount. The desktops run
without a pool (their reports to it are caught and logged).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.fakes import FakeCloud
from tests.workflows.support import (
    MINUTE,
    DesktopHandle,
    Rig,
    assign,
    desktop_spec,
    event_time,
    eventually,
    rig,
    session,
    status,
    wait_status,
)
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import DesktopStatus, ReleaseInput, RemoveInput, ReturnInput, SessionEventKind
from workflows.pool_spec import Assignment, ReleasePolicy, Timers

CONNECT, DISCONNECT = SessionEventKind.CONNECT, SessionEventKind.DISCONNECT
IDLE, ACTIVE, LOGOFF = SessionEventKind.IDLE, SessionEventKind.ACTIVE, SessionEventKind.LOGOFF
RETENTION = timedelta(minutes=30)
# A timer fires at its deadline on the test server's clock; allow for the workflow task's own time.
SLACK = timedelta(seconds=5)


def near(actual: timedelta, expected: timedelta) -> bool:
    return expected <= actual <= expected + SLACK


async def connected_desktop(desks: Rig, timers: Timers, **spec: object) -> tuple[DesktopHandle, str]:
    """A ready desktop, assigned to alice, who connected; returns it and its server id."""
    handle = await desks.start_desktop(desktop_spec(timers, **spec))
    ready = await wait_status(handle, DesktopStatus.READY)
    await assign(handle, "alice")
    # Wait for the assignment first: a CONNECT delivered together with it is lost (see the last test).
    await wait_status(handle, DesktopStatus.ASSIGNED)
    await session(handle, CONNECT)
    await wait_status(handle, DesktopStatus.CONNECTED)
    assert ready.snapshot.server_id in desks.cloud.servers
    return handle, ready.snapshot.server_id or ""


async def now(env: WorkflowEnvironment) -> datetime:
    return await env.get_current_time()


# --- disconnected retention -------------------------------------------------------------------


async def test_thirty_minute_retention_expires_in_milliseconds_and_destroys_the_desktop(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    await session(handle, DISCONNECT)
    disconnected = await wait_status(handle, DesktopStatus.DISCONNECTED)
    server_clock = await now(timer_env)

    result = await handle.result()

    assert result.final_status is DesktopStatus.DESTROYED
    assert "disconnected retention expired" in result.reason
    assert await now(timer_env) - server_clock >= RETENTION
    final = await status(handle)
    released = event_time(final, "released: disconnected retention expired")
    assert disconnected.snapshot.disconnected_at is not None
    assert near(released - disconnected.snapshot.disconnected_at, RETENTION), final.events
    assert server_id not in timer_rig.cloud.servers, "the VM must be deleted, wiping every trace"
    assert (timer_rig.cloud.created, timer_rig.cloud.deleted) == (1, 1)
    assert final.snapshot.user is None


async def test_reconnect_inside_the_buffer_cancels_the_release(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    await session(handle, DISCONNECT)
    await wait_status(handle, DesktopStatus.DISCONNECTED)
    await timer_env.sleep(10 * MINUTE)
    await session(handle, CONNECT)
    await wait_status(handle, DesktopStatus.CONNECTED)

    await timer_env.sleep(25 * MINUTE)  # 35 minutes after the disconnect: past the original deadline

    after = await status(handle)
    assert after.snapshot.status is DesktopStatus.CONNECTED, after.events
    assert after.snapshot.user == "alice"
    assert server_id in timer_rig.cloud.servers and timer_rig.cloud.deleted == 0
    assert not any("released" in e for e in after.events)

    # A later disconnect gets a fresh, full buffer.
    await session(handle, DISCONNECT)
    second = await wait_status(handle, DesktopStatus.DISCONNECTED)
    result = await handle.result()
    assert result.final_status is DesktopStatus.DESTROYED
    released = event_time(await status(handle), "released: disconnected retention expired")
    assert second.snapshot.disconnected_at is not None
    assert near(released - second.snapshot.disconnected_at, RETENTION)


async def test_repeated_network_blips_never_cost_the_user_the_desktop(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    for _ in range(6):  # two hours of blips, each shorter than the buffer
        await session(handle, DISCONNECT)
        await wait_status(handle, DesktopStatus.DISCONNECTED)
        await timer_env.sleep(20 * MINUTE)
        await session(handle, CONNECT)
        await wait_status(handle, DesktopStatus.CONNECTED)
        await timer_env.sleep(MINUTE)

    after = await status(handle)
    assert after.snapshot.status is DesktopStatus.CONNECTED
    assert (after.snapshot.user, after.snapshot.server_id) == ("alice", server_id)
    assert server_id in timer_rig.cloud.servers and timer_rig.cloud.deleted == 0


async def test_a_repeated_disconnect_report_does_not_extend_the_buffer(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    """Session events are fire-and-forget and may arrive twice (agent and gateway, or a retry).

    The buffer runs from when the user disconnected: a second DISCONNECT with no
    CONNECT in between is not use of the desktop and must not push the release out.
    """
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    await session(handle, DISCONNECT)
    first = await wait_status(handle, DesktopStatus.DISCONNECTED)
    await timer_env.sleep(20 * MINUTE)
    await session(handle, DISCONNECT)  # the same disconnect, reported again

    result = await handle.result()

    assert result.final_status is DesktopStatus.DESTROYED
    released = event_time(await status(handle), "released: disconnected retention expired")
    assert first.snapshot.disconnected_at is not None
    waited = released - first.snapshot.disconnected_at
    assert near(waited, RETENTION), f"released {waited} after the user disconnected, not {RETENTION}"
    assert server_id not in timer_rig.cloud.servers


async def test_zero_retention_releases_at_once_on_disconnect(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=0))
    await session(handle, DISCONNECT)

    result = await handle.result()

    assert result.final_status is DesktopStatus.DESTROYED
    final = await status(handle)
    disconnected_at = final.snapshot.disconnected_at
    assert disconnected_at is not None
    released = event_time(final, "released: disconnected retention expired")
    assert released - disconnected_at < SLACK, final.events
    assert server_id not in timer_rig.cloud.servers


async def test_immediate_release_update_skips_the_buffer(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    """Seed 001, 'Immediate Release': reclaim a disconnected desktop without waiting for the buffer."""
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    await session(handle, DISCONNECT)
    disconnected = await wait_status(handle, DesktopStatus.DISCONNECTED)

    answer = await handle.execute_update(DesktopWorkflow.release, ReleaseInput(reason="admin released it"))

    assert answer.accepted
    result = await handle.result()
    assert result.final_status is DesktopStatus.DESTROYED
    assert "admin released it" in result.reason
    released = event_time(await status(handle), "released: admin released it")
    assert disconnected.snapshot.disconnected_at is not None
    assert released - disconnected.snapshot.disconnected_at < SLACK, "it must not wait for the buffer"
    assert server_id not in timer_rig.cloud.servers


async def test_release_update_is_refused_for_a_desktop_nobody_uses(timer_rig: Rig) -> None:
    handle = await timer_rig.start_desktop(desktop_spec())
    ready = await wait_status(handle, DesktopStatus.READY)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(DesktopWorkflow.release, ReleaseInput())
    assert "nothing to release" in str(refused.value.cause)
    assert (await status(handle)).snapshot.status is DesktopStatus.READY
    assert ready.snapshot.server_id in timer_rig.cloud.servers


# --- first connect, inactivity, max session ---------------------------------------------------------


async def test_first_connect_timeout_releases_a_claimed_desktop_nobody_connects_to(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    timers = Timers(disconnected_retention_s=1800, first_connect_timeout_s=900)
    unused = await timer_rig.start_desktop(desktop_spec(timers))
    used = await timer_rig.start_desktop(desktop_spec(timers))
    await wait_status(unused, DesktopStatus.READY)
    await wait_status(used, DesktopStatus.READY)
    await assign(unused, "alice")
    await assign(used, "bob")
    claimed = await wait_status(unused, DesktopStatus.ASSIGNED)
    await wait_status(used, DesktopStatus.ASSIGNED)

    await timer_env.sleep(14 * MINUTE)
    await session(used, CONNECT)  # bob connects in time
    await wait_status(used, DesktopStatus.CONNECTED)
    await timer_env.sleep(2 * MINUTE)

    gone = await wait_status(unused, DesktopStatus.DESTROYED)
    assert claimed.snapshot.assigned_at is not None
    released = event_time(gone, "released: nobody connected after the claim")
    assert near(released - claimed.snapshot.assigned_at, timedelta(minutes=15)), gone.events
    assert claimed.snapshot.server_id not in timer_rig.cloud.servers
    still = await status(used)
    assert (still.snapshot.status, still.snapshot.user) == (DesktopStatus.CONNECTED, "bob")


async def test_inactivity_timeout_disconnects_the_idle_user_then_retention_releases(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    timers = Timers(disconnected_retention_s=1800, inactivity_timeout_s=600)
    handle, server_id = await connected_desktop(timer_rig, timers)
    await session(handle, IDLE)
    idle = await eventually(lambda: status(handle), lambda r: r.snapshot.idle_since is not None)
    idle_from = idle.snapshot.idle_since
    assert idle_from is not None

    await timer_env.sleep(10 * MINUTE + timedelta(seconds=1))

    cut = await wait_status(handle, DesktopStatus.DISCONNECTED)
    assert cut.pending_command == "disconnect", "the agent must be told to disconnect the idle user"
    assert cut.snapshot.user == "alice" and server_id in timer_rig.cloud.servers
    assert cut.snapshot.disconnected_at is not None
    assert near(cut.snapshot.disconnected_at - idle_from, timedelta(minutes=10)), cut.events

    result = await handle.result()
    assert result.final_status is DesktopStatus.DESTROYED
    released = event_time(await status(handle), "released: disconnected retention expired")
    assert near(released - cut.snapshot.disconnected_at, RETENTION)
    assert server_id not in timer_rig.cloud.servers


async def test_activity_cancels_the_inactivity_timer(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    timers = Timers(disconnected_retention_s=1800, inactivity_timeout_s=600)
    handle, _ = await connected_desktop(timer_rig, timers)
    await session(handle, IDLE)
    await timer_env.sleep(5 * MINUTE)
    await session(handle, ACTIVE)
    await timer_env.sleep(10 * MINUTE)  # 15 minutes after the first IDLE

    busy = await status(handle)
    assert busy.snapshot.status is DesktopStatus.CONNECTED, busy.events
    assert busy.pending_command is None

    # Idle again: the timer counts from the new IDLE, not the first one.
    await session(handle, IDLE)
    await timer_env.sleep(9 * MINUTE)
    assert (await status(handle)).snapshot.status is DesktopStatus.CONNECTED
    await timer_env.sleep(MINUTE + timedelta(seconds=1))
    cut = await wait_status(handle, DesktopStatus.DISCONNECTED)
    assert cut.pending_command == "disconnect"


async def test_max_session_duration_ends_the_session(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    timers = Timers(disconnected_retention_s=1800, max_session_s=3600)
    handle, server_id = await connected_desktop(timer_rig, timers)
    started = (await status(handle)).snapshot.session_started_at
    await timer_env.sleep(20 * MINUTE)
    await session(handle, DISCONNECT)
    await timer_env.sleep(10 * MINUTE)
    await session(handle, CONNECT)  # a reconnect does not restart the session clock

    result = await handle.result()

    assert result.final_status is DesktopStatus.DESTROYED
    assert "maximum session duration reached" in result.reason
    released = event_time(await status(handle), "released: maximum session duration reached")
    assert started is not None
    assert near(released - started, timedelta(hours=1))
    assert server_id not in timer_rig.cloud.servers


# --- logoff ------------------------------------------------------------------------------------------


async def test_logoff_releases_at_once_in_a_floating_pool(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    handle, server_id = await connected_desktop(timer_rig, Timers(disconnected_retention_s=1800))
    await session(handle, LOGOFF)

    result = await handle.result()

    assert result.final_status is DesktopStatus.DESTROYED
    assert "user logged off" in result.reason
    final = await status(handle)
    connected_at = final.snapshot.connected_at
    assert connected_at is not None
    released = event_time(final, "released: user logged off")
    assert released - connected_at < SLACK, "logoff must not wait for the retention buffer"
    assert server_id not in timer_rig.cloud.servers


async def test_logoff_only_disconnects_in_a_personal_pool(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    timers = Timers(disconnected_retention_s=0, max_session_s=60, first_connect_timeout_s=60)
    handle, server_id = await connected_desktop(
        timer_rig, timers, assignment=Assignment.PERSONAL, prestarted=0, release=ReleasePolicy.DESTROY
    )
    await session(handle, LOGOFF)
    await wait_status(handle, DesktopStatus.DISCONNECTED)

    await timer_env.sleep(timedelta(hours=3))  # no release timer applies to a personal desktop

    after = await status(handle)
    assert after.snapshot.status is DesktopStatus.DISCONNECTED, after.events
    assert after.snapshot.user == "alice", "a personal desktop stays its user's"
    assert server_id in timer_rig.cloud.servers and timer_rig.cloud.deleted == 0
    assert not any("released" in e for e in after.events)


# --- release policies ----------------------------------------------------------------------------------


async def test_revert_pool_rebuilds_the_desktop_and_makes_it_ready_again(
    timer_env: WorkflowEnvironment, timer_rig: Rig
) -> None:
    handle, server_id = await connected_desktop(
        timer_rig, Timers(disconnected_retention_s=1800), release=ReleasePolicy.REVERT
    )
    await session(handle, DISCONNECT)
    await wait_status(handle, DesktopStatus.DISCONNECTED)

    await timer_env.sleep(RETENTION + timedelta(seconds=1))

    ready = await wait_status(handle, DesktopStatus.READY)
    server = timer_rig.server(server_id)
    assert server is not None, "a revert pool keeps its VM"
    assert (server.rebuilds, server.status, server.image) == (1, "ACTIVE", "win11-golden")
    assert ready.snapshot.server_id == server_id and ready.snapshot.user is None
    assert timer_rig.cloud.deleted == 0
    assert any("reverted" in e for e in ready.events)

    await assign(handle, "bob")  # and it serves the next user
    again = await wait_status(handle, DesktopStatus.ASSIGNED)
    assert again.snapshot.user == "bob"


async def test_manual_pool_awaits_return_then_reverts_on_return(timer_env: WorkflowEnvironment, timer_rig: Rig) -> None:
    handle, server_id = await connected_desktop(
        timer_rig, Timers(disconnected_retention_s=1800), release=ReleasePolicy.MANUAL
    )
    await session(handle, LOGOFF)
    waiting = await wait_status(handle, DesktopStatus.AWAITING_RETURN)
    assert waiting.snapshot.user is None
    await timer_env.sleep(timedelta(hours=2))  # nothing returns it but an administrator
    assert (await status(handle)).snapshot.status is DesktopStatus.AWAITING_RETURN
    assert timer_rig.server(server_id).rebuilds == 0

    await handle.signal(DesktopWorkflow.return_desktop, ReturnInput(actor="admin"))

    ready = await wait_status(handle, DesktopStatus.READY)
    server = timer_rig.server(server_id)
    assert server is not None and server.rebuilds == 1 and server.status == "ACTIVE"
    assert ready.snapshot.user is None and timer_rig.cloud.deleted == 0


async def test_warm_tier_desktop_idles_powered_off_and_starts_when_assigned(timer_rig: Rig) -> None:
    handle = await timer_rig.start_desktop(desktop_spec(release=ReleasePolicy.REVERT), power_on=False)

    standby = await wait_status(handle, DesktopStatus.STANDBY)

    assert not standby.snapshot.powered_on
    assert timer_rig.server(standby.snapshot.server_id).status == "SHUTOFF"
    await assign(handle, "alice")
    assigned = await wait_status(handle, DesktopStatus.ASSIGNED)
    assert assigned.snapshot.powered_on and assigned.snapshot.user == "alice"
    assert timer_rig.server(assigned.snapshot.server_id).status == "ACTIVE"
    assert any("starting" in e for e in assigned.events), "it boots for its user"


async def test_failed_build_ends_failed_with_no_server_left(timer_rig: Rig) -> None:
    spec = desktop_spec()
    timer_rig.cloud.fail_names.add(spec.desktop_name(1))
    handle = await timer_rig.start_desktop(spec)

    result = await handle.result()

    assert result.final_status is DesktopStatus.FAILED
    assert "provisioning failed" in result.reason
    assert timer_rig.cloud.servers == {}, "a failed desktop is cleaned up, never silently kept"
    assert (timer_rig.cloud.created, timer_rig.cloud.deleted) == (1, 1)


async def test_remove_takes_an_idle_desktop_out(timer_rig: Rig) -> None:
    handle = await timer_rig.start_desktop(desktop_spec())
    ready = await wait_status(handle, DesktopStatus.READY)
    await handle.signal(DesktopWorkflow.remove, RemoveInput(reason="pool above its targets"))
    result = await handle.result()
    assert result.final_status is DesktopStatus.DESTROYED
    assert ready.snapshot.server_id not in timer_rig.cloud.servers


async def test_connect_delivered_with_its_assignment_is_not_lost(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    """The pool's `assign` and the user's CONNECT are separate fire-and-forget signals.

    The user gets the desktop from the claim Update and may connect before the
    desktop's workflow has run; when both signals reach the workflow in one
    workflow task (here: while its worker is briefly away), the CONNECT, sent
    after the assignment, must still count, or the first-connect timeout
    releases the desktop under a connected user. (On the dev server: the test
    server does not hand a workflow back to a restarted worker promptly.)
    """
    cloud = FakeCloud()
    async with rig(dev_env.client, task_queue, sqlite_url, cloud, terminate=False) as first:
        handle = await first.start_desktop(desktop_spec(Timers(first_connect_timeout_s=900)))
        await wait_status(handle, DesktopStatus.READY)
    await assign(handle, "alice")
    await session(handle, CONNECT)
    async with rig(dev_env.client, task_queue, sqlite_url, cloud) as second:
        second.started.append(handle)
        after = await eventually(lambda: status(handle), lambda r: r.snapshot.status is not DesktopStatus.READY, 20)
        assert after.snapshot.user == "alice"
        assert after.snapshot.status is DesktopStatus.CONNECTED, after.events
