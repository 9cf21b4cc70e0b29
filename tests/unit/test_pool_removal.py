"""A pool's removal as pure decisions and bookkeeping, and a user's claims in a pool.

Rules (oVirt seed): a pool is removed only once all its desktops are destroyed or detached;
detaching keeps the VM as an independent server. Once removing, the pool takes no new claims
(repeats of known ones keep their answer), its line is ended, and every desktop is told once
to leave, in use or not. A repeated remove changes nothing; a different mode is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.converter import DataConverter

from workflows.messages import (
    AssignDesktopInput,
    ClaimRequest,
    ClaimStatus,
    DesktopReport,
    RemovalMode,
    RemovePoolInput,
    ReportKind,
)
from workflows.planning import LeavingCandidate, PoolRemoval, Slot, plan_removal, removal_refusal
from workflows.pool_model import PoolDesktop, PoolState
from workflows.pool_removal import LINE_ENDED, advance_removal, begin_removal, removal_summary
from workflows.pool_spec import Assignment, PoolSpec, ReleasePolicy, Template
from workflows.pool_state import BEING_REMOVED, PoolBook

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def make_book(**overrides: Any) -> PoolBook:
    fields: dict[str, Any] = {
        "name": "Removal pool",
        "template": Template(image="img", flavor="flv"),
        "naming_mask": "desk-",
        "release": ReleasePolicy.REVERT,
        "max_desktops": 3,
    }
    fields.update(overrides)
    return PoolBook(PoolState(pool_id="p", spec=PoolSpec(**fields)))


def add_ready(book: PoolBook, number: int) -> PoolDesktop:
    desktop = book.add_desktop(number, powered_on=True)
    book.report(DesktopReport(desktop.desktop_id, ReportKind.READY, address=f"10.0.0.{number}"), T0)
    return desktop


def claim(book: PoolBook, user: str, request_id: str) -> Any:
    return book.claim(ClaimRequest(user, request_id), T0)


def removes(book: PoolBook) -> list[tuple[str, bool, bool]]:
    return [(m.desktop_id, m.force, m.detach) for m in book.state.outbox if m.kind == "remove"]


REMOVING = PoolRemoval(RemovalMode.DESTROY, "by admin", T0)


# --- refusing a remove request --------------------------------------------------------------


def test_an_unknown_mode_is_refused_naming_the_modes() -> None:
    refusal = removal_refusal("shred", 0, None)
    assert refusal is not None and "'shred'" in refusal and "destroy, detach or none" in refusal


def test_mode_none_is_refused_while_desktops_live_naming_how_many() -> None:
    refusal = removal_refusal("none", 3, None)
    assert refusal is not None and "3 live desktops" in refusal
    assert removal_refusal("none", 0, None) is None


@pytest.mark.parametrize("mode", ["destroy", "detach"])
def test_destroy_and_detach_are_taken_with_desktops_live(mode: str) -> None:
    assert removal_refusal(mode, 5, None) is None


def test_a_repeat_of_the_removal_under_way_is_taken_another_mode_is_not() -> None:
    assert removal_refusal("destroy", 2, REMOVING) is None
    refusal = removal_refusal("detach", 2, REMOVING)
    assert refusal is not None and "already being removed with desktops=destroy" in refusal


# --- what each desktop is told --------------------------------------------------------------

EVERY_SLOT = [LeavingCandidate(f"p.{i}", slot) for i, slot in enumerate(Slot, start=1)]


def test_destroy_tells_every_desktop_in_any_slot_to_leave_and_only_in_use_ones_keep_their_slot() -> None:
    orders = plan_removal(EVERY_SLOT, RemovalMode.DESTROY)
    assert [o.desktop_id for o in orders] == [c.desktop_id for c in EVERY_SLOT]
    assert not any(o.detach for o in orders)
    kept = {c.slot: o.slot for c, o in zip(EVERY_SLOT, orders, strict=True)}
    assert kept[Slot.ASSIGNED] is Slot.ASSIGNED  # its user's claim ends when the desktop reports
    assert {s for c, s in kept.items() if c is not Slot.ASSIGNED} == {Slot.REMOVING}


def test_detach_tells_every_desktop_to_detach() -> None:
    orders = plan_removal(EVERY_SLOT, RemovalMode.DETACH)
    assert len(orders) == len(EVERY_SLOT) and all(o.detach for o in orders)


def test_a_desktop_already_told_is_not_told_again() -> None:
    desktops = [LeavingCandidate("p.1", Slot.READY, told=True), LeavingCandidate("p.2", Slot.ASSIGNED)]
    assert [o.desktop_id for o in plan_removal(desktops, RemovalMode.DESTROY)] == ["p.2"]


def test_mode_none_tells_nobody() -> None:
    assert plan_removal(EVERY_SLOT, RemovalMode.NONE) == []


# --- the book while removing ------------------------------------------------------------------


def test_taking_a_removal_ends_the_line_and_counts_the_desktops_to_leave() -> None:
    book = make_book(max_desktops=1)
    add_ready(book, 1)
    assert claim(book, "alice", "r1").status is ClaimStatus.ASSIGNED
    assert claim(book, "bob", "r2").status is ClaimStatus.WAITING
    result = begin_removal(book, RemovePoolInput("destroy", "by admin"), T0)
    assert (result.accepted, result.live_desktops) == (True, 1)
    assert book.state.queue == []
    bob = book.outcome_for("r2")
    assert bob is not None and (bob.status, bob.reason) == (ClaimStatus.ENDED, LINE_ENDED)
    # Alice keeps her desktop until it reports its assignment over.
    alice = book.outcome_for("r1")
    assert alice is not None and alice.status is ClaimStatus.ASSIGNED


def test_a_repeated_removal_changes_nothing() -> None:
    book = make_book()
    add_ready(book, 1)
    begin_removal(book, RemovePoolInput("detach", "first"), T0)
    taken = book.state.removal
    again = begin_removal(book, RemovePoolInput("detach", "second"), T0 + timedelta(minutes=5))
    assert (again.accepted, again.live_desktops) == (True, 1)
    assert book.state.removal == taken == PoolRemoval(RemovalMode.DETACH, "first", T0)


def test_no_new_claims_while_removing_but_known_ones_keep_their_answer() -> None:
    book = make_book()
    add_ready(book, 1)
    add_ready(book, 2)
    held = claim(book, "alice", "r1")
    begin_removal(book, RemovePoolInput("destroy"), T0)
    for user, request_id in (("bob", "r2"), ("alice", "r3")):  # alice: a repeated Connect
        outcome = claim(book, user, request_id)
        assert (outcome.status, outcome.reason) == (ClaimStatus.REJECTED, BEING_REMOVED)
    assert claim(book, "alice", "r1") == held
    assert claim(book, "bob", "r2").status is ClaimStatus.REJECTED  # idempotent too


def test_personal_assignment_is_refused_while_removing() -> None:
    book = make_book(assignment=Assignment.PERSONAL, prestarted=0)
    add_ready(book, 1)
    begin_removal(book, RemovePoolInput("destroy"), T0)
    request = AssignDesktopInput("carol", "a1")
    outcome = book.assign_personal(request.user, request.request_id, request.desktop_id)
    assert (outcome.status, outcome.reason) == (ClaimStatus.REJECTED, BEING_REMOVED)


def test_every_desktop_is_told_once_forced_and_idle_ones_count_as_removing() -> None:
    book = make_book()
    held, idle = add_ready(book, 1), add_ready(book, 2)
    claim(book, "alice", "r1")  # the lowest number goes first
    assert held.slot is Slot.ASSIGNED
    book.state.outbox.clear()
    begin_removal(book, RemovePoolInput("detach", "by admin"), T0)
    assert advance_removal(book) == 2
    assert sorted(removes(book)) == [(held.desktop_id, True, True), (idle.desktop_id, True, True)]
    assert all(m.reason == "pool removed: by admin" for m in book.state.outbox)
    assert (held.slot, idle.slot) == (Slot.ASSIGNED, Slot.REMOVING)
    book.state.outbox.clear()
    assert advance_removal(book) == 0 and book.state.outbox == []


def test_a_user_put_back_in_line_while_removing_is_turned_away_at_the_next_pass() -> None:
    book = make_book()
    desktop = add_ready(book, 1)
    claim(book, "alice", "r1")
    begin_removal(book, RemovePoolInput("destroy"), T0)
    # The desktop could not take alice (its workflow was gone): she goes back in line...
    book.report(DesktopReport(desktop.desktop_id, ReportKind.ASSIGNMENT_REJECTED, user="alice", request_id="r1"), T0)
    assert [w.request_id for w in book.state.queue] == ["r1"]
    advance_removal(book)
    assert book.state.queue == []
    ended = book.outcome_for("r1")
    assert ended is not None and ended.status is ClaimStatus.ENDED


def test_the_pool_is_removed_once_the_last_desktop_is_gone() -> None:
    book = make_book()
    desktop = add_ready(book, 1)
    begin_removal(book, RemovePoolInput("destroy", "by admin"), T0)
    advance_removal(book)
    assert removal_summary(book) == "being removed (destroy desktops, 1 still in the pool): by admin"
    book.report(DesktopReport(desktop.desktop_id, ReportKind.GONE), T0)
    assert book.state.desktops == []
    assert removal_summary(book) == "removed, its desktops destroyed: by admin"


async def test_a_removal_under_way_survives_continue_as_new() -> None:
    book = make_book()
    add_ready(book, 1)
    add_ready(book, 2)
    begin_removal(book, RemovePoolInput("detach", "by admin"), T0)
    advance_removal(book)
    converter = DataConverter.default
    (decoded,) = await converter.decode(await converter.encode([book.state]), type_hints=[PoolState])
    assert decoded == book.state
    assert decoded.removal is not None and decoded.removal.mode is RemovalMode.DETACH
    rebuilt = PoolBook(decoded)
    rebuilt.state.outbox.clear()
    assert advance_removal(rebuilt) == 0  # told before continue-as-new: not told twice


# --- a user's claims --------------------------------------------------------------------------


def test_user_claims_are_the_desktops_held_then_the_places_in_line() -> None:
    book = make_book(max_desktops=1, max_desktops_per_user=2)
    add_ready(book, 1)
    assert claim(book, "alice", "r1").status is ClaimStatus.ASSIGNED
    assert claim(book, "bob", "r2").position == 1
    assert claim(book, "alice", "r3").position == 2
    mine = book.claims_of("alice")
    assert [(c.request_id, c.status, c.position) for c in mine] == [
        ("r1", ClaimStatus.ASSIGNED, None),
        ("r3", ClaimStatus.WAITING, 2),
    ]
    assert mine[0].desktop_name == "desk-001"
    assert [c.request_id for c in book.claims_of("bob")] == ["r2"]
    assert book.claims_of("carol") == []
