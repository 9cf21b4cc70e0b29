"""Pure rules of an administrator's day-2 operations on one desktop: which power operation
and which detach a desktop takes in which status.

No I/O and no clock: DesktopWorkflow's update validators ask these (and ask again when the
loop acts), tests call them with plain values. Each refusal is one sentence naming the rule.
"""

from __future__ import annotations

from workflows.messages import DesktopStatus, PowerOperation

IDLE = (DesktopStatus.READY, DesktopStatus.STANDBY)
# Held by a user: their session may run on it.
IN_USE = (DesktopStatus.ASSIGNED, DesktopStatus.CONNECTED, DesktopStatus.DISCONNECTED)
# Where the desktop's loop rests between steps: the statuses an administrator operates in.
OPERABLE = (*IDLE, *IN_USE, DesktopStatus.AWAITING_RETURN)
RESTARTS = (PowerOperation.RESTART, PowerOperation.FORCE_RESTART)


def power_refusal(status: DesktopStatus, powered_on: bool, operation: PowerOperation) -> str | None:
    """Why `operation` is refused now, or None to take it.

    Power off never happens under a user (it would strand them: release first); a restart of
    a desktop in use is allowed (the session is interrupted, the desktop stays theirs); a
    restart needs a running desktop; nothing is done while the desktop is in a transition.
    """
    if status not in OPERABLE:
        return f"desktop is {status.value}: power operations wait until it is idle, in use or awaiting return"
    if operation is PowerOperation.OFF and status in IN_USE:
        return f"desktop is {status.value} by its user: powering it off would strand them; release it first"
    if operation in RESTARTS and not powered_on:
        return "desktop is powered off: power it on instead of restarting it"
    return None


def detach_refusal(status: DesktopStatus, powered_on: bool) -> str | None:
    """Why the desktop cannot be detached from its pool now, or None.

    Only a powered-off desktop nobody holds is detached (it becomes an independent server as it
    stands): a standby desktop, or one awaiting return that an administrator powered off.
    """
    if status in IN_USE or status is DesktopStatus.STARTING:
        return f"must be powered off: desktop is {status.value} by its user; release it and power it off first"
    if status not in (DesktopStatus.STANDBY, DesktopStatus.READY, DesktopStatus.AWAITING_RETURN):
        return f"desktop is {status.value}: only an idle or returned desktop, powered off, is detached"
    if powered_on:
        return f"must be powered off: desktop is {status.value} and running; power it off first"
    return None
