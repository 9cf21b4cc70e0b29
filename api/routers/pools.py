"""Pools: create (starts the pool workflow), read, list with live counts, edit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.store.models import PoolRecord
from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action, Target
from api.deps import DirectoryDep, EngineDep, SettingsDep, TemporalDep
from api.pool_service import change_spec, load_pool, show
from api.views import PoolView, desktop_counts, pool_view, slugify
from workflows import search_attributes as sa
from workflows.messages import pool_workflow_id
from workflows.pool_spec import PoolSpec, spec_from_json, spec_to_json
from workflows.pool_workflow import PoolWorkflow, PoolWorkflowInput
from workflows.reconcile_workflow import CloudReconcileWorkflow, ReconcileInput, reconcile_workflow_id

router = APIRouter(prefix="/pools", tags=["pools"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PoolView)
async def create_pool(
    spec: PoolSpec, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> PoolView:
    """Store the configuration, then start the pool's workflow (id `pool/<id>`)."""
    require(access, Action.CREATE_POOL, Target(cloud=spec.cloud, region=spec.region))
    with Session(engine) as session:
        clash = session.exec(select(PoolRecord).where(PoolRecord.project == spec.project, PoolRecord.name == spec.name))
        if clash.first() is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"name: a pool named {spec.name!r} exists in this project")
        pool_id, suffix = slugify(spec.name), 1
        while session.get(PoolRecord, pool_id) is not None:
            suffix += 1
            pool_id = f"{slugify(spec.name)}-{suffix}"
        record = PoolRecord(id=pool_id, name=spec.name, project=spec.project, spec=spec_to_json(spec))
        session.add(record)
        try:
            session.commit()
        except IntegrityError as err:
            raise HTTPException(status.HTTP_409_CONFLICT, "name: a pool with this name was just created") from err
        session.refresh(record)
    try:
        await temporal.start_workflow(
            PoolWorkflow.run,
            PoolWorkflowInput(pool_id=pool_id, spec=spec),
            id=pool_workflow_id(pool_id),
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.KIND, "pool"), SearchAttributePair(sa.POOL, pool_id)]
            ),
            static_summary=f"pool {spec.name} ({spec.assignment.value}, {spec.release.value})",
        )
        # Every cloud a pool uses gets its reconciler (orphan sweep, lost servers).
        await temporal.start_workflow(
            CloudReconcileWorkflow.run,
            ReconcileInput(spec.cloud, spec.region, settings.reconcile_interval_s, settings.orphan_grace_s),
            id=reconcile_workflow_id(spec.cloud, spec.region),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.KIND, "reconcile")]),
            static_summary=f"reconciler of cloud {spec.cloud} ({spec.region or 'default region'})",
        )
    except WorkflowAlreadyStartedError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, f"pool {pool_id} is already running") from err
    except Exception:
        with Session(engine) as session:  # no configuration without its workflow
            doomed = session.get(PoolRecord, pool_id)
            if doomed is not None:
                session.delete(doomed)
                session.commit()
        raise
    record_action(engine, access.principal.username, "pool.created", pool_id=pool_id, detail={"name": spec.name})
    return show(engine, settings, record)


@router.get("", response_model=list[PoolView])
def list_pools(
    access: AccessDep,
    engine: EngineDep,
    settings: SettingsDep,
    project: Annotated[str | None, Query(max_length=64)] = None,
) -> list[PoolView]:
    """The pools the caller administers (users see theirs under GET /me/desktops)."""
    with Session(engine) as session:
        query = select(PoolRecord).order_by(PoolRecord.name)
        if project is not None:
            query = query.where(PoolRecord.project == project)
        records = [r for r in session.exec(query) if access.permits(Action.VIEW_POOL, pool_target(r))]
    counts = desktop_counts(engine, [r.id for r in records])
    return [pool_view(r, counts[r.id], settings.temporal_ui_url, settings.temporal_namespace) for r in records]


@router.get("/{pool_id}", response_model=PoolView)
def get_pool(pool_id: str, access: AccessDep, engine: EngineDep, settings: SettingsDep) -> PoolView:
    record = load_pool(engine, pool_id)
    require(access, Action.VIEW_POOL, pool_target(record))
    return show(engine, settings, record)


class EntitlementSourceView(BaseModel):
    kind: str
    name: str
    user_count: int
    problem: str | None


class EntitlementView(BaseModel):
    total: int = Field(description="de-duplicated users entitled to the pool")
    sources: list[EntitlementSourceView]
    usernames: list[str] = Field(description="the first `limit` entitled users, sorted")


@router.get("/{pool_id}/entitlement", response_model=EntitlementView)
async def pool_entitlement(
    pool_id: str,
    access: AccessDep,
    engine: EngineDep,
    directory: DirectoryDep,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
) -> EntitlementView:
    """The pool's users, groups and units resolved into one de-duplicated user set."""
    record = load_pool(engine, pool_id)
    require(access, Action.MANAGE_USERS, pool_target(record))
    spec = spec_from_json(record.spec)
    return await entitlement_view(directory, spec, limit)


async def entitlement_view(directory: DirectoryDep, spec: PoolSpec, limit: int = 100) -> EntitlementView:
    result = await directory.resolve_entitlement(spec.entitlement)
    return EntitlementView(
        total=result.total,
        sources=[
            EntitlementSourceView(kind=s.kind.value, name=s.name, user_count=s.user_count, problem=s.problem)
            for s in result.sources
        ],
        usernames=list(result.usernames[:limit]),
    )


@router.put("/{pool_id}", response_model=PoolView)
async def edit_pool(
    pool_id: str, spec: PoolSpec, access: AccessDep, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> PoolView:
    """Edits affect only new desktops; a template change makes a new template version."""
    require(access, Action.EDIT_POOL, pool_target(load_pool(engine, pool_id)))
    # Moving a pool to another cloud must be allowed there too.
    require(access, Action.EDIT_POOL, Target(pool_id, spec.cloud, spec.region))
    record = await change_spec(engine, temporal, pool_id, spec)
    record_action(engine, access.principal.username, "pool.edited", pool_id=pool_id, detail={"name": spec.name})
    return show(engine, settings, record)
