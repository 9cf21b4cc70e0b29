"""An administrator's power operations and detach on one desktop, as pure rules (issue 7).

Power off never happens under a user (release first); a restart of a desktop in use is
allowed; a restart needs a running desktop; nothing is done mid-transition. Only a
powered-off desktop nobody holds is detached.
"""

from __future__ import annotations

import pytest

from workflows.desktop_rules import detach_refusal, power_refusal
from workflows.messages import DesktopStatus, PowerOperation

S, P = DesktopStatus, PowerOperation
IN_USE = [S.ASSIGNED, S.CONNECTED, S.DISCONNECTED]
TRANSITIONS = [S.PROVISIONING, S.STARTING, S.RELEASING, S.FAILED, S.DESTROYED, S.DETACHED]


@pytest.mark.parametrize("status", IN_USE)
def test_power_off_under_a_user_is_refused_naming_the_rule(status: DesktopStatus) -> None:
    refusal = power_refusal(status, True, P.OFF)
    assert refusal is not None and "release it first" in refusal and status.value in refusal


@pytest.mark.parametrize("status", IN_USE)
@pytest.mark.parametrize("operation", [P.RESTART, P.FORCE_RESTART, P.ON])
def test_restart_and_power_on_of_a_desktop_in_use_are_taken(status: DesktopStatus, operation: PowerOperation) -> None:
    assert power_refusal(status, True, operation) is None


@pytest.mark.parametrize("status", [S.READY, S.STANDBY, S.AWAITING_RETURN])
@pytest.mark.parametrize("operation", [P.ON, P.OFF])
def test_idle_and_returned_desktops_are_powered_on_and_off(status: DesktopStatus, operation: PowerOperation) -> None:
    assert power_refusal(status, status is not S.STANDBY, operation) is None


@pytest.mark.parametrize("operation", [P.RESTART, P.FORCE_RESTART])
def test_a_powered_off_desktop_is_not_restarted(operation: PowerOperation) -> None:
    refusal = power_refusal(S.STANDBY, False, operation)
    assert refusal is not None and "power it on" in refusal
    assert power_refusal(S.READY, True, operation) is None


@pytest.mark.parametrize("status", TRANSITIONS)
@pytest.mark.parametrize("operation", list(PowerOperation))
def test_nothing_is_powered_mid_transition(status: DesktopStatus, operation: PowerOperation) -> None:
    refusal = power_refusal(status, True, operation)
    assert refusal is not None and refusal.startswith(f"desktop is {status.value}")


@pytest.mark.parametrize("status", [S.STANDBY, S.AWAITING_RETURN, S.READY])
def test_a_powered_off_unheld_desktop_is_detached(status: DesktopStatus) -> None:
    assert detach_refusal(status, powered_on=False) is None


@pytest.mark.parametrize("status", [S.READY, S.AWAITING_RETURN])
def test_a_running_desktop_is_not_detached(status: DesktopStatus) -> None:
    refusal = detach_refusal(status, powered_on=True)
    assert refusal is not None and refusal.startswith("must be powered off")


@pytest.mark.parametrize("status", [*IN_USE, S.STARTING])
@pytest.mark.parametrize("powered_on", [True, False])
def test_a_desktop_held_by_a_user_is_not_detached(status: DesktopStatus, powered_on: bool) -> None:
    refusal = detach_refusal(status, powered_on)
    assert refusal is not None and "by its user" in refusal


@pytest.mark.parametrize("status", [S.PROVISIONING, S.RELEASING, S.FAILED, S.DESTROYED, S.DETACHED])
def test_a_desktop_mid_transition_or_gone_is_not_detached(status: DesktopStatus) -> None:
    assert detach_refusal(status, powered_on=False) is not None
