"""The pool's desktop index (workflows/desktop_index.py) says what a walk over the desktops says.

Random runs of the book's own operations (claims, reports of every kind, recycles, power
changes, template changes, continue-as-new) check after every step that the index equals one
rebuilt from the desktops, and that its claim pick is planning.pick_for_claim's.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from tests.unit.test_pool_state import T0, TEMPLATE, add_ready, claim, make_book
from workflows.messages import ClaimStatus, DesktopReport, PoolCounts, ReportKind
from workflows.planning import Slot, pick_for_claim
from workflows.pool_model import PoolState, TemplateVersion
from workflows.pool_recycle import take_recycle
from workflows.pool_spec import Assignment, Template
from workflows.pool_state import PoolBook
from workflows.rollout_messages import RecycleInput


def walked_counts(book: PoolBook) -> PoolCounts:
    """The counts as the pool computed them before the index: one walk over the desktops."""
    c = PoolCounts(waiting=len(book.state.queue))
    for d in book.state.desktops:
        if not (d.slot is Slot.STANDBY and d.starting):
            setattr(c, d.slot.value, getattr(c, d.slot.value) + 1)
    return c


def agree(book: PoolBook) -> None:
    book.index.check(book.state.desktops)
    assert book.counts() == walked_counts(book)
    assert book.starting() == sum(d.slot is Slot.STANDBY and d.starting for d in book.state.desktops)
    assert book.provisioning_running() == sum(d.slot is Slot.PROVISIONING and d.powered_on for d in book.state.desktops)
    picked = book.index.first_for_claim(book.state.template_version)
    reference = pick_for_claim(book.idle(), book.state.template_version)
    assert (picked.desktop_id if picked else None) == (reference.desktop_id if reference else None)
    users = Counter(d.user for d in book.state.desktops if d.slot is Slot.ASSIGNED)
    for user in users:
        assert [d.desktop_id for d in book.held_by(user)] == [
            d.desktop_id for d in book.state.desktops if d.slot is Slot.ASSIGNED and d.user == user
        ]


def step(book: PoolBook, rng: random.Random, n: int) -> None:
    desktops = book.state.desktops
    some = rng.choice(desktops) if desktops else None
    at = T0 + timedelta(seconds=n)
    action = rng.randrange(10)
    if action == 0 or some is None:
        free = sorted({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} - {d.number for d in desktops})
        if free:
            book.add_desktop(free[0], powered_on=rng.random() < 0.7)
    elif action == 1:
        user = f"u{rng.randrange(6)}"
        claim(book, user, f"{user}-r{rng.randrange(8)}", at)  # a user's retry reuses its request id
    elif action == 2:
        book.report(DesktopReport(some.desktop_id, ReportKind.READY, powered_on=rng.random() < 0.7), at)
    elif action == 3:
        kind = rng.choice([ReportKind.RELEASED, ReportKind.AWAITING_RETURN, ReportKind.GONE])
        book.report(DesktopReport(some.desktop_id, kind, failed=rng.random() < 0.2), at)
    elif action == 4:
        rejected = DesktopReport(some.desktop_id, ReportKind.ASSIGNMENT_REJECTED, user=some.user)
        rejected.request_id = some.request_id
        book.report(rejected, at)
    elif action == 5 and some.slot is Slot.STANDBY:
        book.update(some, starting=True)
    elif action == 6 and some.slot is Slot.READY:
        book.update(some, slot=Slot.STANDBY, powered_on=False)
    elif action == 7:
        take_recycle(book, RecycleInput([some.desktop_id], "recreate", when_released=rng.random() < 0.5))
    elif action == 8 and rng.random() < 0.3:
        # A template change: the pool's current version moves on (update_spec's part in the book).
        book.state.template_version += 1
        version = book.state.template_version
        book.state.templates.append(TemplateVersion(version, Template(image=f"img{version}", flavor="flv")))
    elif action == 9:
        book.expire_claims(at)
        book.serve_queue()


@pytest.mark.parametrize("seed", range(40))
def test_the_index_agrees_with_the_desktops_after_every_step(seed: int) -> None:
    rng = random.Random(seed)
    book = make_book(max_desktops=12, max_desktops_per_user=rng.choice([1, 2]))
    for n in range(300):
        step(book, rng, n)
        agree(book)
        if n % 97 == 96:
            # Continue-as-new: the next run builds its book from the carried state.
            book = PoolBook(PoolState(**vars(book.state)))
            agree(book)


def test_a_desktop_changed_behind_the_books_back_fails_the_check() -> None:
    book = make_book()
    desktop = add_ready(book, 1)
    desktop.slot = Slot.ASSIGNED  # not through book.update: the index still files it as ready
    with pytest.raises(AssertionError):
        book.index.check(book.state.desktops)


def test_claims_take_the_ready_current_lowest_first_and_the_template_change_reorders() -> None:
    book = make_book(max_desktops=10)
    for number in (5, 3, 8):
        add_ready(book, number)
    add_ready(book, 1, powered_on=False)
    assert [claim(book, f"u{n}", f"r{n}").desktop_name for n in range(2)] == ["desk-003", "desk-005"]
    book.state.template_version = 2
    book.state.templates.append(TemplateVersion(2, TEMPLATE))
    add_ready(book, 9)  # on version 2: first now, before the older 8
    assert claim(book, "u2", "r2").desktop_name == "desk-009"
    assert claim(book, "u3", "r3").desktop_name == "desk-008"
    assert claim(book, "u4", "r4").desktop_name == "desk-001"  # powered off: last
    assert claim(book, "u5", "r5").status is ClaimStatus.WAITING


def test_a_finished_claim_is_found_by_its_request_id_until_it_is_no_longer_kept() -> None:
    book = make_book(max_desktops=1, assignment=Assignment.FLOATING)
    book.state.spec.enabled = False
    first = claim(book, "alice", "r-first")
    assert book.outcome_for("r-first") == first
    for n in range(1000):
        claim(book, f"u{n}", f"r{n}")
    assert book.outcome_for("r-first") is None  # the 1,001st finished claim pushed it out
    assert book.outcome_for("r999") is not None
    assert len(book.finished) == len(book.state.finished_claims) == 1000


def test_request_ids_reused_back_and_forth_are_answered_without_going_round() -> None:
    """Found by the random runs: aliases r2 -> r1 and r1 -> r2 made the old lookup recurse for ever
    (a RecursionError fails the pool's workflow task, again at every retry)."""
    book = make_book(max_desktops=3)
    add_ready(book, 1)
    add_ready(book, 2)
    first = claim(book, "alice", "r1")
    assert claim(book, "alice", "r2").desktop_id == first.desktop_id  # a repeat: alias r2 -> r1
    book.report(DesktopReport(first.desktop_id, ReportKind.AWAITING_RETURN), T0)  # r1 is over, unrecorded
    second = claim(book, "alice", "r2")  # taken as new: r1 is known no more
    assert second.status is ClaimStatus.ASSIGNED and second.desktop_id != first.desktop_id
    again = claim(book, "alice", "r1")  # a repeat of r2 now: alias r1 -> r2
    assert (again.request_id, again.desktop_id) == ("r1", second.desktop_id)
    assert book.outcome_for("r2").desktop_id == second.desktop_id
    assert book.outcome_for("r1").request_id == "r1"
