"""PoolBook over PoolState: claims, the FIFO line, desktop reports, counts and the outbox.

Rules: claims are idempotent by request id; one and only one desktop per user by default,
and a repeated Connect returns the same desktop (dynamic-pool seed); the per-user maximum
(oVirt seed, 1..32767); a full pool puts the user in line, FIFO, with a position; a disabled
pool takes no new claims; a personal pool only hands out the user's own desktop; repeated
failures restrain the pool with a visible reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.converter import DataConverter

from workflows.messages import ClaimOutcome, ClaimRequest, ClaimStatus, DesktopReport, PoolCounts, ReportKind
from workflows.planning import Slot, lowest_free_numbers, plan_reconcile
from workflows.pool_model import PoolDesktop, PoolState, WaitingClaim
from workflows.pool_spec import Assignment, PoolSpec, ReleasePolicy, Template, Timers
from workflows.pool_state import CLOUD_TROUBLE_HOLD_S, RESTRAIN_AFTER_FAILURES, PoolBook

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
TEMPLATE = Template(image="img", flavor="flv")


def make_spec(**overrides: Any) -> PoolSpec:
    fields: dict[str, Any] = {
        "name": "Claims pool",
        "template": TEMPLATE,
        "naming_mask": "desk-",
        "release": ReleasePolicy.REVERT,
        "prestarted": 1,
        "max_desktops": 10,
    }
    fields.update(overrides)
    return PoolSpec(**fields)


def make_book(**overrides: Any) -> PoolBook:
    return PoolBook(PoolState(pool_id="p", spec=make_spec(**overrides)))


def add_ready(book: PoolBook, number: int, powered_on: bool = True, at: datetime = T0) -> PoolDesktop:
    desktop = book.add_desktop(number, powered_on)
    book.report(
        DesktopReport(desktop.desktop_id, ReportKind.READY, powered_on=powered_on, address=f"10.0.0.{number}"), at
    )
    return desktop


def claim(book: PoolBook, user: str, request_id: str, at: datetime = T0) -> ClaimOutcome:
    return book.claim(ClaimRequest(user=user, request_id=request_id), at)


def assign_messages(book: PoolBook) -> list[tuple[str, str, str]]:
    return [(m.desktop_id, m.user, m.request_id) for m in book.state.outbox if m.kind == "assign"]


def free_after_use(book: PoolBook, desktop: PoolDesktop, at: datetime = T0) -> None:
    """The user's session ends and the desktop, reverted, is back in the pool."""
    book.report(DesktopReport(desktop.desktop_id, ReportKind.RELEASED), at)
    book.report(DesktopReport(desktop.desktop_id, ReportKind.READY, address=desktop.address), at)


# --- claiming an idle desktop -------------------------------------------------------------------


def test_claim_gets_an_idle_ready_desktop_and_sends_the_assignment() -> None:
    book = make_book()
    desktop = add_ready(book, 1)
    outcome = claim(book, "alice", "r1")
    assert outcome.status is ClaimStatus.ASSIGNED
    assert outcome.desktop_id == desktop.desktop_id
    assert outcome.desktop_name == "desk-001"
    assert outcome.address == "10.0.0.1"
    assert outcome.desktop_ready
    assert outcome.user == "alice"
    assert outcome.request_id == "r1"
    assert desktop.slot is Slot.ASSIGNED and desktop.user == "alice"
    assert assign_messages(book) == [(desktop.desktop_id, "alice", "r1")]
    assert book.counts().assigned == 1
    assert book.counts().ready == 0


def test_claim_of_a_powered_off_desktop_is_assigned_but_not_ready_yet() -> None:
    book = make_book()
    add_ready(book, 1, powered_on=False)
    outcome = claim(book, "alice", "r1")
    assert outcome.status is ClaimStatus.ASSIGNED
    assert not outcome.desktop_ready  # it boots for its user first


def test_claim_prefers_a_running_desktop_over_a_powered_off_one() -> None:
    book = make_book()
    add_ready(book, 1, powered_on=False)
    running = add_ready(book, 2)
    assert claim(book, "alice", "r1").desktop_id == running.desktop_id


def test_claims_are_idempotent_by_request_id() -> None:
    book = make_book(max_desktops_per_user=5)
    add_ready(book, 1)
    add_ready(book, 2)
    first = claim(book, "alice", "r1")
    again = claim(book, "alice", "r1", T0 + timedelta(seconds=5))
    assert again == first
    assert book.counts().assigned == 1
    assert book.counts().ready == 1
    assert len(assign_messages(book)) == 1


def test_retried_waiting_claim_keeps_its_place() -> None:
    book = make_book(max_desktops=1, prestarted=1)
    add_ready(book, 1)
    claim(book, "alice", "r1")
    first = claim(book, "bob", "r2")
    again = claim(book, "bob", "r2")
    assert again.status is ClaimStatus.WAITING
    assert again.position == first.position == 1
    assert len(book.state.queue) == 1


def test_no_desktop_is_ever_given_to_two_users() -> None:
    book = make_book(max_desktops=4, prestarted=1)
    for n in range(1, 5):
        add_ready(book, n)
    outcomes = [claim(book, f"user{i}", f"r{i}") for i in range(8)]
    assigned = [o.desktop_id for o in outcomes if o.status is ClaimStatus.ASSIGNED]
    assert len(assigned) == 4
    assert len(set(assigned)) == 4
    assert [o.position for o in outcomes if o.status is ClaimStatus.WAITING] == [1, 2, 3, 4]


# --- one desktop per user -----------------------------------------------------------------------


def test_repeated_connect_with_a_new_request_returns_the_same_desktop() -> None:
    book = make_book()
    add_ready(book, 1)
    add_ready(book, 2)
    first = claim(book, "alice", "r1")
    second = claim(book, "alice", "r2")
    assert second.status is ClaimStatus.ASSIGNED
    assert second.desktop_id == first.desktop_id
    assert len(book.held_by("alice")) == 1
    assert book.counts().ready == 1
    assert len(assign_messages(book)) == 1


def test_repeated_connect_while_waiting_returns_the_same_place_in_line() -> None:
    book = make_book(max_desktops=1)
    add_ready(book, 1)
    claim(book, "alice", "r1")
    first = claim(book, "bob", "r2")
    claim(book, "carol", "r3")
    second = claim(book, "bob", "r4")
    assert second.status is ClaimStatus.WAITING
    assert second.position == first.position == 1
    assert [w.user for w in book.state.queue] == ["bob", "carol"]


@pytest.mark.parametrize("holding", [True, False], ids=["assigned", "waiting"])
def test_status_of_a_repeated_connect_is_known_by_its_own_request_id(holding: bool) -> None:
    """The claim-status query answers from outcome_for: the request id it was given must be known."""
    book = make_book(max_desktops=1)
    add_ready(book, 1)
    if not holding:
        claim(book, "someone", "r0")
    first = claim(book, "alice", "r1")
    second = claim(book, "alice", "r2")
    assert second.status is first.status
    known = book.outcome_for("r2")
    assert known is not None, "a claim that was answered is reported as unknown by its request id"
    assert known.status is first.status
    assert known.desktop_id == first.desktop_id


def test_per_user_maximum_above_one() -> None:
    book = make_book(max_desktops_per_user=2)
    for n in range(1, 5):
        add_ready(book, n)
    first = claim(book, "alice", "r1")
    second = claim(book, "alice", "r2")
    third = claim(book, "alice", "r3")
    assert first.status is second.status is ClaimStatus.ASSIGNED
    assert first.desktop_id != second.desktop_id
    assert third.status is ClaimStatus.REJECTED
    assert "2" in third.reason
    assert len(book.held_by("alice")) == 2
    assert book.counts().ready == 2
    # Another user is not limited by alice's maximum.
    assert claim(book, "bob", "r4").status is ClaimStatus.ASSIGNED


def test_per_user_maximum_counts_claims_waiting_in_line() -> None:
    book = make_book(max_desktops_per_user=2, max_desktops=1)
    add_ready(book, 1)
    assert claim(book, "alice", "r1").status is ClaimStatus.ASSIGNED
    assert claim(book, "alice", "r2").status is ClaimStatus.WAITING
    assert claim(book, "alice", "r3").status is ClaimStatus.REJECTED
    assert len(book.state.queue) == 1


def test_released_desktop_frees_the_users_hold() -> None:
    book = make_book()
    first_desktop = add_ready(book, 1)
    add_ready(book, 2)
    claim(book, "alice", "r1")
    book.report(DesktopReport(first_desktop.desktop_id, ReportKind.RELEASED), T0)
    assert book.held_by("alice") == []
    assert first_desktop.user is None
    again = claim(book, "alice", "r2")
    assert again.status is ClaimStatus.ASSIGNED
    assert again.desktop_id != first_desktop.desktop_id  # the released one is being reverted


# --- disabled and personal pools -----------------------------------------------------------------


def test_disabled_pool_rejects_new_claims() -> None:
    book = make_book(enabled=False)
    add_ready(book, 1)
    outcome = claim(book, "alice", "r1")
    assert outcome.status is ClaimStatus.REJECTED
    assert "disabled" in outcome.reason
    assert book.counts().ready == 1
    assert book.state.queue == []
    assert book.state.outbox == []
    # The answer is remembered for the request id.
    assert book.outcome_for("r1") == outcome


def personal_book() -> tuple[PoolBook, PoolDesktop]:
    book = make_book(assignment=Assignment.PERSONAL, prestarted=0, min_desktops=2, max_desktops=3)
    mine = add_ready(book, 1)
    add_ready(book, 2)
    # The administrator assigned desktop 1 to alice.
    book.update(mine, slot=Slot.ASSIGNED, user="alice", request_id="admin-assign")
    return book, mine


def test_personal_pool_returns_the_users_own_desktop() -> None:
    book, mine = personal_book()
    outcome = claim(book, "alice", "r1")
    assert outcome.status is ClaimStatus.ASSIGNED
    assert outcome.desktop_id == mine.desktop_id
    assert claim(book, "alice", "r2").desktop_id == mine.desktop_id


def test_personal_pool_never_hands_out_an_unassigned_desktop() -> None:
    book, _ = personal_book()
    outcome = claim(book, "bob", "r1")
    assert outcome.status is ClaimStatus.REJECTED
    assert book.counts().ready == 1
    assert book.state.queue == []
    assert assign_messages(book) == []


# --- the line -----------------------------------------------------------------------------------


def full_pool() -> tuple[PoolBook, list[PoolDesktop]]:
    """Two desktops, both in use: the pool is at max."""
    book = make_book(max_desktops=2, prestarted=1)
    desktops = [add_ready(book, 1), add_ready(book, 2)]
    claim(book, "u1", "r1")
    claim(book, "u2", "r2")
    return book, desktops


def test_full_pool_answers_wait_with_position_and_not_preparing() -> None:
    book, _ = full_pool()
    outcomes = [claim(book, f"u{i}", f"r{i}") for i in (3, 4, 5)]
    assert [o.status for o in outcomes] == [ClaimStatus.WAITING] * 3
    assert [o.position for o in outcomes] == [1, 2, 3]
    assert not any(o.preparing for o in outcomes)
    assert all(o.desktop_id is None for o in outcomes)
    assert book.counts().waiting == 3


def test_pool_below_max_answers_wait_while_preparing() -> None:
    book = make_book(max_desktops=5)
    outcome = claim(book, "alice", "r1")
    assert outcome.status is ClaimStatus.WAITING
    assert outcome.preparing
    assert outcome.position == 1


def test_line_is_served_first_come_first_served() -> None:
    book, (d1, d2) = full_pool()
    for i in (3, 4, 5):
        claim(book, f"u{i}", f"r{i}")
    free_after_use(book, d1)
    book.serve_queue()
    assert d1.user == "u3"
    assert assign_messages(book)[-1] == (d1.desktop_id, "u3", "r3")
    served = book.outcome_for("r3")
    assert served is not None and served.status is ClaimStatus.ASSIGNED and served.desktop_id == d1.desktop_id
    for request_id, position in (("r4", 1), ("r5", 2)):
        waiting = book.outcome_for(request_id)
        assert waiting is not None and waiting.position == position
    free_after_use(book, d2)
    book.serve_queue()
    assert d2.user == "u4"
    assert [w.user for w in book.state.queue] == ["u5"]


def test_a_new_claim_does_not_jump_the_line() -> None:
    book, (d1, _) = full_pool()
    claim(book, "u3", "r3")
    free_after_use(book, d1)
    late = claim(book, "u6", "r6")  # arrives before the pool serves its line
    assert late.status is ClaimStatus.WAITING
    assert late.position == 2
    book.serve_queue()
    assert d1.user == "u3"


def test_serve_queue_without_idle_desktops_changes_nothing() -> None:
    book, _ = full_pool()
    claim(book, "u3", "r3")
    outbox = list(book.state.outbox)
    book.serve_queue()
    assert [w.user for w in book.state.queue] == ["u3"]
    assert book.state.outbox == outbox


def test_new_desktop_ready_serves_the_head_of_the_line() -> None:
    book = make_book(max_desktops=5)
    claim(book, "alice", "r1")
    claim(book, "bob", "r2")
    desktop = add_ready(book, 1)
    book.serve_queue()
    assert desktop.user == "alice"
    assert [w.user for w in book.state.queue] == ["bob"]


# --- claim wait timeout ------------------------------------------------------------------------


def test_waiting_claims_expire_after_the_claim_wait_timeout() -> None:
    book = make_book(max_desktops=1, timers=Timers(claim_wait_timeout_s=60))
    add_ready(book, 1)
    claim(book, "u1", "r1")
    claim(book, "u2", "r2", T0)
    claim(book, "u3", "r3", T0 + timedelta(seconds=30))
    book.expire_claims(T0 + timedelta(seconds=59))
    assert [w.user for w in book.state.queue] == ["u2", "u3"]
    book.expire_claims(T0 + timedelta(seconds=61))
    assert [w.user for w in book.state.queue] == ["u3"]
    expired = book.outcome_for("r2")
    assert expired is not None and expired.status is ClaimStatus.EXPIRED
    still = book.outcome_for("r3")
    assert still is not None and still.status is ClaimStatus.WAITING and still.position == 1
    book.expire_claims(T0 + timedelta(seconds=91))
    assert book.state.queue == []
    # A retry of the expired request gets the same answer, not a new place in line.
    assert claim(book, "u2", "r2", T0 + timedelta(seconds=92)).status is ClaimStatus.EXPIRED


def test_next_claim_expiry_is_the_heads_deadline() -> None:
    book = make_book(max_desktops=1, timers=Timers(claim_wait_timeout_s=120))
    assert book.next_claim_expiry() is None
    claim(book, "u1", "r1", T0)
    assert book.next_claim_expiry() == T0 + timedelta(seconds=120)


# --- reports from desktops -------------------------------------------------------------------------


def fail(book: PoolBook, number: int, at: datetime, reason: str = "quota exceeded") -> None:
    desktop = book.add_desktop(number, True)
    book.report(DesktopReport(desktop.desktop_id, ReportKind.GONE, failed=True, reason=reason), at)


def test_ready_report_makes_a_provisioning_desktop_idle() -> None:
    book = make_book()
    running = book.add_desktop(1, True)
    standby = book.add_desktop(2, False)
    assert book.counts().provisioning == 2
    assert book.provisioning_running() == 1
    book.report(DesktopReport(running.desktop_id, ReportKind.READY, address="10.0.0.1"), T0)
    book.report(DesktopReport(standby.desktop_id, ReportKind.READY, powered_on=False), T0)
    assert running.slot is Slot.READY and running.address == "10.0.0.1"
    assert standby.slot is Slot.STANDBY
    counts = book.counts()
    assert (counts.provisioning, counts.ready, counts.standby) == (0, 1, 1)


def test_late_ready_report_does_not_take_a_desktop_from_its_user() -> None:
    book = make_book()
    desktop = add_ready(book, 1)
    claim(book, "alice", "r1")
    book.report(DesktopReport(desktop.desktop_id, ReportKind.READY), T0)
    assert desktop.slot is Slot.ASSIGNED and desktop.user == "alice"
    assert claim(book, "bob", "r2").status is ClaimStatus.WAITING


def test_gone_frees_the_desktop_number() -> None:
    book = make_book()
    desktops = [add_ready(book, n) for n in (1, 2, 3)]
    book.report(DesktopReport(desktops[1].desktop_id, ReportKind.GONE), T0)
    assert desktops[1].desktop_id not in book.by_id
    assert book.counts().live == 2
    assert lowest_free_numbers((d.number for d in book.state.desktops), 2) == [2, 4]
    replacement = book.add_desktop(2, True)
    assert replacement.name == "desk-002"
    assert replacement.desktop_id != desktops[1].desktop_id  # a new desktop, not the old one back
    assert len({d.name for d in book.state.desktops}) == len(book.state.desktops)


def test_report_from_an_unknown_desktop_is_ignored() -> None:
    book = make_book()
    add_ready(book, 1)
    before = book.counts()
    book.report(DesktopReport("p.999", ReportKind.GONE, failed=True), T0)
    book.report(DesktopReport("p.999", ReportKind.READY), T0)
    assert book.counts() == before
    assert book.state.consecutive_failures == 0


def test_three_failures_in_a_row_restrain_the_pool_with_a_reason_and_backoff() -> None:
    book = make_book()
    assert RESTRAIN_AFTER_FAILURES == 3
    fail(book, 1, T0)
    fail(book, 1, T0 + timedelta(seconds=1))
    assert book.state.consecutive_failures == 2
    assert book.state.restrained_until is None
    assert book.state.restrained_reason == ""
    now = T0 + timedelta(seconds=2)
    fail(book, 1, now, reason="Quota exceeded for instances")
    assert book.state.consecutive_failures == 3
    assert book.state.restrained_until is not None and book.state.restrained_until > now
    assert "Quota exceeded for instances" in book.state.restrained_reason


def test_backoff_never_shrinks_while_failures_continue() -> None:
    book = make_book()
    deltas = []
    for i in range(8):
        now = T0 + timedelta(minutes=i)
        fail(book, 1, now)
        if book.state.restrained_until is not None:
            deltas.append(book.state.restrained_until - now)
    assert len(deltas) == 6
    assert deltas == sorted(deltas)
    assert deltas[0] > timedelta(0)


def test_a_successful_creation_resets_the_failure_count_and_lifts_the_restraint() -> None:
    book = make_book()
    for i in range(3):
        fail(book, 1, T0 + timedelta(seconds=i))
    assert book.state.restrained_until is not None
    add_ready(book, 1, at=T0 + timedelta(seconds=10))
    assert book.state.consecutive_failures == 0
    assert book.state.restrained_until is None
    assert book.state.restrained_reason == ""


def test_a_provisioning_desktop_on_a_sick_cloud_holds_creates_and_shows_why() -> None:
    book = make_book(prestarted=2)
    building = book.add_desktop(1, True)
    trouble = DesktopReport(
        building.desktop_id, ReportKind.CLOUD_TROUBLE, reason="cloud error 503: Service Unavailable"
    )
    book.report(trouble, T0)
    assert book.state.restrained_reason.startswith("cloud unavailable: cloud error 503: Service Unavailable")
    assert book.state.restrained_until == T0 + timedelta(seconds=CLOUD_TROUBLE_HOLD_S)
    assert book.counts().provisioning == 1  # it goes on trying: not a failure
    assert book.state.consecutive_failures == 0
    # The workflow passes may_create=False while restrained_until is ahead: the second desktop waits.
    args = (book.state.spec, book.counts(), book.provisioning_running(), book.starting())
    assert plan_reconcile(*args, True).create_running == 1
    assert plan_reconcile(*args, False).create_running == 0
    book.report(DesktopReport(building.desktop_id, ReportKind.READY, address="10.0.0.1"), T0 + timedelta(seconds=40))
    assert (book.state.restrained_reason, book.state.restrained_until) == ("", None)


def test_a_sick_cloud_never_shortens_a_longer_backoff_and_late_reports_change_nothing() -> None:
    book = make_book()
    for i in range(4):
        fail(book, 1, T0 + timedelta(seconds=i))
    longer = book.state.restrained_until
    assert longer is not None and longer > T0 + timedelta(seconds=3 + CLOUD_TROUBLE_HOLD_S)
    building = book.add_desktop(2, True)
    book.report(DesktopReport(building.desktop_id, ReportKind.CLOUD_TROUBLE, reason="503"), T0 + timedelta(seconds=4))
    assert book.state.restrained_until == longer and "cloud unavailable: 503" in book.state.restrained_reason
    ready = add_ready(book, 3)
    before = (book.state.restrained_reason, book.state.restrained_until)
    book.report(DesktopReport(ready.desktop_id, ReportKind.CLOUD_TROUBLE, reason="late"), T0)  # not provisioning
    assert (book.state.restrained_reason, book.state.restrained_until) == before


def test_failures_must_be_in_a_row_to_restrain() -> None:
    book = make_book()
    fail(book, 1, T0)
    fail(book, 1, T0)
    add_ready(book, 1)
    fail(book, 2, T0)
    assert book.state.consecutive_failures == 1
    assert book.state.restrained_until is None


def test_gone_after_normal_use_is_not_a_failure() -> None:
    book = make_book()
    for n in (1, 2, 3):
        desktop = add_ready(book, n)
        book.report(DesktopReport(desktop.desktop_id, ReportKind.GONE), T0)
    assert book.state.consecutive_failures == 0
    assert book.state.restrained_until is None


def test_assignment_rejected_puts_the_user_back_at_the_head_of_the_line() -> None:
    book, (d1, _) = full_pool()
    claim(book, "u3", "r3")
    now = T0 + timedelta(seconds=3)
    book.report(DesktopReport(d1.desktop_id, ReportKind.ASSIGNMENT_REJECTED, user="u1", request_id="r1"), now)
    assert [w.user for w in book.state.queue] == ["u1", "u3"]
    assert book.held_by("u1") == []
    assert d1.slot not in (Slot.READY, Slot.STANDBY, Slot.ASSIGNED)  # not handed out again
    back = book.outcome_for("r1")
    assert back is not None and back.status is ClaimStatus.WAITING and back.position == 1
    replacement = add_ready(book, 3)
    book.serve_queue()
    assert replacement.user == "u1"


def test_awaiting_return_frees_the_user_but_not_the_desktop() -> None:
    book = make_book(release=ReleasePolicy.MANUAL, prestarted=0)
    desktop = add_ready(book, 1)
    claim(book, "alice", "r1")
    book.report(DesktopReport(desktop.desktop_id, ReportKind.AWAITING_RETURN), T0)
    assert book.held_by("alice") == []
    assert book.counts().awaiting_return == 1
    assert book.idle() == []
    assert claim(book, "bob", "r2").status is ClaimStatus.WAITING


# --- counts ---------------------------------------------------------------------------------------


def test_counts_per_slot() -> None:
    book = make_book(max_desktops=20)
    book.add_desktop(1, True)  # provisioning
    add_ready(book, 2)
    add_ready(book, 3)
    add_ready(book, 4, powered_on=False)
    book.update(add_ready(book, 5, powered_on=False), starting=True)
    for number, slot in ((6, Slot.ASSIGNED), (7, Slot.RELEASING), (8, Slot.AWAITING_RETURN), (9, Slot.REMOVING)):
        book.update(add_ready(book, number), slot=slot)
    book.state.queue += [WaitingClaim("u1", "w1", T0), WaitingClaim("u2", "w2", T0)]
    counts = book.counts()
    assert counts == PoolCounts(
        provisioning=1, ready=2, standby=1, assigned=1, releasing=1, awaiting_return=1, removing=1, waiting=2
    )
    assert book.starting() == 1
    # Every desktop is counted once: in the counts or as starting.
    assert counts.live + book.starting() == len(book.state.desktops)


# --- book and planner together --------------------------------------------------------------------


def test_standby_desktops_starting_for_the_reserve_never_push_the_pool_past_max() -> None:
    """Revert pool filled to min: 2 ready + 2 standby. Two users take the ready pair; the
    planner starts the standby pair for the reserve; the next wake must not create more."""
    spec = make_spec(prestarted=2, min_desktops=4, max_desktops=5)
    book = PoolBook(PoolState(pool_id="p", spec=spec))
    add_ready(book, 1)
    add_ready(book, 2)
    add_ready(book, 3, powered_on=False)
    add_ready(book, 4, powered_on=False)
    claim(book, "alice", "r1")
    claim(book, "bob", "r2")
    first = plan_reconcile(spec, book.counts(), book.provisioning_running(), book.starting())
    assert first.start_standby == 2
    for d in book.state.desktops:
        if d.slot is Slot.STANDBY:
            book.update(d, starting=True)  # what the pool workflow does for each desktop it starts
    second = plan_reconcile(spec, book.counts(), book.provisioning_running(), book.starting())
    total_after = len(book.state.desktops) + second.create_running + second.create_standby
    assert total_after <= spec.max_desktops
    assert second.create_running + second.create_standby == 0


# --- continue-as-new carries the state --------------------------------------------------------------


async def test_pool_state_survives_the_temporal_converter() -> None:
    book = make_book(max_desktops=2, timers=Timers(claim_wait_timeout_s=600))
    add_ready(book, 1)
    add_ready(book, 2, powered_on=False)
    book.add_desktop(3, True)
    claim(book, "alice", "r1")
    claim(book, "bob", "r2")
    claim(book, "carol", "r3", T0 + timedelta(seconds=1))
    claim(book, "dave", "r4", T0 + timedelta(seconds=2))
    fail(book, 4, T0)
    state = book.state
    converter = DataConverter.default
    (decoded,) = await converter.decode(await converter.encode([state]), type_hints=[PoolState])
    assert decoded == state
    assert isinstance(decoded.spec, PoolSpec)
    assert all(isinstance(d.slot, Slot) for d in decoded.desktops)
    assert decoded.queue[0].queued_at == state.queue[0].queued_at
    # And the book rebuilt from it answers the same.
    rebuilt = PoolBook(decoded)
    assert rebuilt.counts() == book.counts()
    assert rebuilt.outcome_for("r4") == book.outcome_for("r4")


def test_a_quota_failure_restrains_the_pool_at_once_with_the_clouds_reason() -> None:
    from datetime import UTC, datetime

    from workflows.messages import DesktopReport, ReportKind
    from workflows.pool_model import PoolState
    from workflows.pool_spec import PoolSpec, Template
    from workflows.pool_state import PoolBook

    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    book = PoolBook(PoolState("p", PoolSpec(name="Quota pool", template=Template("i", "f"), naming_mask="quo-")))
    desktop = book.add_desktop(1, powered_on=True)
    reason = "quota exceeded: Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
    book.report(DesktopReport(desktop.desktop_id, ReportKind.GONE, failed=True, reason=reason,
                              failure_type="CloudQuotaExceeded"), now)  # fmt: skip
    assert book.state.restrained_until is not None and book.state.restrained_until > now
    assert "Quota exceeded for instances" in book.state.restrained_reason
    other = book.add_desktop(2, powered_on=True)
    book.report(DesktopReport(other.desktop_id, ReportKind.GONE, failed=True, reason="timeout", failure_type=""), now)
    assert book.state.consecutive_failures == 2  # a retryable failure adds up; it alone would not restrain
