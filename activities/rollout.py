"""Activities of a template rollout: look at the pool, ask it to let old desktops go, clear the
read model of desktops that failed.

A workflow cannot query or update another workflow itself; these do it through the worker's
Temporal client. The pool decides (its `recycle` update); a rollout never touches a desktop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.store.models import AuditEvent, DesktopRecord
from workflows.messages import desktop_workflow_id, pool_workflow_id
from workflows.pool_workflow import PoolWorkflow
from workflows.rollout_messages import RecycleInput, RecycleResult, RolloutView, RolloutViewInput

RPC_TIMEOUT = timedelta(seconds=5)
# The pool workflow is gone (never started, or removed and closed): nothing to roll out.
POOL_GONE = "PoolGone"
# The pool refused the request (it is being removed).
REFUSED = "RecycleRefused"


@dataclass
class PoolViewRequest:
    pool_id: str
    view: RolloutViewInput


@dataclass
class PoolRecycleRequest:
    pool_id: str
    recycle: RecycleInput


@dataclass
class ClearFailedRequest:
    pool_id: str
    reason: str


@dataclass
class ClearFailedResult:
    cleared: list[str]


class RolloutActivities:
    def __init__(self, client: Client, engine: Engine) -> None:
        self._client = client
        self._engine = engine

    @activity.defn
    async def pool_rollout_view(self, request: PoolViewRequest) -> RolloutView:
        handle = self._client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(request.pool_id))
        try:
            view: RolloutView = await handle.query(PoolWorkflow.rollout_view, request.view, rpc_timeout=RPC_TIMEOUT)
        except RPCError as err:
            raise _gone_or_retry(request.pool_id, err) from None
        return view

    @activity.defn
    async def pool_recycle(self, request: PoolRecycleRequest) -> RecycleResult:
        handle = self._client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(request.pool_id))
        try:
            result: RecycleResult = await handle.execute_update(
                PoolWorkflow.recycle, request.recycle, rpc_timeout=RPC_TIMEOUT
            )
        except WorkflowUpdateFailedError as err:
            raise ApplicationError(f"the pool refused: {err.cause or err}", type=REFUSED, non_retryable=True) from None
        except RPCError as err:
            raise _gone_or_retry(request.pool_id, err) from None
        return result

    @activity.defn
    async def clear_failed_desktops(self, request: ClearFailedRequest) -> ClearFailedResult:
        """Desktops that failed have deleted their servers and left the pool (which replaced them);
        their rows stay `failed` in the read model, counted on the pool's page. Recreate clears
        them: each row whose desktop workflow has ended (its last projection written) becomes
        destroyed, audited once. One still running (deleting its server) is left alone."""
        failed = await asyncio.to_thread(self._failed_rows, request.pool_id)
        ended: list[str] = []
        for desktop_id in failed:
            handle = self._client.get_workflow_handle(desktop_workflow_id(desktop_id))
            try:
                described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
                ended.append(desktop_id)  # its history is gone with the retention period
                continue
            if described.status is not WorkflowExecutionStatus.RUNNING:
                ended.append(desktop_id)
        cleared = await asyncio.to_thread(self._clear, request, ended)
        return ClearFailedResult(cleared)

    def _failed_rows(self, pool_id: str) -> list[str]:
        with Session(self._engine) as session:
            query = select(DesktopRecord.id).where(DesktopRecord.pool_id == pool_id, DesktopRecord.state == "failed")
            return list(session.exec(query).all())

    def _clear(self, request: ClearFailedRequest, desktop_ids: list[str]) -> list[str]:
        cleared: list[str] = []
        now = datetime.now(UTC)
        for desktop_id in desktop_ids:
            with Session(self._engine) as session:
                row = session.get(DesktopRecord, desktop_id)
                if row is None or row.state != "failed":
                    continue
                # A newer sequence than the desktop's last projection: nothing can roll it back.
                row.state, row.sequence, row.updated_at = "destroyed", row.sequence + 1, now
                session.add(row)
                session.add(
                    AuditEvent(
                        key=f"desktop/{desktop_id}/cleared",
                        at=now,
                        actor="deskpool",
                        action="desktop.cleared",
                        pool_id=request.pool_id,
                        desktop_id=desktop_id,
                        detail={"state": "destroyed", "reason": request.reason},
                    )
                )
                session.commit()
                cleared.append(desktop_id)
        return cleared


def _gone_or_retry(pool_id: str, err: RPCError) -> Exception:
    if err.status is RPCStatusCode.NOT_FOUND:
        return ApplicationError(f"pool {pool_id} is gone: {err.message}", type=POOL_GONE, non_retryable=True)
    return err
