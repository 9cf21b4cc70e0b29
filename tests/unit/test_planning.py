"""The pool's pure decisions: what to create, start, power off or remove; numbers; picks.

Targets (issue 3): live desktops within [min, max]; idle running desktops >= prestarted
(+ claims waiting in line); desktops being created count; creations bounded per pool.
Revert/manual pools keep desktops beyond the reserve powered off (oVirt: "powered down
by default") and start them on demand; destroy pools delete idle surplus.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflows.messages import PoolCounts
from workflows.planning import (
    IdleCandidate,
    ReconcilePlan,
    Slot,
    has_warm_tier,
    lowest_free_numbers,
    pick_for_claim,
    pick_for_power_off,
    pick_for_removal,
    pick_for_start,
    plan_reconcile,
    pool_sleep,
)
from workflows.pool_spec import Assignment, PoolSpec, ReleasePolicy, Template

TEMPLATE = Template(image="img", flavor="flv")
WARM = [ReleasePolicy.REVERT, ReleasePolicy.MANUAL]


def pool(
    release: ReleasePolicy = ReleasePolicy.DESTROY,
    *,
    prestarted: int = 1,
    min_desktops: int = 0,
    max_desktops: int = 10,
    max_concurrent_creations: int = 30,
    **other: Any,
) -> PoolSpec:
    return PoolSpec(
        name="Planning pool",
        template=TEMPLATE,
        naming_mask="desk-",
        release=release,
        prestarted=prestarted,
        min_desktops=min_desktops,
        max_desktops=max_desktops,
        max_concurrent_creations=max_concurrent_creations,
        **other,
    )


def personal(**other: Any) -> PoolSpec:
    return pool(assignment=Assignment.PERSONAL, prestarted=0, **other)


def plan(
    spec: PoolSpec,
    *,
    provisioning_running: int | None = None,
    starting: int = 0,
    may_create: bool = True,
    **counts: int,
) -> ReconcilePlan:
    c = PoolCounts(**counts)
    running = c.provisioning if provisioning_running is None else provisioning_running
    result = plan_reconcile(spec, c, running, starting, may_create)
    negative = {k: v for k, v in dataclasses.asdict(result).items() if v < 0}
    assert not negative, f"a plan never asks for a negative number of actions: {negative}"
    return result


def created(p: ReconcilePlan) -> int:
    return p.create_running + p.create_standby


# --- filling an empty pool ----------------------------------------------------------------


@pytest.mark.parametrize("prestarted", [1, 3, 10])
def test_empty_destroy_pool_creates_the_reserve_running(prestarted: int) -> None:
    p = plan(pool(prestarted=prestarted))
    assert p.create_running == prestarted
    assert p.create_standby == 0
    assert (p.start_standby, p.stop_ready, p.remove_idle) == (0, 0, 0)


def test_min_above_prestarted_fills_to_min_in_a_destroy_pool() -> None:
    p = plan(pool(prestarted=2, min_desktops=5))
    # No powered-off tier in a destroy pool: every desktop is created running.
    assert p.create_running == 5
    assert p.create_standby == 0


@pytest.mark.parametrize("release", WARM)
def test_min_above_prestarted_creates_the_rest_powered_off_in_warm_pools(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=2, min_desktops=5))
    assert p.create_running == 2
    assert p.create_standby == 3


@pytest.mark.parametrize("release", WARM)
def test_warm_pool_without_reserve_creates_min_powered_off(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=0, min_desktops=4))
    assert (p.create_running, p.create_standby) == (0, 4)


@pytest.mark.parametrize("release", [ReleasePolicy.DESTROY, *WARM])
def test_never_plans_above_max(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=5, max_desktops=5)
    assert created(plan(spec)) == 5
    # Waiting claims cannot push it over max either.
    p = plan(spec, waiting=20)
    assert (p.create_running, p.create_standby) == (5, 0)
    # Four live desktops leave room for one.
    assert created(plan(spec, assigned=4, waiting=3)) == 1
    assert created(plan(spec, assigned=5, waiting=3)) == 0


def test_min_is_also_capped_by_max_room() -> None:
    spec = pool(ReleasePolicy.REVERT, prestarted=0, min_desktops=8, max_desktops=8)
    assert created(plan(spec, assigned=6)) == 2


# --- concurrency and desktops in flight ---------------------------------------------------------


def test_creations_bounded_by_pool_concurrency() -> None:
    p = plan(pool(prestarted=10, max_desktops=20, max_concurrent_creations=4))
    assert created(p) == 4


def test_creations_bounded_by_concurrency_minus_those_provisioning() -> None:
    spec = pool(prestarted=10, max_desktops=20, max_concurrent_creations=4)
    assert created(plan(spec, provisioning=3)) == 1
    assert created(plan(spec, provisioning=4)) == 0


@pytest.mark.parametrize("release", WARM)
def test_standby_creations_share_the_concurrency_bound(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=2, min_desktops=10, max_desktops=20, max_concurrent_creations=3))
    assert created(p) == 3
    assert p.create_running == 2  # the reserve comes first


def test_desktops_being_created_count_towards_the_reserve() -> None:
    spec = pool(prestarted=3)
    assert created(plan(spec, provisioning=3)) == 0
    assert created(plan(spec, provisioning=2)) == 1
    assert created(plan(spec, provisioning=1, ready=1)) == 1


def test_desktops_being_created_count_towards_min() -> None:
    spec = pool(ReleasePolicy.REVERT, prestarted=0, min_desktops=5)
    assert created(plan(spec, provisioning=5, provisioning_running=0)) == 0


def test_standby_desktops_being_started_count_towards_the_reserve_and_min() -> None:
    """4 standby desktops, 2 of them already starting (PoolBook reports those apart, in `starting`)."""
    spec = pool(ReleasePolicy.REVERT, prestarted=2, min_desktops=4)
    p = plan(spec, standby=2, starting=2)
    assert p.start_standby == 0
    assert created(p) == 0, "desktops being started were not counted as live"


def test_standby_desktops_being_started_count_towards_max() -> None:
    """Filled to min 4 (2 ready, 2 standby); two users took the ready pair, the standby pair is starting."""
    spec = pool(ReleasePolicy.REVERT, prestarted=2, min_desktops=4, max_desktops=5)
    p = plan(spec, assigned=2, starting=2)
    assert 2 + 2 + created(p) <= spec.max_desktops, "the pool would grow past max"
    assert created(p) == 0


def apply(counts: PoolCounts, p: ReconcilePlan) -> PoolCounts:
    """The pool right after carrying out a plan, before any desktop reports back.

    Removal takes powered-off desktops first (as pick_for_removal does).
    """
    ready = counts.ready + p.start_standby - p.stop_ready
    standby = counts.standby - p.start_standby + p.stop_ready
    from_standby = min(p.remove_idle, standby)
    return dataclasses.replace(
        counts,
        provisioning=counts.provisioning + p.create_running + p.create_standby,
        ready=ready - (p.remove_idle - from_standby),
        standby=standby - from_standby,
        removing=counts.removing + p.remove_idle,
    )


@pytest.mark.parametrize(
    ("spec", "counts"),
    [
        (pool(prestarted=3), PoolCounts()),
        (pool(prestarted=2, min_desktops=6), PoolCounts()),
        (pool(ReleasePolicy.REVERT, prestarted=2, min_desktops=6), PoolCounts()),
        (pool(prestarted=2), PoolCounts(assigned=3, waiting=2)),
        (pool(prestarted=8, max_desktops=20, max_concurrent_creations=3), PoolCounts()),
    ],
    ids=["destroy", "destroy-min", "revert-min", "waiting", "bounded"],
)
def test_a_second_reconcile_before_any_report_creates_nothing_more(spec: PoolSpec, counts: PoolCounts) -> None:
    """A burst of events must not create twice for one need."""
    first = plan_reconcile(spec, counts, 0, 0)
    assert created(first) > 0
    after = apply(counts, first)
    second = plan_reconcile(spec, after, first.create_running, 0)
    assert created(second) == 0
    assert second.remove_idle == 0


def test_waiting_claims_add_demand() -> None:
    spec = pool(prestarted=1)
    assert plan(spec, waiting=3).create_running == 4
    assert plan(spec, assigned=2, waiting=2, ready=1).create_running == 2


def test_disabled_pool_ignores_waiting_claims() -> None:
    spec = pool(prestarted=1, enabled=False)
    assert created(plan(spec, waiting=5)) == 1


def test_restrained_pool_creates_nothing() -> None:
    for spec in (pool(prestarted=3, min_desktops=5), pool(ReleasePolicy.REVERT, prestarted=2, min_desktops=5)):
        p = plan(spec, may_create=False, waiting=2)
        assert created(p) == 0


# --- the warm tier of revert/manual pools ----------------------------------------------------


@pytest.mark.parametrize("release", WARM)
def test_standby_desktops_are_started_before_new_ones_are_created(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=2, min_desktops=4)
    p = plan(spec, standby=4)
    assert p.start_standby == 2
    assert created(p) == 0


@pytest.mark.parametrize("release", WARM)
def test_too_few_standby_desktops_are_all_started_and_the_rest_created(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=3)
    p = plan(spec, standby=1)
    assert p.start_standby == 1
    assert p.create_running == 2


@pytest.mark.parametrize("release", WARM)
def test_waiting_claims_start_standby_desktops(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=0, min_desktops=5)
    p = plan(spec, standby=3, assigned=2, waiting=2)
    assert p.start_standby == 2
    assert created(p) == 0


@pytest.mark.parametrize("release", WARM)
def test_excess_ready_desktops_are_powered_off_in_warm_pools(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=2), ready=5)
    assert p.stop_ready == 3
    assert p.remove_idle == 0
    assert created(p) == 0


@pytest.mark.parametrize("release", WARM)
def test_waiting_claims_keep_ready_desktops_running(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=2), ready=5, waiting=3)
    assert p.stop_ready == 0


@pytest.mark.parametrize("release", WARM)
def test_warm_pool_at_target_is_left_alone(release: ReleasePolicy) -> None:
    p = plan(pool(release, prestarted=2, min_desktops=6), ready=2, standby=4, assigned=3)
    assert p.empty


# --- surplus in destroy pools -------------------------------------------------------------------


def test_excess_ready_desktops_are_removed_in_destroy_pools() -> None:
    p = plan(pool(prestarted=2), ready=5)
    assert p.remove_idle == 3
    assert p.stop_ready == 0
    assert created(p) == 0


@pytest.mark.parametrize(("ready", "assigned", "expected"), [(5, 0, 1), (5, 1, 2), (4, 0, 0), (3, 0, 0), (5, 6, 3)])
def test_destroy_pool_never_removes_below_min(ready: int, assigned: int, expected: int) -> None:
    spec = pool(prestarted=2, min_desktops=4, max_desktops=20)
    p = plan(spec, ready=ready, assigned=assigned)
    assert p.remove_idle == expected
    assert ready + assigned - p.remove_idle >= min(spec.min_desktops, ready + assigned)


def test_two_reconciles_in_a_row_never_remove_below_min() -> None:
    """Desktops already being removed are leaving: a second pass must not count them as live."""
    spec = pool(prestarted=2, min_desktops=4)
    counts = PoolCounts(ready=5)
    first = plan_reconcile(spec, counts, 0, 0)
    assert first.remove_idle == 1
    second = plan_reconcile(spec, apply(counts, first), 0, 0)
    assert second.remove_idle == 0, "the pool would shrink below min once the removals land"


def test_destroy_pool_keeps_ready_desktops_for_waiting_claims() -> None:
    p = plan(pool(prestarted=1), ready=4, waiting=3)
    assert p.remove_idle == 0


# --- above max after a shrink -----------------------------------------------------------------


@pytest.mark.parametrize("release", [ReleasePolicy.DESTROY, *WARM])
def test_above_max_removes_idle_only(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=1, max_desktops=5)
    p = plan(spec, ready=2, standby=2, assigned=4)
    assert p.remove_idle == 3  # live 8, max 5
    assert created(p) == 0
    assert p.start_standby == 0


@pytest.mark.parametrize("release", [ReleasePolicy.DESTROY, *WARM])
def test_above_max_never_removes_more_than_idle(release: ReleasePolicy) -> None:
    spec = pool(release, prestarted=1, max_desktops=5)
    p = plan(spec, ready=1, assigned=7, waiting=4)
    assert p.remove_idle == 1
    assert created(p) == 0
    p = plan(spec, assigned=6, provisioning=2)
    assert p.remove_idle == 0
    assert created(p) == 0


@pytest.mark.parametrize("release", WARM)
def test_shrink_removals_in_flight_are_not_repeated(release: ReleasePolicy) -> None:
    """Max lowered from 10 to 5: five idle desktops are already leaving; nothing more must go."""
    spec = pool(release, prestarted=1, max_desktops=5)
    counts = PoolCounts(ready=1, standby=9)
    first = plan_reconcile(spec, counts, 0, 0)
    assert first.remove_idle == 5
    second = plan_reconcile(spec, apply(counts, first), 0, 0)
    assert second.remove_idle == 0, "desktops already being removed were counted as live again"


# --- personal pools -------------------------------------------------------------------------------


def test_personal_pool_creates_min_running_and_no_reserve() -> None:
    p = plan(personal(min_desktops=3, max_desktops=5))
    assert p.create_running == 3
    assert p.create_standby == 0


def test_personal_pool_reserve_is_ignored_even_if_set() -> None:
    spec = personal(min_desktops=0, max_desktops=5)
    spec.prestarted = 2  # not allowed by validation; the planner must not rely on that alone
    assert plan(spec).empty


def test_personal_pool_never_removes_or_powers_off_unassigned_desktops() -> None:
    p = plan(personal(min_desktops=0, max_desktops=5), ready=4)
    assert p.empty


def test_has_warm_tier() -> None:
    assert has_warm_tier(pool(ReleasePolicy.REVERT, prestarted=0))
    assert has_warm_tier(pool(ReleasePolicy.MANUAL, prestarted=0))
    assert not has_warm_tier(pool(ReleasePolicy.DESTROY, prestarted=1))
    assert not has_warm_tier(personal(release=ReleasePolicy.REVERT))
    assert not has_warm_tier(personal(release=ReleasePolicy.DESTROY))


def test_steady_state_pool_has_an_empty_plan() -> None:
    assert plan(pool(prestarted=2, min_desktops=3), ready=2, assigned=5).empty
    assert ReconcilePlan().empty
    assert not ReconcilePlan(remove_idle=1).empty


# --- a small simulation: the planner converges and respects its bounds at every step ---------------


@pytest.mark.parametrize(
    "spec",
    [
        pool(prestarted=4, min_desktops=7, max_desktops=9, max_concurrent_creations=2),
        pool(ReleasePolicy.REVERT, prestarted=3, min_desktops=8, max_desktops=10, max_concurrent_creations=3),
        pool(ReleasePolicy.MANUAL, prestarted=0, min_desktops=5, max_desktops=5, max_concurrent_creations=2),
    ],
    ids=["destroy", "revert", "manual"],
)
def test_filling_converges_within_bounds(spec: PoolSpec) -> None:
    prov_running = prov_standby = ready = standby = 0
    for _ in range(20):
        counts = PoolCounts(provisioning=prov_running + prov_standby, ready=ready, standby=standby)
        p = plan_reconcile(spec, counts, prov_running, 0)
        assert counts.live + created(p) <= spec.max_desktops
        assert counts.provisioning + created(p) <= spec.max_concurrent_creations
        assert p.remove_idle == 0
        if p.empty and counts.provisioning == 0:
            break
        # Everything provisioning becomes idle; the plan's creations start provisioning.
        ready, standby = ready + prov_running + p.start_standby, standby + prov_standby - p.start_standby
        ready, standby = ready - p.stop_ready, standby + p.stop_ready
        prov_running, prov_standby = p.create_running, p.create_standby
    else:
        pytest.fail("the pool never settled")
    assert ready >= spec.prestarted
    assert ready + standby >= spec.min_desktops
    if not has_warm_tier(spec):
        assert standby == 0


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "how_many", "expected"),
    [
        ([], 3, [1, 2, 3]),
        ([1, 2, 3], 2, [4, 5]),
        ([1, 2, 4], 3, [3, 5, 6]),
        ([2, 5], 4, [1, 3, 4, 6]),
        ([3, 1, 2], 1, [4]),
        ([1, 2], 0, []),
        ([1, 1, 2], 1, [3]),
    ],
)
def test_lowest_free_numbers(used: list[int], how_many: int, expected: list[int]) -> None:
    assert lowest_free_numbers(used, how_many) == expected


def test_numbers_are_never_duplicated_and_never_taken() -> None:
    used = {1, 3, 4, 8, 9, 10}
    numbers = lowest_free_numbers(iter(sorted(used)), 50)
    assert len(set(numbers)) == 50
    assert not set(numbers) & used
    assert all(n >= 1 for n in numbers)


def test_a_gone_desktops_number_is_reused_first() -> None:
    live = [1, 2, 3, 4, 5]
    live.remove(3)
    assert lowest_free_numbers(live, 2) == [3, 6]


# --- picks -----------------------------------------------------------------------------------------

CURRENT = 2


def cand(number: int, slot: Slot = Slot.READY, version: int = CURRENT) -> IdleCandidate:
    return IdleCandidate(desktop_id=f"p.{number}", number=number, slot=slot, template_version=version)


def numbers(cands: list[IdleCandidate]) -> list[int]:
    return [c.number for c in cands]


def test_claim_prefers_running_then_current_version_then_lowest_number() -> None:
    idle = [cand(1, Slot.STANDBY), cand(2, Slot.READY, 1), cand(7), cand(4), cand(3, Slot.ASSIGNED)]
    assert pick_for_claim(idle, CURRENT) == cand(4)


def test_claim_takes_an_old_running_desktop_before_a_powered_off_current_one() -> None:
    idle = [cand(1, Slot.STANDBY), cand(9, Slot.READY, 1)]
    assert pick_for_claim(idle, CURRENT) == cand(9, Slot.READY, 1)


def test_claim_falls_back_to_standby_current_version_first() -> None:
    idle = [cand(5, Slot.STANDBY, 1), cand(8, Slot.STANDBY), cand(6, Slot.STANDBY)]
    assert pick_for_claim(idle, CURRENT) == cand(6, Slot.STANDBY)


@pytest.mark.parametrize("slot", [s for s in Slot if s not in (Slot.READY, Slot.STANDBY)])
def test_claim_never_picks_a_desktop_that_is_not_idle(slot: Slot) -> None:
    assert pick_for_claim([cand(1, slot)], CURRENT) is None


def test_claim_on_no_idle_desktop() -> None:
    assert pick_for_claim([], CURRENT) is None


def test_removal_prefers_standby_then_old_version_then_highest_number() -> None:
    idle = [
        cand(1),
        cand(2, Slot.READY, 1),
        cand(3, Slot.STANDBY),
        cand(4, Slot.STANDBY, 1),
        cand(5),
        cand(6, Slot.ASSIGNED, 1),
        cand(7, Slot.PROVISIONING),
    ]
    assert numbers(pick_for_removal(idle, 10, CURRENT)) == [4, 3, 2, 5, 1]
    assert numbers(pick_for_removal(idle, 2, CURRENT)) == [4, 3]
    assert pick_for_removal(idle, 0, CURRENT) == []


@pytest.mark.parametrize("slot", [s for s in Slot if s not in (Slot.READY, Slot.STANDBY)])
def test_removal_never_takes_a_desktop_that_is_not_idle(slot: Slot) -> None:
    assert pick_for_removal([cand(1, slot)], 1, CURRENT) == []


def test_power_off_takes_running_desktops_only() -> None:
    idle = [cand(1), cand(2, Slot.STANDBY), cand(3, Slot.ASSIGNED), cand(4), cand(5, Slot.READY, 1)]
    picked = pick_for_power_off(idle, 10, CURRENT)
    assert sorted(numbers(picked)) == [1, 4, 5]
    assert len(pick_for_power_off(idle, 2, CURRENT)) == 2


def test_start_takes_standby_current_version_first_then_lowest_number() -> None:
    idle = [cand(1), cand(2, Slot.STANDBY, 1), cand(6, Slot.STANDBY), cand(4, Slot.STANDBY), cand(3, Slot.ASSIGNED)]
    assert numbers(pick_for_start(idle, 10, CURRENT)) == [4, 6, 2]
    assert numbers(pick_for_start(idle, 1, CURRENT)) == [4]


def test_pool_sleeps_until_the_earliest_timer_that_matters() -> None:
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    later, much_later = now + timedelta(seconds=5), now + timedelta(minutes=5)
    assert pool_sleep(now, None, None, None) is None
    assert pool_sleep(now, much_later, later, None) == timedelta(seconds=5)
    assert pool_sleep(now, much_later, None, later) == timedelta(seconds=5)
    # A restraint already over is no reason to wake: no 1 ms spin while desktops build.
    assert pool_sleep(now, None, now - timedelta(seconds=1), None) is None
    assert pool_sleep(now, much_later, now, None) == timedelta(minutes=5)
    # A timer already due wakes at once (1 ms), never a negative sleep.
    assert pool_sleep(now, now - timedelta(seconds=3), None, None) == timedelta(milliseconds=1)
