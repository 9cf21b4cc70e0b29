"""Server state machine with lazy, timestamp-based evaluation.

An action records ``task_state`` + ``task_due`` + ``task_result``; reading a
server "settles" it: once ``task_due`` has passed the task completes. Status,
vm_state and power_state follow Nova's own mapping
(nova/api/openstack/common.py ``_STATE_MAP``) so clients polling with
openstacksdk's ``wait_for_server`` see the same sequence as on real Nova.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tools.embedded_cloud.records import ServerRecord

# Nova power states (nova/compute/power_state.py)
NOSTATE, RUNNING, SHUTDOWN = 0, 1, 4

GONE = "deleted"

# (vm_state, task_state) -> API status; task_state None key is the default.
_STATUS_MAP: dict[str, dict[str | None, str]] = {
    "building": {None: "BUILD"},
    "active": {
        None: "ACTIVE",
        "rebooting": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "rebuilding": "REBUILD",
    },
    "stopped": {None: "SHUTOFF", "rebuilding": "REBUILD"},
    "error": {None: "ERROR", "rebuilding": "REBUILD"},
}


class InvalidState(Exception):
    """Action not allowed in the current state (HTTP 409 like Nova)."""


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def settle(server: ServerRecord, now: float) -> bool:
    """Complete the pending task if due. Returns False once the server is gone."""
    if server.task_state is None or server.task_due is None:
        return True
    if now < server.task_due:
        return True
    if server.task_result == GONE:
        return False
    due = server.task_due
    if server.task_state == "spawning" and server.task_result == "active":
        server.launched_at = due
    if server.task_result == "error":
        server.fault = server.pending_fault
    server.vm_state = server.task_result or server.vm_state
    server.task_state = server.task_due = server.task_result = None
    server.pending_fault = None
    # The change happened at the due time, not when somebody looked.
    server.updated_at = max(server.updated_at, due)
    return True


def status(server: ServerRecord) -> str:
    by_task = _STATUS_MAP.get(server.vm_state, {None: "UNKNOWN"})
    return by_task.get(server.task_state, by_task[None])


def power_state(server: ServerRecord) -> int:
    if server.vm_state == "active":
        return RUNNING
    if server.vm_state == "stopped":
        return SHUTDOWN
    return NOSTATE


def is_building(server: ServerRecord) -> bool:
    return server.vm_state == "building" and server.task_result != GONE


def check_state(
    server: ServerRecord,
    action: str,
    vm_states: tuple[str, ...],
    task_states: tuple[str | None, ...] = (None,),
) -> None:
    # Same order and wording as nova.compute.api.check_instance_state.
    if server.vm_state not in vm_states:
        raise InvalidState(f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}")
    if server.task_state not in task_states:
        raise InvalidState(f"Cannot '{action}' instance {server.id} while it is in task_state {server.task_state}")


def _begin(server: ServerRecord, task: str, result: str, delay: float, now: float) -> None:
    server.task_state = task
    server.task_result = result
    server.task_due = now + delay
    server.updated_at = now


def begin_build(
    server: ServerRecord,
    now: float,
    delay: float,
    *,
    fail: bool,
    stuck: bool,
) -> None:
    _begin(server, "spawning", "error" if fail else "active", delay, now)
    if stuck:
        server.task_due = None
    if fail:
        server.pending_fault = {
            "code": 500,
            "message": "No valid host was found. There are not enough hosts available.",
            "created": iso(now + delay),
        }


def begin_stop(server: ServerRecord, now: float, delay: float) -> None:
    check_state(server, "stop", ("active", "error"))
    _begin(server, "powering-off", "stopped", delay, now)


def begin_start(server: ServerRecord, now: float, delay: float) -> None:
    check_state(server, "start", ("stopped",))
    _begin(server, "powering-on", "active", delay, now)


def begin_reboot(server: ServerRecord, hard: bool, now: float, delay: float) -> None:
    if hard:
        # Nova lets a hard reboot interrupt a soft one that hangs.
        check_state(server, "reboot", ("active", "stopped", "error"), (None, "rebooting"))
        server.fault = None
        _begin(server, "rebooting_hard", "active", delay, now)
    else:
        check_state(server, "reboot", ("active",))
        _begin(server, "rebooting", "active", delay, now)


def begin_rebuild(server: ServerRecord, now: float, delay: float) -> None:
    check_state(server, "rebuild", ("active", "stopped", "error"))
    # Nova keeps a stopped server stopped after a rebuild.
    result = "stopped" if server.vm_state == "stopped" else "active"
    server.fault = None
    server.generation += 1
    _begin(server, "rebuilding", result, delay, now)


def begin_delete(server: ServerRecord, now: float, delay: float) -> None:
    """Deleting is allowed in any state; repeating it keeps the first due time."""
    if server.task_state == "deleting":
        return
    _begin(server, "deleting", GONE, delay, now)


def require_console_output(server: ServerRecord) -> None:
    """The console log exists once the guest was spawned (also when stopped)."""
    check_state(
        server,
        "get_console_output",
        ("active", "stopped", "error"),
        (None, "powering-off", "powering-on", "rebooting", "rebooting_hard", "rebuilding"),
    )


def require_active_for_console(server: ServerRecord) -> None:
    """Nova's compute manager raises InstanceNotReady (409) unless ACTIVE."""
    if server.vm_state != "active" or server.task_state in ("deleting",):
        raise InvalidState(f"Instance {server.id} is not ready.")
