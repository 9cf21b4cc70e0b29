"""Recreate: roll a pool's desktops onto its newest template version (RolloutWorkflow), watch,
pause, resume and cancel it. One rollout per pool at a time (workflow id `rollout/<pool id>`)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.pool_service import load_pool
from api.views import temporal_link
from workflows import search_attributes as sa
from workflows.messages import pool_workflow_id
from workflows.pool_spec import spec_from_json
from workflows.pool_workflow import PoolWorkflow
from workflows.rollout_messages import (
    CanaryProgress,
    RolloutCommand,
    RolloutProgress,
    RolloutProgressInput,
    RolloutStatus,
    RolloutStrategy,
    RolloutViewInput,
    rollout_workflow_id,
)
from workflows.rollout_rules import MAX_BATCH_SIZE, default_floor, floor_refusal
from workflows.rollout_workflow import RolloutInput, RolloutWorkflow

router = APIRouter(prefix="/pools/{pool_id}", tags=["rollouts"])


class RecreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["rolling", "immediate"] = Field(
        default="rolling",
        description="rolling: a canary, then batches within the floor; immediate: a canary, then all idle old ones",
    )
    floor: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="ready desktops kept while it runs; default: half of the prestarted ones (immediate: none)",
    )
    batch_size: int = Field(default=2, ge=1, le=MAX_BATCH_SIZE, description="desktops in flight at once (rolling)")
    max_failures: int = Field(default=2, ge=0, le=1000, description="failed new desktops before it pauses itself")
    recycle_assigned: bool = Field(
        default=False, description="old desktops in use go (and are replaced) once their users are done"
    )


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class CanaryView(BaseModel):
    desktop_id: str | None
    result: str = Field(description="pending, building, ready, failed, not_needed")
    reason: str


class RolloutView(BaseModel):
    rollout_id: str = Field(description="the rollout's workflow id (one rollout per pool at a time)")
    run_id: str | None
    pool_id: str
    status: str = Field(description="running, paused, completed, cancelled, failed")
    strategy: str
    target_version: int
    done: int = Field(description="old desktops replaced")
    total: int = Field(description="old desktops to replace in all (done, leaving and remaining)")
    leaving: int
    building: int
    failures: int
    max_failures: int
    floor: int | None
    batch_size: int = Field(description="0: unbounded (immediate)")
    canary: CanaryView
    ready: int
    lowest_ready: int | None
    paused_reason: str
    waiting: str
    deferred: int = Field(description="desktops in use marked to go when their users are done")
    observations: int
    reason: str
    started_at: datetime | None
    finished_at: datetime | None
    workflow_url: str


def _view(progress: RolloutProgress, settings: SettingsDep, run_id: str | None) -> RolloutView:
    workflow_id = rollout_workflow_id(progress.pool_id)
    fields = dataclasses.asdict(progress)
    fields["canary"] = CanaryView(**fields["canary"])
    return RolloutView(
        **fields,
        rollout_id=workflow_id,
        run_id=run_id,
        workflow_url=temporal_link(settings.temporal_ui_url, settings.temporal_namespace, workflow_id),
    )


def _handle(temporal: Client, pool_id: str) -> WorkflowHandle[RolloutWorkflow, RolloutProgress]:
    return temporal.get_workflow_handle_for(RolloutWorkflow.run, rollout_workflow_id(pool_id))


@router.post(
    "/recreate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RolloutView,
    responses={409: {"description": "a rollout of the pool is running, or the pool is being removed"}},
)
async def recreate_pool(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: Annotated[RecreateBody | None, Body()] = None,
) -> RolloutView:
    """Recreate the pool's idle desktops that are not on its current template version; the pool
    replenishes to its prestarted count on the new version. A canary first, then batches that keep
    at least `floor` desktops ready; it pauses by itself after a failed canary or more than
    `max_failures` failed desktops. Desktops in use are never taken (`recycle_assigned`: they go
    once their users are done). Follow it with GET /pools/{id}/rollout."""
    body = body or RecreateBody()
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    spec = spec_from_json(record.spec)
    strategy = RolloutStrategy(body.strategy)
    if body.floor is not None and (refusal := floor_refusal(body.floor, spec.prestarted)) is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, refusal)
    pool = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    seen = await pool.query(PoolWorkflow.rollout_view, RolloutViewInput(limit=0))
    if seen.being_removed:
        raise HTTPException(status.HTTP_409_CONFLICT, f"pool: pool {pool_id} is being removed")
    request = RolloutInput(
        pool_id=pool_id,
        target_version=seen.template_version,
        strategy=strategy,
        floor=body.floor,
        batch_size=body.batch_size,
        max_failures=body.max_failures,
        recycle_assigned=body.recycle_assigned,
    )
    try:
        handle = await temporal.start_workflow(
            RolloutWorkflow.run,
            request,
            id=rollout_workflow_id(pool_id),
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.KIND, "rollout"),
                    SearchAttributePair(sa.POOL, pool_id),
                    SearchAttributePair(sa.STATE, RolloutStatus.RUNNING.value),
                ]
            ),
            static_summary=f"recreate pool {spec.name} on template v{seen.template_version} ({strategy.value})",
        )
    except WorkflowAlreadyStartedError as err:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"rollout: a rollout of pool {pool_id} is already running (GET /pools/{pool_id}/rollout)",
        ) from err
    floor = body.floor if body.floor is not None else default_floor(seen.prestarted, strategy)
    detail = {"strategy": strategy.value, "target_version": seen.template_version, "floor": floor,
              "batch_size": body.batch_size, "max_failures": body.max_failures,
              "recycle_assigned": body.recycle_assigned, "total": seen.remaining}  # fmt: skip
    record_action(engine, access.principal.username, "pool.recreate_started", pool_id=pool_id, detail=detail)
    started = RolloutProgress(
        pool_id=pool_id,
        strategy=strategy,
        status=RolloutStatus.RUNNING,
        target_version=seen.template_version,
        done=0,
        total=seen.remaining,
        leaving=0,
        building=len(seen.building),
        failures=0,
        max_failures=body.max_failures,
        floor=floor,
        batch_size=0 if strategy is RolloutStrategy.IMMEDIATE else body.batch_size,
        canary=CanaryProgress(),
        ready=seen.ready,
        lowest_ready=None,
    )
    return _view(started, settings, handle.run_id)


@router.get("/rollout", response_model=RolloutView, responses={404: {"description": "no rollout of the pool has run"}})
async def get_rollout(
    pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> RolloutView:
    """The pool's current rollout, or its last one: status, done of total, failures, the canary, the floor."""
    record = load_pool(engine, pool_id)
    require(access, Action.VIEW_POOL, pool_target(record))
    handle = _handle(temporal, pool_id)
    described = await _describe(handle, pool_id)
    if described.status is WorkflowExecutionStatus.RUNNING:
        progress = await handle.query(RolloutWorkflow.progress, RolloutProgressInput())
    elif described.status is WorkflowExecutionStatus.COMPLETED:
        progress = await handle.result()
    else:
        progress = await _ended_otherwise(handle, pool_id, described.status)
    return _view(progress, settings, described.run_id)


async def _describe(
    handle: WorkflowHandle[RolloutWorkflow, RolloutProgress], pool_id: str
) -> WorkflowExecutionDescription:
    try:
        return await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"rollout: no rollout of pool {pool_id} has run") from None
        raise


async def _ended_otherwise(
    handle: WorkflowHandle[RolloutWorkflow, RolloutProgress], pool_id: str, ended: WorkflowExecutionStatus | None
) -> RolloutProgress:
    """Terminated, timed out or failed outside its own decisions: its last progress, marked failed."""
    how = ended.name.lower() if ended is not None else "ended"
    try:
        progress = await handle.query(RolloutWorkflow.progress, RolloutProgressInput())
    except (WorkflowQueryFailedError, RPCError):
        progress = RolloutProgress(
            pool_id=pool_id, strategy=RolloutStrategy.ROLLING, status=RolloutStatus.FAILED, target_version=0, done=0,
            total=0, leaving=0, building=0, failures=0, max_failures=0, floor=None, batch_size=0,
            canary=CanaryProgress(), ready=0, lowest_ready=None,
        )  # fmt: skip
    if progress.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
        progress.status, progress.reason = RolloutStatus.FAILED, f"the rollout workflow was {how}"
    return progress


async def _command(
    pool_id: str,
    command: Literal["pause", "resume", "cancel"],
    body: CommandBody | None,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> RolloutView:
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    handle = _handle(temporal, pool_id)
    described = await _describe(handle, pool_id)
    ended = HTTPException(
        status.HTTP_409_CONFLICT, f"rollout: the last rollout of pool {pool_id} has ended: nothing to {command}"
    )
    if described.status is not WorkflowExecutionStatus.RUNNING:
        raise ended
    order = RolloutCommand(actor=access.principal.username, reason=body.reason if body else "")
    update = {"pause": RolloutWorkflow.pause, "resume": RolloutWorkflow.resume, "cancel": RolloutWorkflow.cancel}
    try:
        progress = await handle.execute_update(update[command], order)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:  # it ended in the meantime
            raise ended from None
        raise
    past = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[command]
    detail = {"reason": order.reason} if order.reason else {}
    record_action(engine, access.principal.username, f"pool.rollout_{past}", pool_id=pool_id, detail=detail)
    return _view(progress, settings, described.run_id)


COMMAND_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "no rollout of the pool has run"},
    409: {"description": "the rollout is not in a state that allows it"},
}


@router.post("/rollout/pause", response_model=RolloutView, responses=COMMAND_RESPONSES)
async def pause_rollout(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: Annotated[CommandBody | None, Body()] = None,
) -> RolloutView:
    """Stop sending desktops away (those leaving leave; the pool keeps filling)."""
    return await _command(pool_id, "pause", body, access, engine, temporal, settings)


@router.post("/rollout/resume", response_model=RolloutView, responses=COMMAND_RESPONSES)
async def resume_rollout(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: Annotated[CommandBody | None, Body()] = None,
) -> RolloutView:
    """Carry on after a pause: failures count afresh, a failed canary is tried again."""
    return await _command(pool_id, "resume", body, access, engine, temporal, settings)


@router.post("/rollout/cancel", response_model=RolloutView, responses=COMMAND_RESPONSES)
async def cancel_rollout(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: Annotated[CommandBody | None, Body()] = None,
) -> RolloutView:
    """End the rollout where it is; desktops not yet replaced keep their version."""
    return await _command(pool_id, "cancel", body, access, engine, temporal, settings)
