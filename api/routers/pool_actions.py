"""What administrators do to a pool besides editing it: enable/disable, increase, entitlement, removal."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, func, select

from activities.capacity import forget_pool_rules
from activities.store.models import DesktopRecord
from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action
from api.deps import DirectoryDep, EngineDep, SettingsDep, TemporalDep
from api.pool_service import change_spec, load_pool, show
from api.routers.pools import EntitlementView, entitlement_view
from api.views import LIVE_STATES, PoolView
from workflows.messages import PoolStatusInput, RemovePoolInput, pool_workflow_id
from workflows.pool_spec import Entitlement, PoolSpec, spec_from_json
from workflows.pool_workflow import PoolWorkflow

router = APIRouter(prefix="/pools/{pool_id}", tags=["pools"])


async def _set_enabled(
    pool_id: str, enabled: bool, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> None:
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    spec = dataclasses.replace(spec_from_json(record.spec), enabled=enabled)
    await change_spec(engine, temporal, pool_id, spec)
    action = "pool.enabled" if enabled else "pool.disabled"
    record_action(engine, access.principal.username, action, pool_id=pool_id)


@router.post("/enable", response_model=PoolView)
async def enable_pool(
    pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> PoolView:
    """Take claims again."""
    await _set_enabled(pool_id, True, access, engine, temporal)
    return show(engine, settings, load_pool(engine, pool_id))


@router.post("/disable", response_model=PoolView)
async def disable_pool(
    pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> PoolView:
    """Drain: no new claims; sessions in progress are not touched."""
    await _set_enabled(pool_id, False, access, engine, temporal)
    return show(engine, settings, load_pool(engine, pool_id))


class IncreaseBody(BaseModel):
    by: int = Field(ge=1, le=100_000, description="how many desktops to add to the pool's maximum")


@router.post("/increase", response_model=PoolView)
async def increase_pool(
    pool_id: str,
    body: IncreaseBody,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> PoolView:
    """oVirt's "increase number of VMs in pool by": raises the pool's maximum (within its ceiling)."""
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    current = spec_from_json(record.spec)
    try:
        spec = dataclasses.replace(current, max_desktops=current.max_desktops + body.by)
    except ValidationError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"by: {_first_message(err)}") from None
    updated = await change_spec(engine, temporal, pool_id, spec)
    record_action(engine, access.principal.username, "pool.increased", pool_id=pool_id, detail={"by": body.by})
    return show(engine, settings, updated)


def _first_message(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


@router.put("/entitlement", response_model=EntitlementView)
async def set_entitlement(
    pool_id: str,
    body: Entitlement,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    directory: DirectoryDep,
) -> EntitlementView:
    """Assign and remove the pool's users, groups and organisational units."""
    record = load_pool(engine, pool_id)
    require(access, Action.MANAGE_USERS, pool_target(record))
    spec = dataclasses.replace(spec_from_json(record.spec), entitlement=body)
    await change_spec(engine, temporal, pool_id, spec)
    detail = {"users": body.users, "groups": body.groups, "org_units": body.org_units}
    record_action(engine, access.principal.username, "pool.entitlement_set", pool_id=pool_id, detail=detail)
    return await entitlement_view(directory, spec)


class RemovalView(BaseModel):
    status: str
    live_desktops: int


@router.delete(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RemovalView,
    responses={409: {"description": "delete protection, or live desktops and desktops=none"}},
)
async def remove_pool(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    desktops: Annotated[Literal["none", "destroy", "detach"], Query()] = "none",
) -> RemovalView:
    """Remove the pool. Its desktops must be destroyed or detached first (oVirt seed): say which with
    `desktops=destroy` (sessions end, servers deleted) or `desktops=detach` (servers kept as independent
    servers). Refused while the pool has delete protection."""
    record = load_pool(engine, pool_id)
    require(access, Action.DELETE_POOL, pool_target(record))
    spec: PoolSpec = spec_from_json(record.spec)
    if spec.delete_protection:
        raise HTTPException(status.HTTP_409_CONFLICT, "delete_protection: the pool is protected; edit it off first")
    live = _live_desktops(engine, pool_id)
    if live and desktops == "none":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"desktops: the pool has {live} live desktops; destroy or detach them (desktops=destroy|detach)",
        )
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    result = await handle.execute_update(
        PoolWorkflow.remove_pool, RemovePoolInput(desktops=desktops, reason=f"removed by {access.principal.username}")
    )
    # Its capacity schedules go with it: a new pool of the same name (same id) must not inherit them.
    forgotten = await forget_pool_rules(temporal, engine, pool_id)
    detail = {"desktops": desktops, "capacity_rules_removed": forgotten}
    record_action(engine, access.principal.username, "pool.removing", pool_id=pool_id, detail=detail)
    return RemovalView(status="removing", live_desktops=result.live_desktops)


def _live_desktops(engine: EngineDep, pool_id: str) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(DesktopRecord.pool_id == pool_id, col(DesktopRecord.state).in_(LIVE_STATES))
        return int(session.exec(query).one())


class ShrinkBody(BaseModel):
    by: int = Field(ge=1, le=100_000, description="how many desktops to take off the pool's maximum")


@router.post(
    "/shrink",
    response_model=PoolView,
    responses={409: {"description": "the new maximum would be below the desktops in use"}},
)
async def shrink_pool(
    pool_id: str,
    body: ShrinkBody,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> PoolView:
    """Lower the pool's maximum by n. Idle desktops leave (powered-off, then older template, then highest
    number first); an assigned desktop is never taken away, so the maximum never goes below the desktops
    in use (assigned, or awaiting return): 409 naming `by` otherwise; 422 when the sizing rules forbid it."""
    record = load_pool(engine, pool_id)
    require(access, Action.EDIT_POOL, pool_target(record))
    current = spec_from_json(record.spec)
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    counts = (await handle.query(PoolWorkflow.status, PoolStatusInput())).counts
    held = counts.assigned + counts.awaiting_return
    if current.max_desktops - body.by < held:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"by: {held} desktops of the pool are in use (assigned or awaiting return) and are never taken away; "
            f"the maximum ({current.max_desktops}) can go down by at most {max(0, current.max_desktops - held)}",
        )
    try:
        spec = dataclasses.replace(current, max_desktops=current.max_desktops - body.by)
    except ValidationError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"by: {_first_message(err)}") from None
    updated = await change_spec(engine, temporal, pool_id, spec)
    record_action(engine, access.principal.username, "pool.shrunk", pool_id=pool_id, detail={"by": body.by})
    return show(engine, settings, updated)
