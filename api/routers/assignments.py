"""Personal pools: an administrator assigns a desktop to a user (kept until unassigned)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from api.deps import TemporalDep
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
    temporal: TemporalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ClaimOutcome:
    """Assign a desktop of a personal pool. Unassign with `POST /desktops/{id}/release`."""
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    request = AssignDesktopInput(
        user=body.user, request_id=idempotency_key or uuid.uuid4().hex, desktop_id=body.desktop_id
    )
    outcome: ClaimOutcome = await handle.execute_update(PoolWorkflow.assign_desktop, request)
    response.status_code = STATUS_CODES[outcome.status]
    return outcome
