"""Scheduled capacity: a pool's capacity rules, each one Temporal Schedule (`capacity/<pool>/<rule>`).

The schedule decides the firing (its action starts CapacityChangeWorkflow); the store keeps the
rules so they can be listed and a lost schedule made again from its row (any call that finds a
rule's schedule missing re-creates it, and says so).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.capacity import forget_rule
from activities.store.models import CapacityRuleRecord, PoolRecord
from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Access, Action
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.pool_service import load_pool
from workflows.capacity_rules import CapacityRule, capacity_schedule_id, rule_slug
from workflows.capacity_schedule import capacity_schedule, schedule_search_attributes

router = APIRouter(prefix="/pools/{pool_id}/schedules", tags=["schedules"])
log = logging.getLogger("deskpool.api")


class ScheduleRunView(BaseModel):
    workflow_id: str
    scheduled_at: datetime
    started_at: datetime
    status: str = Field(description="running, completed, failed, timed_out, terminated, canceled or unknown")
    failure: str | None = Field(default=None, description="why the change was refused, for a failed run")


class ScheduleView(BaseModel):
    name: str
    schedule_id: str
    rule: CapacityRule
    paused: bool
    next_action_times: list[datetime] = Field(description="the next firings, in the rule's time zone")
    last_run: ScheduleRunView | None
    recreated: bool = Field(description="the schedule was missing on the workflow service and was made again")
    created_by: str
    created_at: datetime


def _editable_pool(engine: Engine, access: Access, pool_id: str) -> PoolRecord:
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    return record


def _row(engine: Engine, pool_id: str, name: str) -> CapacityRuleRecord:
    with Session(engine) as session:
        row = session.get(CapacityRuleRecord, (pool_id, rule_slug(name)))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"pool {pool_id} has no capacity rule {name!r}")
    return row


def _refused(err: RPCError) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"calendar: the workflow service refused the schedule: {err.message}"
    )


async def _put_schedule(temporal: Client, task_queue: str, pool_id: str, rule: CapacityRule) -> ScheduleHandle:
    """Create the rule's schedule, or make an existing one (a leftover, or the rule edited) say this rule."""
    schedule = capacity_schedule(pool_id, rule, task_queue)
    schedule_id = capacity_schedule_id(pool_id, rule.name)
    try:
        try:
            return await temporal.create_schedule(
                schedule_id, schedule, search_attributes=schedule_search_attributes(pool_id)
            )
        except ScheduleAlreadyRunningError:
            handle = temporal.get_schedule_handle(schedule_id)

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule)

            await handle.update(replace)
            return handle
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT:
            raise _refused(err) from err
        raise


async def _describe(
    temporal: Client, task_queue: str, row: CapacityRuleRecord
) -> tuple[CapacityRule, ScheduleDescription, bool]:
    """The rule and its schedule's description; a missing schedule is made again from the row."""
    rule = CapacityRule.model_validate(row.rule)
    handle = temporal.get_schedule_handle(capacity_schedule_id(row.pool_id, rule.name))
    try:
        return rule, await handle.describe(), False
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    log.warning("capacity rule %r of pool %s had no schedule: made again", rule.name, row.pool_id)
    handle = await _put_schedule(temporal, task_queue, row.pool_id, rule)
    return rule, await handle.describe(), True


async def _last_run(temporal: Client, description: ScheduleDescription) -> ScheduleRunView | None:
    if not description.info.recent_actions:
        return None
    latest = max(description.info.recent_actions, key=lambda a: a.started_at)
    action = latest.action
    if not isinstance(action, ScheduleActionExecutionStartWorkflow):
        return None
    run = ScheduleRunView(
        workflow_id=action.workflow_id, scheduled_at=latest.scheduled_at, started_at=latest.started_at, status="unknown"
    )
    handle = temporal.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return run  # past the namespace's retention
        raise
    run.status = described.status.name.lower() if described.status else "unknown"
    if described.status is WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as failed:
            cause = failed.cause
            run.failure = cause.message if isinstance(cause, FailureError) else str(cause or failed)
    return run


async def _view(temporal: Client, task_queue: str, row: CapacityRuleRecord) -> ScheduleView:
    rule, description, recreated = await _describe(temporal, task_queue, row)
    zone = ZoneInfo(rule.calendar.time_zone)
    return ScheduleView(
        name=rule.name,
        schedule_id=description.id,
        rule=rule,
        paused=description.schedule.state.paused,
        next_action_times=[t.astimezone(zone) for t in description.info.next_action_times],
        last_run=await _last_run(temporal, description),
        recreated=recreated,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _save_rule(engine: Engine, row: CapacityRuleRecord, rule: CapacityRule) -> CapacityRuleRecord:
    with Session(engine) as session:
        stored = session.get(CapacityRuleRecord, (row.pool_id, row.slug))
        if stored is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"pool {row.pool_id} has no capacity rule {row.name!r}")
        stored.name, stored.rule = rule.name, rule.to_json()
        session.add(stored)
        session.commit()
        session.refresh(stored)
    return stored


@router.get("", response_model=list[ScheduleView])
async def list_schedules(
    pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> list[ScheduleView]:
    """The pool's capacity rules with their next firings (a rule whose schedule is missing gets it back)."""
    _editable_pool(engine, access, pool_id)
    with Session(engine) as session:
        query = select(CapacityRuleRecord).where(CapacityRuleRecord.pool_id == pool_id)
        rows = sorted(session.exec(query).all(), key=lambda r: r.slug)
    return list(await asyncio.gather(*(_view(temporal, settings.task_queue, r) for r in rows)))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleView,
    responses={409: {"description": "the pool has a rule of this name"}},
)
async def create_schedule(
    pool_id: str,
    rule: CapacityRule,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ScheduleView:
    """A capacity rule: sets the pool's prestarted / min_desktops / max_desktops at `calendar.hour:minute`
    on `calendar.days_of_week` (none: every day) or on `calendar.dates` only, in `calendar.time_zone`,
    never on `skip_dates` (holidays). One Temporal Schedule `capacity/<pool>/<rule>`."""
    _editable_pool(engine, access, pool_id)
    row = CapacityRuleRecord(
        pool_id=pool_id, slug=rule.slug, name=rule.name, rule=rule.to_json(), created_by=access.principal.username
    )
    clash = HTTPException(status.HTTP_409_CONFLICT, f"name: pool {pool_id} has a rule named like {rule.name!r}")
    with Session(engine) as session:
        if session.get(CapacityRuleRecord, (pool_id, rule.slug)) is not None:
            raise clash
        session.add(row)
        try:
            session.commit()
        except IntegrityError as err:
            raise clash from err
        session.refresh(row)
    try:
        await _put_schedule(temporal, settings.task_queue, pool_id, rule)
    except BaseException:
        with Session(engine) as session:  # no stored rule without its schedule
            doomed = session.get(CapacityRuleRecord, (pool_id, rule.slug))
            if doomed is not None:
                session.delete(doomed)
                session.commit()
        raise
    detail = {"rule": rule.name, "schedule_id": capacity_schedule_id(pool_id, rule.name)}
    record_action(engine, access.principal.username, "schedule.created", pool_id=pool_id, detail=detail)
    return await _view(temporal, settings.task_queue, row)


@router.get("/{name}", response_model=ScheduleView)
async def get_schedule(
    pool_id: str, name: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> ScheduleView:
    _editable_pool(engine, access, pool_id)
    return await _view(temporal, settings.task_queue, _row(engine, pool_id, name))


@router.put("/{name}", response_model=ScheduleView)
async def edit_schedule(
    pool_id: str,
    name: str,
    rule: CapacityRule,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ScheduleView:
    """Replace the rule (calendar, holidays, sizing, paused); its name stays (delete and create to rename)."""
    _editable_pool(engine, access, pool_id)
    row = _row(engine, pool_id, name)
    if rule.slug != row.slug:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"name: a rule keeps its name ({row.name!r}); delete and create it"
        )
    await _put_schedule(temporal, settings.task_queue, pool_id, rule)
    row = _save_rule(engine, row, rule)
    record_action(engine, access.principal.username, "schedule.edited", pool_id=pool_id, detail={"rule": rule.name})
    return await _view(temporal, settings.task_queue, row)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(
    pool_id: str, name: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> Response:
    """The rule and its Temporal Schedule; the pool keeps the sizing it has."""
    _editable_pool(engine, access, pool_id)
    row = _row(engine, pool_id, name)
    await forget_rule(temporal, engine, pool_id, row.name, capacity_schedule_id(pool_id, row.name))
    record_action(engine, access.principal.username, "schedule.deleted", pool_id=pool_id, detail={"rule": row.name})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _set_paused(
    pool_id: str, name: str, paused: bool, access: Access, engine: Engine, temporal: Client, task_queue: str
) -> ScheduleView:
    _editable_pool(engine, access, pool_id)
    row = _row(engine, pool_id, name)
    rule, description, _ = await _describe(temporal, task_queue, row)
    handle = temporal.get_schedule_handle(description.id)
    who = access.principal.username
    if paused:
        await handle.pause(note=f"paused by {who}")
    else:
        await handle.unpause(note=f"unpaused by {who}")
    row = _save_rule(engine, row, rule.model_copy(update={"paused": paused}))
    action = "schedule.paused" if paused else "schedule.unpaused"
    record_action(engine, who, action, pool_id=pool_id, detail={"rule": rule.name})
    return await _view(temporal, task_queue, row)


@router.post("/{name}/pause", response_model=ScheduleView)
async def pause_schedule(
    pool_id: str, name: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> ScheduleView:
    """The rule stops firing until unpaused (a trigger still applies it)."""
    return await _set_paused(pool_id, name, True, access, engine, temporal, settings.task_queue)


@router.post("/{name}/unpause", response_model=ScheduleView)
async def unpause_schedule(
    pool_id: str, name: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> ScheduleView:
    return await _set_paused(pool_id, name, False, access, engine, temporal, settings.task_queue)


@router.post("/{name}/trigger", status_code=status.HTTP_202_ACCEPTED, response_model=ScheduleView)
async def trigger_schedule(
    pool_id: str, name: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> ScheduleView:
    """Apply the rule now (its change workflow starts; `last_run` and the audit log show the outcome)."""
    _editable_pool(engine, access, pool_id)
    row = _row(engine, pool_id, name)
    _, description, _ = await _describe(temporal, settings.task_queue, row)
    await temporal.get_schedule_handle(description.id).trigger()
    record_action(engine, access.principal.username, "schedule.triggered", pool_id=pool_id, detail={"rule": row.name})
    return await _view(temporal, settings.task_queue, row)
