"""A template rollout ("Recreate") as pure decisions and the pool's bookkeeping of it.

Rules (issue 7): a template change makes a new version; existing desktops keep theirs and new
ones use the newest. Recreate replaces idle desktops not on the current version (never one in
use; optionally marked to go once its user is done), a canary first, then bounded batches that
keep the ready count at or above a floor (default: half of the prestarted desktops), pausing by
itself when failures exceed a threshold. The pool decides which desktop goes and replaces it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflows.messages import DesktopReport, ReportKind
from workflows.planning import Slot
from workflows.pool_model import PoolDesktop, PoolState, TemplateVersion
from workflows.pool_recycle import rollout_view, take_recycle
from workflows.pool_spec import PoolSpec, ReleasePolicy, Template
from workflows.pool_state import RECYCLED_ON_RELEASE, PoolBook
from workflows.rollout_messages import (
    CanaryResult,
    RecycleInput,
    RolloutCandidate,
    RolloutStatus,
    RolloutStrategy,
    RolloutView,
    RolloutViewInput,
)
from workflows.rollout_rules import (
    RolloutState,
    Verdict,
    command_refusal,
    default_floor,
    finish,
    floor_refusal,
    observe,
    pause,
    plan_step,
    progress_of,
    recycle_verdict,
    resume,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
V1, V2 = Template(image="win11-v1", flavor="vdi.medium"), Template(image="win11-v2", flavor="vdi.medium")


# --- the floor ----------------------------------------------------------------------------


@pytest.mark.parametrize(("prestarted", "floor"), [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (10, 5)])
def test_default_floor_keeps_half_of_the_prestarted_ready_rounded_up_but_never_all(prestarted: int, floor: int) -> None:
    assert default_floor(prestarted, RolloutStrategy.ROLLING) == floor
    assert default_floor(prestarted, RolloutStrategy.IMMEDIATE) == 0


def test_a_floor_the_pool_could_never_keep_is_refused_naming_the_field() -> None:
    assert floor_refusal(3, 4) is None and floor_refusal(0, 0) is None
    refusal = floor_refusal(4, 4)
    assert refusal is not None and refusal.startswith("floor: must be at most 3")
    assert (floor_refusal(-1, 4) or "").startswith("floor:")


# --- the pool's verdict -----------------------------------------------------------------------


def test_the_pool_lets_only_idle_old_desktops_go_and_never_takes_one_in_use() -> None:
    assert recycle_verdict(Slot.READY, 1, 2, False) is Verdict.LEAVE
    assert recycle_verdict(Slot.STANDBY, 1, 2, False) is Verdict.LEAVE
    assert recycle_verdict(Slot.REMOVING, 1, 2, False) is Verdict.LEAVING  # a repeat is answered alike
    assert recycle_verdict(Slot.ASSIGNED, 1, 2, True) is Verdict.DEFER
    assert recycle_verdict(Slot.ASSIGNED, 1, 2, False) == "not idle (assigned)"
    assert recycle_verdict(Slot.PROVISIONING, 1, 2, False) == "not idle (provisioning)"
    assert recycle_verdict(Slot.READY, 2, 2, False) == "already on the current template version 2"
    assert recycle_verdict(None, 1, 2, False) == "not in the pool"


# --- the rollout's steps -----------------------------------------------------------------------


def canary_of(s: RolloutState) -> CanaryResult:
    return s.canary.result


def slot_of(book: PoolBook, desktop_id: str) -> Slot:
    return book.by_id[desktop_id].slot


def state(**overrides: Any) -> RolloutState:
    fields: dict[str, Any] = {"pool_id": "p", "strategy": RolloutStrategy.ROLLING, "floor": None, "batch_size": 2,
                              "max_failures": 2, "recycle_assigned": False, "target_version": 2}  # fmt: skip
    fields.update(overrides)
    return RolloutState(**fields)


def view(ready: int = 4, old_ready: int = 4, old_standby: int = 0, **overrides: Any) -> RolloutView:
    candidates = [RolloutCandidate(f"s{i}", "standby") for i in range(old_standby)]
    candidates += [RolloutCandidate(f"r{i}", "ready") for i in range(old_ready)]
    fields: dict[str, Any] = {"pool_id": "p", "template_version": 2, "prestarted": 4, "ready": ready,
                              "candidates": candidates, "remaining": len(candidates)}  # fmt: skip
    fields.update(overrides)
    return RolloutView(**fields)


def test_a_canary_goes_first_alone_and_the_rest_wait_until_it_is_up() -> None:
    s = state()
    observe(s, view())
    assert s.floor == 2 and s.canary.result is CanaryResult.PENDING and s.total == 4
    first = plan_step(s, view())
    assert first.recycle == ["r0"]
    s.tracked = ["r0"]

    # r0 leaving, its replacement building: nothing else goes.
    building = view(ready=3, old_ready=3, leaving=["r0"], building=["p.5"])
    observe(s, building)
    assert (s.canary.result, s.canary.desktop_id) == (CanaryResult.BUILDING, "p.5")
    held = plan_step(s, building)
    assert held.recycle == [] and held.waiting.startswith("waiting for the canary desktop p.5")

    # Gone, and the canary came up: a batch of two (the floor: 4 ready - 2 = 2 may go).
    up = view(ready=4, old_ready=3, up=1, current_up=1)
    observe(s, up)
    assert canary_of(s) is CanaryResult.READY and s.done == 1 and s.tracked == [] and s.total == 4
    assert plan_step(s, up).recycle == ["r0", "r1"]


def test_the_floor_holds_ready_desktops_but_lets_powered_off_ones_go() -> None:
    s = state(floor=3, batch_size=5)
    s.canary.result = CanaryResult.READY
    v = view(ready=4, old_ready=4, old_standby=2)
    observe(s, v)
    step = plan_step(s, v)
    # Both standby (no ready capacity), and only one ready: 4 - 1 = 3 stays at the floor.
    assert step.recycle == ["s0", "s1", "r0"]
    low = view(ready=3, old_ready=3)
    observe(s, low)
    held = plan_step(s, low)
    assert held.recycle == [] and held.waiting == "holding at the floor: 3 ready, floor 3"


def test_batches_bound_what_is_in_flight_leaving_and_building_alike() -> None:
    s = state(batch_size=2)
    s.canary.result = CanaryResult.READY
    s.tracked = ["r9"]
    v = view(ready=4, old_ready=4, leaving=["r9"], building=["p.7"])
    observe(s, v)
    assert plan_step(s, v).recycle == []
    settled = view(ready=4, old_ready=4, leaving=[], building=["p.7"])
    observe(s, settled)
    assert plan_step(s, settled).recycle == ["r0"]


def test_immediate_sends_every_idle_old_desktop_after_the_canary_without_a_floor() -> None:
    s = state(strategy=RolloutStrategy.IMMEDIATE, batch_size=0)
    v = view(ready=4, old_ready=4)
    observe(s, v)
    assert s.floor == 0 and plan_step(s, v).recycle == ["r0"]
    s.canary.result = CanaryResult.READY
    s.tracked = []
    assert plan_step(s, v).recycle == ["r0", "r1", "r2", "r3"]


def test_a_failed_canary_pauses_and_resume_tries_a_new_one() -> None:
    s = state()
    observe(s, view())
    s.tracked = ["r0"]
    observe(s, view(ready=3, old_ready=3, leaving=["r0"], building=["p.5"]))
    failed = view(ready=3, old_ready=3, failed=1, last_failure="provisioning failed: server went to ERROR")
    observe(s, failed)
    assert s.canary.result is CanaryResult.FAILED and s.failures == 1
    step = plan_step(s, failed)
    assert step.pause == "canary desktop p.5 failed: provisioning failed: server went to ERROR"
    pause(s, step.pause)
    assert plan_step(s, failed).recycle == []  # paused: nothing goes

    resume(s)
    assert s.status is RolloutStatus.RUNNING and s.lift_restraint and canary_of(s) is CanaryResult.PENDING
    observe(s, failed)
    again = plan_step(s, failed)
    assert again.recycle == ["r0"] and s.failures == 1  # a new canary; the old failure stays counted


def test_failures_beyond_the_limit_pause_and_count_afresh_after_resume() -> None:
    s = state(max_failures=1)
    s.canary.result = CanaryResult.READY
    observe(s, view(failed=0))
    one = view(failed=1)
    observe(s, one)
    assert plan_step(s, one).pause == ""
    two = view(failed=2, last_failure="quota exceeded")
    observe(s, two)
    reason = plan_step(s, two).pause
    assert reason == "2 desktops failed on template version 2 (at most 1); last: quota exceeded"
    pause(s, reason)
    resume(s)
    observe(s, two)
    assert plan_step(s, two).pause == "" and s.failures == 2


def test_failures_the_pool_had_while_paused_are_not_counted_after_resume() -> None:
    # A CI run: paused on a quota failure, the paused rollout (looking seldom) missed the pool's
    # second failure, under the same quota, before the administrator raised it and resumed.
    s = state(max_failures=0)
    s.canary.result = CanaryResult.READY
    observe(s, view(failed=0))
    one = view(failed=1, last_failure="quota exceeded")
    observe(s, one)
    pause(s, plan_step(s, one).pause)
    unseen = view(failed=2, last_failure="quota exceeded")
    resume(s)
    observe(s, unseen)
    assert plan_step(s, unseen).pause == "" and s.failures == 2
    three = view(failed=3, last_failure="server went to ERROR")
    observe(s, three)
    assert plan_step(s, three).pause.startswith("1 desktops failed on template version 2 (at most 0)")

    # Histories from before the rule: resume counts from the last look, as those rollouts did.
    old = state(max_failures=0)
    old.canary.result = CanaryResult.READY
    observe(old, view(failed=0))
    observe(old, one)
    pause(old, plan_step(old, one).pause)
    resume(old, from_next_look=False)
    observe(old, unseen)
    assert plan_step(old, unseen).pause.startswith("1 desktops failed")


def test_builds_in_flight_at_the_resume_that_fail_after_it_are_not_counted() -> None:
    # The next CI run: the build had failed in the cloud under the old quota, but the worker died
    # before its desktop workflow took the failure in; the pool counted it after the resume's look.
    s = state(max_failures=0)
    s.canary.result = CanaryResult.READY
    observe(s, view(failed=0))
    one = view(failed=1, building=["n7", "n8"])
    observe(s, one)
    pause(s, plan_step(s, one).pause)
    resume(s)
    observe(s, view(failed=1, building=["n7", "n8"], present=[]))
    assert s.excused == ["n7", "n8"]
    # n8 fails (gone from the pool), n7 comes up (still in it): one failure, excused.
    settled = view(failed=2, building=["n9"], present=["n7"])
    observe(s, settled)
    assert plan_step(s, settled).pause == "" and s.excused == [] and s.failures == 2
    # A build started after the resume that fails counts.
    later = view(failed=3, building=[])
    observe(s, later)
    assert plan_step(s, later).pause.startswith("1 desktops failed on template version 2 (at most 0)")


def test_an_excused_build_that_came_up_excuses_nothing() -> None:
    s = state(max_failures=0)
    s.canary.result = CanaryResult.READY
    observe(s, view(failed=1))
    resume(s)
    observe(s, view(failed=1, building=["n7"]))
    # n7 came up; another desktop failed meanwhile: that failure counts.
    both = view(failed=2, building=[], present=["n7"])
    observe(s, both)
    assert s.failures_allowed_from == 0 and plan_step(s, both).pause.startswith("1 desktops failed")


def test_a_new_canary_after_resume_is_not_failed_by_an_excused_build() -> None:
    s = state(max_failures=5)
    observe(s, view(failed=0, building=["c1"]))
    failed = view(failed=1, building=[], last_failure="quota exceeded")
    observe(s, failed)
    assert s.canary.result is CanaryResult.FAILED
    pause(s, plan_step(s, failed).pause)
    resume(s)
    observe(s, view(failed=1, building=["old"]))
    assert s.canary.result is not CanaryResult.FAILED
    late = view(failed=2, building=[], present=[], last_failure="quota exceeded")
    observe(s, late)
    assert s.canary.result is not CanaryResult.FAILED and s.failures_allowed_from == 2
    observe(s, view(failed=3, building=[], last_failure="image gone"))
    assert s.canary.result is CanaryResult.FAILED


def test_it_completes_once_no_old_desktop_is_left_leaving_or_building() -> None:
    s = state()
    s.canary.result = CanaryResult.READY
    s.tracked = ["r3"]
    last = view(old_ready=0, leaving=["r3"])
    observe(s, last)
    assert not plan_step(s, last).complete
    building = view(old_ready=0, building=["p.9"])
    observe(s, building)
    assert not plan_step(s, building).complete
    done = view(old_ready=0)
    observe(s, done)
    assert plan_step(s, done).complete and s.done == 1 and s.total == 1


def test_nothing_to_replace_completes_without_a_canary() -> None:
    s = state()
    v = view(old_ready=0)
    observe(s, v)
    assert plan_step(s, v).complete
    finish(s, RolloutStatus.COMPLETED, T0)
    assert s.canary.result is CanaryResult.NOT_NEEDED and progress_of(s).finished_at == T0


def test_a_desktop_already_up_on_the_new_version_is_the_canary() -> None:
    s = state()
    v = view(current_up=1)
    observe(s, v)
    assert s.canary.result is CanaryResult.READY
    assert plan_step(s, v).recycle == ["r0", "r1"]


def test_a_new_template_version_during_the_rollout_becomes_the_target_with_its_own_canary() -> None:
    s = state()
    s.canary.result = CanaryResult.READY
    observe(s, view(failed=1))
    v3 = view(template_version=3, failed=0)
    observe(s, v3)
    assert s.target_version == 3 and s.canary.result is CanaryResult.PENDING and s.failures == 0
    assert plan_step(s, v3).recycle == ["r0"]


def test_in_use_desktops_are_marked_only_when_asked_and_after_the_canary() -> None:
    s = state(recycle_assigned=True)
    v = view(in_use=["a1"])
    observe(s, v)
    assert plan_step(s, v).mark == []
    s.canary.result = CanaryResult.READY
    assert plan_step(s, v).mark == ["a1"]
    assert plan_step(state(), v).mark == []


def test_the_pools_removal_cancels_the_rollout() -> None:
    s = state()
    v = view(being_removed=True)
    observe(s, v)
    assert plan_step(s, v).cancel == "the pool is being removed"


def test_commands_only_from_the_states_they_make_sense_in() -> None:
    assert command_refusal(RolloutStatus.RUNNING, "pause") is None
    assert command_refusal(RolloutStatus.PAUSED, "resume") is None
    assert command_refusal(RolloutStatus.PAUSED, "cancel") is None
    assert (
        command_refusal(RolloutStatus.PAUSED, "pause") == "the rollout is paused: only a running rollout can be paused"
    )
    assert command_refusal(RolloutStatus.RUNNING, "resume") is not None
    assert command_refusal(RolloutStatus.COMPLETED, "cancel") == "the rollout is completed: nothing to cancel"


# --- the pool's bookkeeping --------------------------------------------------------------------


def book_with(*desktops: tuple[int, Slot], release: ReleasePolicy = ReleasePolicy.DESTROY) -> PoolBook:
    spec = PoolSpec(name="Rollout pool", template=V2, naming_mask="ro-", max_desktops=6, prestarted=4, release=release)
    pool_state = PoolState(
        pool_id="p", spec=spec, template_version=2, templates=[TemplateVersion(1, V1), TemplateVersion(2, V2)]
    )
    book = PoolBook(pool_state)
    for number, (version, slot) in enumerate(desktops, start=1):
        desktop = PoolDesktop(f"p.{number}", number, spec.desktop_name(number), version, slot)
        if slot is Slot.ASSIGNED:
            desktop.user, desktop.request_id = "alice", "r-1"
        pool_state.desktops.append(desktop)
        book.index.file(desktop)
    return book


def test_recycle_sends_idle_old_desktops_away_and_answers_a_repeat_alike() -> None:
    book = book_with((1, Slot.READY), (1, Slot.STANDBY), (2, Slot.READY), (1, Slot.ASSIGNED), (1, Slot.PROVISIONING))
    result = take_recycle(book, RecycleInput(["p.1", "p.2", "p.3", "p.4", "p.5", "p.9"], "recreate"))
    assert result.accepted == ["p.1", "p.2"] and result.deferred == []
    assert {r.desktop_id: r.reason for r in result.refused} == {
        "p.3": "already on the current template version 2",
        "p.4": "not idle (assigned)",
        "p.5": "not idle (provisioning)",
        "p.9": "not in the pool",
    }
    assert [(m.desktop_id, m.kind, m.force) for m in book.state.outbox] == [
        ("p.1", "remove", False),
        ("p.2", "remove", False),
    ]
    assert book.by_id["p.1"].slot is Slot.REMOVING and book.by_id["p.4"].user == "alice"
    repeat = take_recycle(book, RecycleInput(["p.1", "p.2"], "recreate"))
    assert repeat.accepted == ["p.1", "p.2"] and len(book.state.outbox) == 2  # told once


def test_recycle_may_lift_the_pools_restraint() -> None:
    book = book_with((1, Slot.READY))
    book.state.restrained_until, book.state.restrained_reason, book.state.consecutive_failures = T0, "3 failed", 3
    take_recycle(book, RecycleInput([], lift_restraint=True))
    lifted: tuple[object, ...] = (book.state.restrained_until, book.state.restrained_reason)
    assert lifted == (None, "") and book.state.consecutive_failures == 0


def test_a_marked_desktop_in_use_goes_once_it_is_back_from_its_user() -> None:
    book = book_with((1, Slot.ASSIGNED), release=ReleasePolicy.REVERT)
    assert take_recycle(book, RecycleInput(["p.1"], when_released=True)).deferred == ["p.1"]
    assert book.by_id["p.1"].slot is Slot.ASSIGNED and not book.state.outbox  # never taken from its user
    assert rollout_view(book, RolloutViewInput()).marked == 1
    book.report(DesktopReport("p.1", ReportKind.RELEASED), T0)
    book.report(DesktopReport("p.1", ReportKind.READY), T0)  # reverted, back idle
    assert slot_of(book, "p.1") is Slot.REMOVING
    assert [(m.desktop_id, m.kind, m.reason) for m in book.state.outbox] == [("p.1", "remove", RECYCLED_ON_RELEASE)]


def test_the_view_counts_what_a_rollout_needs() -> None:
    slots = [(1, Slot.READY), (1, Slot.STANDBY), (1, Slot.ASSIGNED), (1, Slot.RELEASING), (1, Slot.REMOVING),
             (2, Slot.PROVISIONING), (2, Slot.READY)]  # fmt: skip
    book = book_with(*slots, release=ReleasePolicy.REVERT)
    seen = rollout_view(book, RolloutViewInput(tracked=["p.5", "p.42"], asked=["p.6", "p.1", "p.43"]))
    assert [(c.desktop_id, c.slot) for c in seen.candidates] == [("p.2", "standby"), ("p.1", "ready")]
    assert seen.ready == 2 and seen.remaining == 3  # two idle + one coming back from a revert
    assert seen.in_use == ["p.3"] and seen.leaving == ["p.5"] and seen.building == ["p.6"]
    assert seen.current_up == 1 and (seen.template_version, seen.prestarted) == (2, 4)
    assert seen.present == ["p.6", "p.1"]


def test_build_counters_per_version_record_desktops_up_and_failed() -> None:
    book = book_with()
    first = book.add_desktop(1, powered_on=True)
    second = book.add_desktop(2, powered_on=True)
    book.report(DesktopReport(first.desktop_id, ReportKind.READY), T0)
    book.report(DesktopReport(second.desktop_id, ReportKind.GONE, failed=True, reason="went to ERROR"), T0)
    seen = rollout_view(book, RolloutViewInput())
    assert (seen.up, seen.failed, seen.last_failure) == (1, 1, "went to ERROR")
