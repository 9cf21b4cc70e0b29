"""Activities of the cloud reconciler: what the cloud holds, what the desktops say.

Liveness is taken from the desktop workflows themselves (visibility to find
them, a query to read them), never from the read model: deleting a server
is only ever decided on authoritative state, and re-checked just before.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.cloud import DriverFactory
from activities.cloud_driver import DESKPOOL_TAG
from activities.cloud_errors import call
from activities.store.models import AuditEvent
from workflows.activity_io import (
    CloudScope,
    DeleteOrphanInput,
    DeleteOrphanResult,
    ListTaggedServersResult,
    LiveDesktopInfo,
    SurveyDesktopsResult,
    TaggedServerInfo,
)
from workflows.desktop_workflow import DesktopWorkflow
from workflows.messages import DesktopStatusInput, DesktopStatusResult, desktop_workflow_id

QUERY_CONCURRENCY = 20
QUERY_TIMEOUT = timedelta(seconds=10)


class ReconcileActivities:
    def __init__(self, client: Client, drivers: DriverFactory, engine: Engine) -> None:
        self._client = client
        self._drivers = drivers
        self._engine = engine

    @activity.defn
    def list_tagged_servers(self, scope: CloudScope) -> ListTaggedServersResult:
        driver = self._drivers(scope.cloud, scope.region, None)
        servers = call(driver.list_tagged)
        return ListTaggedServersResult(
            [
                TaggedServerInfo(
                    s.id, s.name, s.status, (s.metadata or {}).get("deskpool_desktop"), s.image_id, s.flavor_name
                )
                for s in servers
            ]
        )

    @activity.defn
    async def survey_desktops(self, scope: CloudScope) -> SurveyDesktopsResult:
        """Every running desktop workflow of this cloud, read through its status query."""
        # Desktops served by the reconciler's own task queue (its deployment).
        task_queue = activity.info().task_queue
        query = f"DeskpoolKind = 'desktop' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
        ids = [w.id async for w in self._client.list_workflows(query)]
        limit = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def read(workflow_id: str) -> DesktopStatusResult | None:
            async with limit:
                handle = self._client.get_workflow_handle_for(DesktopWorkflow.run, workflow_id)
                try:
                    return await handle.query(DesktopWorkflow.status, DesktopStatusInput(), rpc_timeout=QUERY_TIMEOUT)
                except RPCError:
                    # Finished since the listing, or not answering: not judged this sweep.
                    # (Orphan deletion re-checks by describe, so silence never deletes.)
                    return None

        statuses = await asyncio.gather(*(read(i) for i in ids))
        activity.heartbeat(len(ids))
        images: dict[str, str | None] = {}
        driver = self._drivers(scope.cloud, scope.region, None)
        live: list[LiveDesktopInfo] = []
        for status in statuses:
            if status is None or status.cloud != scope.cloud or status.region != scope.region:
                continue
            if status.image not in images:
                images[status.image] = await asyncio.to_thread(call, lambda i=status.image: driver.image_id(i))
            live.append(
                LiveDesktopInfo(
                    status.desktop_id,
                    status.snapshot.server_id,
                    status.snapshot.status.value,
                    images[status.image],
                    status.flavor,
                )
            )
        return SurveyDesktopsResult(live)

    @activity.defn
    async def delete_orphan(self, orphan: DeleteOrphanInput) -> DeleteOrphanResult:
        """Re-check that no running desktop owns the server and that it is still tagged as
        deskpool's, delete it, audit it. A desktop detached on its pool's removal ends right
        after its server lost the tag: a sweep that listed it before may judge it now."""
        if orphan.desktop_id and await self._desktop_running(orphan.desktop_id):
            return DeleteOrphanResult(deleted=False, reason="its desktop is running after all")
        driver = self._drivers(orphan.scope.cloud, orphan.scope.region, None)
        current = await asyncio.to_thread(call, lambda: driver.get(orphan.server_id))
        if current is None:
            return DeleteOrphanResult(deleted=False, reason="already gone")
        if DESKPOOL_TAG not in current.tags:
            return DeleteOrphanResult(deleted=False, reason="no longer tagged as deskpool's: detached")
        await asyncio.to_thread(call, lambda: driver.delete(orphan.server_id))
        await asyncio.to_thread(self._audit, orphan)
        return DeleteOrphanResult(deleted=True)

    async def _desktop_running(self, desktop_id: str) -> bool:
        handle = self._client.get_workflow_handle(desktop_workflow_id(desktop_id))
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status is WorkflowExecutionStatus.RUNNING

    def _audit(self, orphan: DeleteOrphanInput) -> None:
        with Session(self._engine) as session:
            session.add(
                AuditEvent(
                    key=f"orphan/{orphan.scope.cloud}/{orphan.server_id}",
                    at=orphan.at,
                    actor="reconciler",
                    action="server.orphan_deleted",
                    desktop_id=orphan.desktop_id,
                    detail={"server_id": orphan.server_id, "name": orphan.name, "cloud": orphan.scope.cloud},
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a retry after the first write
