"""Scheduled capacity: what a capacity rule is, and what applying one to a pool's spec does.

A capacity rule changes a pool's sizing (prestarted, min_desktops, max_desktops) at given
times of given days or dates, in a time zone, except on holidays. Each rule is one Temporal
Schedule (`workflows/capacity_schedule.py`) whose action starts `CapacityChangeWorkflow`
(`workflows/capacity_workflow.py`).

Pure: the pydantic models the API validates, the dataclasses that cross the Temporal boundary
(the change workflow's and its activity's input and result), and `apply_sizing`, which both
the activity and the tests call. The one lookup is the time zone check against the system's
IANA database; it runs where a rule is submitted (the API), never in a workflow.
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic import dataclasses as pydantic_dataclasses

from workflows.pool_spec import PoolSpec

RULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,63}")
TIME_ZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")
# Dates a rule fires on, or skips: a year of them is plenty, and keeps a schedule small.
MAX_DATES = 366
SIZING_FIELDS = ("min_desktops", "max_desktops", "prestarted")
# ApplicationError.type of a sizing the pool's spec refuses; never retried.
CAPACITY_REFUSED = "CapacityRefused"

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Temporal's calendar numbering: 0 is Sunday.
WEEKDAY_NUMBERS: dict[str, int] = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
WEEK_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def rule_slug(name: str) -> str:
    """The rule's part of its schedule id: "Night shift" -> "night-shift"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@pydantic_dataclasses.dataclass(config=ConfigDict(extra="forbid"))
class CapacitySizing:
    """What a rule sets; None leaves the pool's value as it is. Crosses the Temporal boundary.

    Field order matters as in PoolSpec: a pair is checked on its later field."""

    min_desktops: int | None = Field(default=None, ge=0, le=100_000)
    max_desktops: int | None = Field(default=None, ge=1, le=100_000)
    prestarted: int | None = Field(default=None, ge=0, le=100_000)

    @field_validator("max_desktops")
    @classmethod
    def _max(cls, value: int | None, info: ValidationInfo) -> int | None:
        minimum = info.data.get("min_desktops")
        if value is not None and minimum is not None and minimum > value:
            raise ValueError(f"must not be below min_desktops ({minimum}) of the same rule")
        return value

    @field_validator("prestarted")
    @classmethod
    def _prestarted(cls, value: int | None, info: ValidationInfo) -> int | None:
        maximum = info.data.get("max_desktops")
        if value is not None and maximum is not None and value > maximum:
            raise ValueError(f"must not exceed max_desktops ({maximum}) of the same rule")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields this sizing sets."""
        return {name: value for name in SIZING_FIELDS if (value := getattr(self, name)) is not None}


class CapacityCalendar(BaseModel):
    """When the rule fires: at hour:minute on the given weekdays (none: every day), or on the
    given dates only; in an IANA time zone, so 07:00 stays 07:00 across daylight saving."""

    model_config = ConfigDict(extra="forbid")

    days_of_week: list[Annotated[Weekday, BeforeValidator(_lower)]] = Field(default_factory=list, max_length=7)
    hour: int = Field(ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    dates: list[date] = Field(default_factory=list, max_length=MAX_DATES)
    time_zone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Berlin"])

    @field_validator("days_of_week")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not name a day twice")
        return sorted(value, key=WEEK_ORDER.index)

    @field_validator("dates")
    @classmethod
    def _dates(cls, value: list[date], info: ValidationInfo) -> list[date]:
        if value and info.data.get("days_of_week"):
            raise ValueError("leave days_of_week empty when dates are given: the rule fires on these dates only")
        if len(set(value)) != len(value):
            raise ValueError("must not name a date twice")
        return sorted(value)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        # The system's IANA database (tzdata); "localtime" is this machine's, not a zone name.
        if not TIME_ZONE_RE.fullmatch(value) or value == "localtime" or value not in zoneinfo.available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone name such as 'Europe/Berlin' or 'UTC'")
        return value


class CapacityRule(BaseModel):
    """A pool's capacity rule, as submitted to the API and kept in the store."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["weekday mornings"])
    calendar: CapacityCalendar
    # Holidays: the rule does not fire on these dates (in the calendar's time zone).
    skip_dates: list[date] = Field(default_factory=list, max_length=MAX_DATES)
    sizing: CapacitySizing
    # Created paused: the schedule exists but does not fire until unpaused.
    paused: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not RULE_NAME_RE.fullmatch(value):
            raise ValueError(
                "must be 1-64 characters: Latin letters, digits, '-', '_' and spaces, starting with a letter or digit"
            )
        return value

    @field_validator("skip_dates")
    @classmethod
    def _skip_dates(cls, value: list[date]) -> list[date]:
        return sorted(set(value))

    @field_validator("sizing")
    @classmethod
    def _sizing(cls, value: CapacitySizing) -> CapacitySizing:
        if not value.changes():
            raise ValueError(f"set at least one of {', '.join(SIZING_FIELDS)}")
        return value

    @property
    def slug(self) -> str:
        return rule_slug(self.name)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class SizingRefused(ValueError):
    """The pool's spec with the rule's sizing applied breaks a PoolSpec rule."""

    def __init__(self, rule: str, pool_id: str, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"capacity rule {rule!r} cannot apply to pool {pool_id}: {field}: {reason}")


def sizing_of(spec: PoolSpec) -> dict[str, int]:
    return {name: getattr(spec, name) for name in SIZING_FIELDS}


def apply_sizing(spec: PoolSpec, sizing: CapacitySizing, *, rule: str, pool_id: str) -> PoolSpec:
    """The spec with the rule's sizing; every PoolSpec rule still holds, or SizingRefused names the field."""
    try:
        return dataclasses.replace(spec, **sizing.changes())
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "sizing"
        raise SizingRefused(rule, pool_id, field, first["msg"].removeprefix("Value error, ")) from None


# --- crossing the Temporal boundary -------------------------------------------------------


@dataclass
class CapacityChangeInput:
    """What a rule's schedule starts CapacityChangeWorkflow with."""

    pool_id: str
    rule: str
    sizing: CapacitySizing


@dataclass
class CapacityChangeResult:
    pool_id: str
    rule: str
    # "applied", "unchanged" (the pool already had this sizing) or "pool_gone" (removed or being removed).
    outcome: str
    before: dict[str, int] = dataclasses.field(default_factory=dict)
    after: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass
class ApplyCapacityInput:
    pool_id: str
    rule: str
    sizing: CapacitySizing
    # The rule's schedule: removed with the rule once the pool is gone.
    schedule_id: str


@dataclass
class ApplyCapacityResult:
    outcome: str
    before: dict[str, int] = dataclasses.field(default_factory=dict)
    after: dict[str, int] = dataclasses.field(default_factory=dict)
    template_version: int = 0


def capacity_schedule_id(pool_id: str, rule_name: str) -> str:
    return f"capacity/{pool_id}/{rule_slug(rule_name)}"
