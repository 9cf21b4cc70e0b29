"""Who may see or touch a desktop: its own user, or an administrator of its pool. Anyone else gets 404."""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException, status
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.store.models import DesktopRecord, PoolRecord
from api.auth.deps import pool_target
from api.auth.roles import Access, Action, Target
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import (
    DesktopHolderInput,
    ReleaseInput,
    ReleaseResult,
    desktop_workflow_id,
    pool_workflow_id,
)
from workflows.pool_workflow import PoolWorkflow

# How long a Release may wait for the desktop to take an assignment its pool already gave.
OVERTAKE_WAIT_S = 10.0


def desktop_for(access: Access, engine: Engine, desktop_id: str, *, owner_may: bool = True) -> DesktopRecord:
    """The desktop if the caller may act on it. Another user's desktop is answered 404, as if it
    did not exist, so desktop ids cannot be probed; an owner asking for an administrator's
    action gets 403."""
    with Session(engine) as session:
        row = session.get(DesktopRecord, desktop_id)
        # Desktop ids are "<pool>.<number>": an administrator can act on a desktop the read
        # model has not caught up with yet (just claimed); its workflow is the authority.
        pool_id = row.pool_id if row is not None else desktop_id.rpartition(".")[0]
        pool = session.get(PoolRecord, pool_id) if pool_id else None
    if row is None:
        if pool is not None and access.permits(Action.OPERATE_DESKTOPS, pool_target(pool)):
            return DesktopRecord(id=desktop_id, pool_id=pool.id, name=desktop_id, state="unknown")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"desktop {desktop_id} not found")
    target = pool_target(pool) if pool is not None else Target(pool_id=row.pool_id)
    if access.permits(Action.OPERATE_DESKTOPS, target):
        return row
    if row.user is not None and row.user == access.principal.username:
        if owner_may:
            return row
        raise HTTPException(status.HTTP_403_FORBIDDEN, "forbidden: this is for the pool's administrators")
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"desktop {desktop_id} not found")


async def holder_in_pool(temporal: Client, pool_id: str, desktop_id: str) -> str | None:
    """Who the pool has given the desktop to: the authority while the read model (and the
    desktop itself) may still lag a just-made claim."""
    handle = temporal.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(pool_id))
    try:
        result = await handle.query(PoolWorkflow.desktop_holder, DesktopHolderInput(desktop_id))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None  # no such pool: nobody holds the desktop
        # A busy pool that cannot answer in time is not a "no": the caller gets 503 and retries
        # (a 404 here told a user under a login storm that their own desktop did not exist).
        raise
    return result.user


async def desktop_of_caller(access: Access, engine: Engine, temporal: Client, desktop_id: str) -> DesktopRecord:
    """`desktop_for`, and for a user whose claim the read model has not shown yet, the pool's word."""
    try:
        return desktop_for(access, engine, desktop_id)
    except HTTPException as refusal:
        pool_id = desktop_id.rpartition(".")[0]
        user = access.principal.username
        if refusal.status_code != status.HTTP_404_NOT_FOUND or not pool_id:
            raise
        if await holder_in_pool(temporal, pool_id, desktop_id) != user:
            raise
        return DesktopRecord(id=desktop_id, pool_id=pool_id, name=desktop_id, state="assigned", user=user)


async def release_when_taken(temporal: Client, desktop: DesktopRecord, request: ReleaseInput) -> ReleaseResult:
    """The desktop's release Update. The pool answers a claim before its assignment signal
    reaches the desktop, so a Release sent at once may find the desktop still idle: while
    the pool says its user holds it, try again until the desktop has taken the assignment."""
    handle = temporal.get_workflow_handle_for(DesktopWorkflow.run, desktop_workflow_id(desktop.id))
    deadline = time.monotonic() + OVERTAKE_WAIT_S
    while True:
        try:
            result: ReleaseResult = await handle.execute_update(DesktopWorkflow.release, request)
            return result
        except WorkflowUpdateFailedError:
            # The read model may not show the holder yet either (an administrator releasing a
            # desktop claimed a moment ago): the pool says whether it has been given away.
            if time.monotonic() > deadline or not await holder_in_pool(temporal, desktop.pool_id, desktop.id):
                raise
            await asyncio.sleep(0.05)
