"""What several routers do to a pool: load it, change its spec through its workflow, show it."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from activities.store.models import PoolRecord
from api.settings import ApiSettings
from api.views import PoolView, desktop_counts, pool_view
from workflows.messages import UpdateSpecInput, pool_workflow_id
from workflows.pool_spec import PoolSpec, spec_from_json, spec_to_json
from workflows.pool_workflow import PoolWorkflow


def load_pool(engine: Engine, pool_id: str) -> PoolRecord:
    with Session(engine) as session:
        record = session.get(PoolRecord, pool_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"pool {pool_id} not found")
    return record


async def change_spec(engine: Engine, temporal: Client, pool_id: str, spec: PoolSpec) -> PoolRecord:
    """The workflow takes the change first (it validates against live state); the store follows.

    Delete protection also blocks template changes until it is lifted (an edit that only lifts
    it is fine; a template change in the same edit is not)."""
    current = spec_from_json(load_pool(engine, pool_id).spec)
    if current.delete_protection and spec.template != current.template:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "delete_protection: the pool is protected; lift delete protection before changing its template",
        )
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    result = await handle.execute_update(PoolWorkflow.update_spec, UpdateSpecInput(spec))
    with Session(engine) as session:
        record = session.get(PoolRecord, pool_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"pool {pool_id} not found")
        record.spec, record.template_version, record.enabled = spec_to_json(spec), result.template_version, spec.enabled
        session.add(record)
        session.commit()
        session.refresh(record)
    return record


def show(engine: Engine, settings: ApiSettings, record: PoolRecord) -> PoolView:
    counts = desktop_counts(engine, [record.id])[record.id]
    return pool_view(record, counts, settings.temporal_ui_url, settings.temporal_namespace)
