"""Personal pools: an administrator assigns a desktop to a user (kept until unassigned)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from api.audit_log import record_action
from api.auth.deps import AccessDep, pool_target, require
from api.auth.roles import Action
from api.deps import EngineDep, TemporalDep
from api.pool_service import load_pool
from api.routers.claims import STATUS_CODES
from workflows.messages import AssignDesktopInput, ClaimOutcome, pool_workflow_id
from workflows.pool_workflow import PoolWorkflow

router = APIRouter(prefix="/pools/{pool_id}/assignments", tags=["assignments"])


class AssignmentBody(BaseModel):
    user: str = Field(min_length=1, max_length=256)
    desktop_id: str | None = Field(default=None, description="a given unassigned desktop; any when omitted")


@router.post("", response_model=ClaimOutcome, responses={409: {"model": ClaimOutcome}})
async def assign(
    pool_id: str,
    body: AssignmentBody,
    access: AccessDep,
    engine: EngineDep,
    temporal: TemporalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ClaimOutcome:
    """Assign a desktop of a personal pool (a pool administrator's job). Unassign with `POST /desktops/{id}/release`."""
    require(access, Action.MANAGE_USERS, pool_target(load_pool(engine, pool_id)))
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    request = AssignDesktopInput(
        user=body.user, request_id=idempotency_key or uuid.uuid4().hex, desktop_id=body.desktop_id
    )
    outcome: ClaimOutcome = await handle.execute_update(PoolWorkflow.assign_desktop, request)
    response.status_code = STATUS_CODES[outcome.status]
    detail = {"user": body.user, "status": outcome.status.value}
    record_action(engine, access.principal.username, "desktop.assigned_by_admin", pool_id=pool_id,
                  desktop_id=outcome.desktop_id, detail=detail)  # fmt: skip
    return outcome
