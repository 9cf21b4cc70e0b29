"""A capacity rule as a Temporal Schedule: its calendar, its holidays, its action.

Pure translation, used by the API (which creates, updates and describes the schedules) and
unit-tested on its own. One schedule per rule, id `capacity/<pool id>/<rule slug>`; its action
starts CapacityChangeWorkflow with the rule's sizing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from workflows import search_attributes as sa
from workflows.capacity_rules import WEEKDAY_NUMBERS, CapacityChangeInput, CapacityRule, capacity_schedule_id
from workflows.capacity_workflow import CapacityChangeWorkflow

# Missed firings (a server outage) are made up only this late: a morning ramp-up is
# still worth doing ten minutes late, yesterday evening's scale-down is not.
CATCHUP_WINDOW = timedelta(minutes=10)
# A change normally takes a second; one stuck longer (the pool unreachable) is ended
# rather than skipping every later firing under the SKIP overlap policy.
EXECUTION_TIMEOUT = timedelta(minutes=30)
EVERY_DAY = (ScheduleRange(0, 6),)


def _one(value: int) -> tuple[ScheduleRange, ...]:
    return (ScheduleRange(value),)


def _day(day: date) -> dict[str, Sequence[ScheduleRange]]:
    return {"year": _one(day.year), "month": _one(day.month), "day_of_month": _one(day.day)}


def schedule_spec(rule: CapacityRule) -> ScheduleSpec:
    """When the rule fires: hour:minute on its weekdays (every day when none) or on its dates only,
    in its time zone, never on a skip date (the whole day is excluded)."""
    calendar = rule.calendar
    at = {"second": _one(0), "minute": _one(calendar.minute), "hour": _one(calendar.hour)}
    calendars: list[ScheduleCalendarSpec]
    if calendar.dates:
        calendars = [
            ScheduleCalendarSpec(**at, **_day(d), comment=f"{rule.name}: {d.isoformat()}") for d in calendar.dates
        ]
    else:
        days = tuple(ScheduleRange(WEEKDAY_NUMBERS[d]) for d in calendar.days_of_week) or EVERY_DAY
        label = ",".join(calendar.days_of_week) or "every day"
        calendars = [ScheduleCalendarSpec(**at, day_of_week=days, comment=f"{rule.name}: {label}")]
    whole_day = {"second": (ScheduleRange(0, 59),), "minute": (ScheduleRange(0, 59),), "hour": (ScheduleRange(0, 23),)}
    skip = [ScheduleCalendarSpec(**whole_day, **_day(d), comment=f"holiday {d.isoformat()}") for d in rule.skip_dates]
    return ScheduleSpec(calendars=calendars, skip=skip, time_zone_name=calendar.time_zone)


def capacity_schedule(pool_id: str, rule: CapacityRule, task_queue: str) -> Schedule:
    schedule_id = capacity_schedule_id(pool_id, rule.name)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CapacityChangeWorkflow.run,
            CapacityChangeInput(pool_id=pool_id, rule=rule.name, sizing=rule.sizing),
            # Temporal appends the firing time: capacity/<pool>/<rule>-<time>.
            id=schedule_id,
            task_queue=task_queue,
            execution_timeout=EXECUTION_TIMEOUT,
            typed_search_attributes=schedule_search_attributes(pool_id),
            static_summary=f"capacity rule {rule.name!r} of pool {pool_id}",
        ),
        spec=schedule_spec(rule),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=rule.paused, note="created paused" if rule.paused else None),
    )


def schedule_search_attributes(pool_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(sa.KIND, "capacity"), SearchAttributePair(sa.POOL, pool_id)])
