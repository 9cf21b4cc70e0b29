"""Day-2 operations on a pool's desktops at once: release every disconnected desktop now."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.store.models import DesktopRecord
from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action
from api.deps import EngineDep, TemporalDep
from api.pool_service import load_pool
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import DesktopStatus, ReleaseInput, desktop_workflow_id

router = APIRouter(prefix="/pools/{pool_id}", tags=["pools"])

# Releases sent at once; each is one small Update on its own desktop workflow.
RELEASES_IN_FLIGHT = 16


class ReleasedView(BaseModel):
    released: list[str] = Field(description="desktops released now (destroyed, reverted or held for return)")
    skipped: dict[str, str] = Field(
        default_factory=dict, description="desktops not released, and why (their user came back meanwhile...)"
    )


@router.post("/release-disconnected", response_model=ReleasedView)
async def release_disconnected(
    pool_id: str, access: AccessDep, engine: EngineDep, temporal: TemporalDep
) -> ReleasedView:
    """Immediate release: every disconnected desktop of the pool is given back now, without waiting
    out the retention buffer. A desktop whose user reconnected meanwhile is left alone (skipped)."""
    record = load_pool(engine, pool_id)
    require(access, Action.OPERATE_DESKTOPS, pool_target(record))
    with Session(engine) as session:
        query = select(DesktopRecord.id).where(
            DesktopRecord.pool_id == pool_id, DesktopRecord.state == DesktopStatus.DISCONNECTED.value
        )
        desktop_ids = sorted(session.exec(query).all())
    who = access.principal.username
    lane = asyncio.Semaphore(RELEASES_IN_FLIGHT)

    async def release(desktop_id: str) -> str | None:
        async with lane:
            return await _release_if_disconnected(temporal, desktop_id, f"immediate release by {who}")

    refusals = await asyncio.gather(*(release(d) for d in desktop_ids))
    released = [d for d, refusal in zip(desktop_ids, refusals, strict=True) if refusal is None]
    skipped = {d: refusal for d, refusal in zip(desktop_ids, refusals, strict=True) if refusal is not None}
    record_action(engine, who, "pool.released_disconnected", pool_id=pool_id,
                  detail={"released": released, "skipped": sorted(skipped)})  # fmt: skip
    return ReleasedView(released=released, skipped=skipped)


async def _release_if_disconnected(temporal: Client, desktop_id: str, reason: str) -> str | None:
    """None once released; else why not. The desktop's workflow decides: it is the authority on
    whether the desktop is still disconnected (the read model may lag)."""
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop_id))
    request = ReleaseInput(reason=reason, immediate=True, only_if_disconnected=True)
    try:
        await handle.execute_update(DesktopWorkflow.release, request)
    except WorkflowUpdateFailedError as err:
        return str(err.cause or err)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        return "its workflow has ended"
    return None
