"""Capacity rules: their validation (errors name the field), their translation into a Temporal
ScheduleSpec (weekdays, time, time zone, dates, holidays) and what applying one to a pool's spec does."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import ScheduleActionStartWorkflow, ScheduleCalendarSpec, ScheduleOverlapPolicy, ScheduleRange
from temporalio.converter import DataConverter

from workflows.capacity_rules import (
    CapacityChangeInput,
    CapacityRule,
    CapacitySizing,
    SizingRefused,
    apply_sizing,
    capacity_schedule_id,
    rule_slug,
)
from workflows.capacity_schedule import capacity_schedule, schedule_spec
from workflows.pool_spec import Assignment, PoolSpec, ReleasePolicy, Template

R = ScheduleRange
EVERY_MONTH, EVERY_DAY_OF_MONTH = (R(1, 12),), (R(1, 31),)


def rule(**overrides: Any) -> CapacityRule:
    body: dict[str, Any] = {
        "name": "Weekday mornings",
        "calendar": {"days_of_week": ["mon", "tue", "wed", "thu", "fri"], "hour": 7, "minute": 30,
                     "time_zone": "Europe/Berlin"},
        "sizing": {"prestarted": 8},
    }  # fmt: skip
    body.update(overrides)
    return CapacityRule.model_validate(body)


def calendar(**fields: Any) -> dict[str, Any]:
    return {"hour": 7, "time_zone": "Europe/Berlin", **fields}


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as exc:
        rule(**body)
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


# --- translation ----------------------------------------------------------------------------


def test_weekdays_at_a_time_in_a_time_zone() -> None:
    spec = schedule_spec(rule(calendar=calendar(days_of_week=["fri", "mon"], hour=7, minute=30)))
    assert spec.time_zone_name == "Europe/Berlin"
    assert spec.skip == [] and spec.intervals == [] and spec.cron_expressions == []
    [only] = spec.calendars
    assert (only.second, only.minute, only.hour) == ((R(0),), (R(30),), (R(7),))
    # Temporal numbers Sunday 0: Monday 1, Friday 5; every month, every day of the month, every year.
    assert only.day_of_week == (R(1), R(5))
    assert (only.month, only.day_of_month, only.year) == (EVERY_MONTH, EVERY_DAY_OF_MONTH, ())


def test_no_weekdays_means_every_day_and_sunday_is_zero() -> None:
    assert schedule_spec(rule(calendar=calendar())).calendars[0].day_of_week == (R(0, 6),)
    sundays = schedule_spec(rule(calendar=calendar(days_of_week=["SUN", "sat"])))
    assert sundays.calendars[0].day_of_week == (R(6), R(0))  # Monday-first order: sat, sun


def test_dates_fire_on_those_days_only() -> None:
    spec = schedule_spec(rule(calendar=calendar(dates=["2026-12-31", "2026-12-24"], hour=13, minute=5)))
    assert spec.calendars == [
        ScheduleCalendarSpec(second=(R(0),), minute=(R(5),), hour=(R(13),), year=(R(2026),), month=(R(12),),
                             day_of_month=(R(day),), comment=f"Weekday mornings: 2026-12-{day}")
        for day in (24, 31)
    ]  # fmt: skip
    assert all(c.day_of_week == (R(0, 6),) for c in spec.calendars)


def test_holidays_skip_the_whole_day_in_the_rule_time_zone() -> None:
    spec = schedule_spec(rule(skip_dates=["2027-01-01", "2026-12-25", "2026-12-25"]))
    assert [(s.year, s.month, s.day_of_month) for s in spec.skip] == [
        ((R(2026),), (R(12),), (R(25),)),
        ((R(2027),), (R(1),), (R(1),)),
    ]
    for skip in spec.skip:
        assert (skip.hour, skip.minute, skip.second) == ((R(0, 23),), (R(0, 59),), (R(0, 59),))
        assert skip.day_of_week == (R(0, 6),)
    assert spec.time_zone_name == "Europe/Berlin"  # the zone applies to the skips too: one per spec


def test_the_schedule_starts_the_change_workflow_with_the_sizing() -> None:
    the_rule = rule(name="Night shift", paused=True, sizing={"prestarted": 1, "max_desktops": 4})
    schedule = capacity_schedule("call-centre", the_rule, "deskpool")
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        "CapacityChangeWorkflow",
        "capacity/call-centre/night-shift",
        "deskpool",
    )
    assert list(action.args) == [
        CapacityChangeInput("call-centre", "Night shift", CapacitySizing(max_desktops=4, prestarted=1))
    ]
    assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == timedelta(minutes=10)
    assert schedule.state.paused is True
    assert schedule.spec == schedule_spec(the_rule)


def test_schedule_ids_use_the_rule_slug() -> None:
    assert rule_slug("Night shift") == "night-shift"
    assert rule_slug("Xmas__Eve 2026") == "xmas-eve-2026"
    assert capacity_schedule_id("p1", "Night  shift") == "capacity/p1/night-shift"


def test_the_change_input_crosses_the_temporal_boundary() -> None:
    converter = DataConverter.default.payload_converter
    sent = CapacityChangeInput("p1", "Evening", CapacitySizing(prestarted=0, max_desktops=3))
    [payload] = converter.to_payloads([sent])
    [received] = converter.from_payloads([payload], [CapacityChangeInput])
    assert received == sent and isinstance(received.sizing, CapacitySizing)


# --- validation -----------------------------------------------------------------------------


def test_a_valid_rule_normalises_days_and_dates() -> None:
    the_rule = rule(calendar=calendar(days_of_week=["Fri", "mon"]), skip_dates=["2026-12-26", "2026-12-25"])
    assert the_rule.calendar.days_of_week == ["mon", "fri"]
    assert the_rule.skip_dates == [date(2026, 12, 25), date(2026, 12, 26)]
    assert the_rule.to_json()["skip_dates"] == ["2026-12-25", "2026-12-26"]
    assert CapacityRule.model_validate(the_rule.to_json()) == the_rule


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"calendar": calendar(time_zone="Mars/Olympus")}, ("calendar", "time_zone"), "IANA time zone"),
        ({"calendar": calendar(time_zone="localtime")}, ("calendar", "time_zone"), "IANA time zone"),
        ({"calendar": calendar(time_zone="../etc/passwd")}, ("calendar", "time_zone"), "IANA time zone"),
        ({"calendar": calendar(hour=25)}, ("calendar", "hour"), "less than or equal to 23"),
        ({"calendar": calendar(minute=60)}, ("calendar", "minute"), "less than or equal to 59"),
        ({"calendar": {"time_zone": "UTC"}}, ("calendar", "hour"), "required"),
        ({"calendar": calendar(days_of_week=["mon", "mon"])}, ("calendar", "days_of_week"), "twice"),
        ({"calendar": calendar(days_of_week=["monday"])}, ("calendar", "days_of_week", 0), "'mon'"),
        ({"calendar": calendar(days_of_week=["sat"], dates=["2026-12-24"])}, ("calendar", "dates"), "days_of_week"),
        ({"calendar": calendar(dates=["2026-12-24", "2026-12-24"])}, ("calendar", "dates"), "twice"),
        ({"calendar": calendar(dates=["2026-02-30"])}, ("calendar", "dates", 0), "date"),
        ({"skip_dates": ["christmas"]}, ("skip_dates", 0), "date"),
        ({"sizing": {}}, ("sizing",), "at least one of min_desktops, max_desktops, prestarted"),
        ({"sizing": {"prestarted": None}}, ("sizing",), "at least one"),
        ({"sizing": {"prestarted": 5, "max_desktops": 4}}, ("sizing", "prestarted"), "max_desktops (4)"),
        ({"sizing": {"min_desktops": 5, "max_desktops": 4}}, ("sizing", "max_desktops"), "min_desktops (5)"),
        ({"sizing": {"max_desktops": 0}}, ("sizing", "max_desktops"), "greater than or equal to 1"),
        ({"sizing": {"prestart": 3}}, ("sizing", "prestart"), "Unexpected keyword"),
        ({"name": "-night"}, ("name",), "Latin letters"),
        ({"name": ""}, ("name",), "at least 1 character"),
        ({"holidays": []}, ("holidays",), "Extra inputs"),
    ],
)
def test_invalid_rules_name_the_field(body: dict[str, Any], loc: tuple[Any, ...], words: str) -> None:
    error = error_of(body)
    assert error["loc"] == loc and words in error["msg"], error


def test_too_many_dates_are_refused() -> None:
    many = [(date(2027, 1, 1) + timedelta(days=n)).isoformat() for n in range(367)]
    assert error_of({"skip_dates": many})["loc"] == ("skip_dates",)


# --- applying a sizing to a pool's spec -----------------------------------------------------

TEMPLATE = Template(image="win11", flavor="vdi.medium")


def pool(**fields: Any) -> PoolSpec:
    return PoolSpec(**{"name": "Call centre", "template": TEMPLATE, "naming_mask": "cc-", "max_desktops": 10,
                       "prestarted": 2, **fields})  # fmt: skip


def test_a_sizing_changes_only_what_it_sets() -> None:
    before = pool(min_desktops=1)
    after = apply_sizing(before, CapacitySizing(prestarted=6), rule="mornings", pool_id="cc")
    assert (after.min_desktops, after.max_desktops, after.prestarted) == (1, 10, 6)
    assert after.template == before.template and after.name == before.name
    both = apply_sizing(before, CapacitySizing(max_desktops=20, prestarted=15), rule="mornings", pool_id="cc")
    assert (both.max_desktops, both.prestarted) == (20, 15)


@pytest.mark.parametrize(
    ("spec", "sizing", "field", "words"),
    [
        (pool(), CapacitySizing(prestarted=11), "prestarted", "must not exceed max_desktops (10)"),
        (pool(prestarted=8), CapacitySizing(max_desktops=5), "prestarted", "must not exceed max_desktops (5)"),
        (pool(min_desktops=4), CapacitySizing(max_desktops=3), "max_desktops", "below min_desktops (4)"),
        (pool(), CapacitySizing(prestarted=0), "prestarted", "at least 1"),
        (pool(max_desktops=999), CapacitySizing(max_desktops=1000), "max_desktops", "3 naming digits"),
        (pool(assignment=Assignment.PERSONAL, release=ReleasePolicy.MANUAL, prestarted=0),
         CapacitySizing(prestarted=2), "prestarted", "floating pools only"),
    ],
)  # fmt: skip
def test_a_sizing_the_pool_refuses_names_the_rule_and_the_field(
    spec: PoolSpec, sizing: CapacitySizing, field: str, words: str
) -> None:
    with pytest.raises(SizingRefused) as refused:
        apply_sizing(spec, sizing, rule="evening", pool_id="cc")
    assert refused.value.field == field
    message = str(refused.value)
    assert message.startswith(f"capacity rule 'evening' cannot apply to pool cc: {field}: ") and words in message
