"""The pool's read model: its summary projected into the store, shared by PoolWorkflow.

Projections are activities the loop never awaits (a database that is down must
not stop a pool), at most one in flight and one a second while the summary
changes: regular activities, so their results land at recorded points (local
activities did not replay reliably around the loop's wake, see _project). The
one exception is the last: a removed pool awaits its row's deletion (a local
activity, awaited) before it ends, so the row never outlives the workflow.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.activity_io import ProjectPoolInput
from workflows.pool_spec import spec_to_json
from workflows.pool_state import PoolBook

with workflow.unsafe.imports_passed_through():
    from activities.projection import ProjectionActivities

PROJECTION_INTERVAL = timedelta(seconds=1)
PATCH_PROJECT_WITH_ACTIVITY = "pool-projects-with-a-regular-activity"
PROJECTION_TIMEOUT = timedelta(seconds=10)
PROJECTION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


class PoolReadModel:
    # Set by PoolWorkflow.__init__.
    book: PoolBook
    wake: bool
    projected: tuple[Any, ...] | None
    projected_at: datetime | None
    # The one pool projection in flight, if any (never awaited by the loop).
    projecting: Any

    def _summary(self) -> tuple[Any, ...]:
        state, counts = self.book.state, self.book.counts()
        return (state.template_version, state.spec, len(state.queue), state.restrained_reason,
                dataclasses.astuple(counts))  # fmt: skip

    def _project(self, now: datetime) -> None:
        """Push the pool's summary to the store, at most once a second while it changes.

        In the background: a read model that is down must not stop the pool;
        when the write lands, the loop wakes and projects anything newer.
        """
        summary = self._summary()
        if summary == self.projected or (self.projecting is not None and not self.projecting.done()):
            return
        if self.projected_at is not None and now - self.projected_at < PROJECTION_INTERVAL:
            return  # _sleep_for wakes us when the interval is over
        self.projected, self.projected_at = summary, now
        if workflow.patched(PATCH_PROJECT_WITH_ACTIVITY):
            # A regular activity: its result is an event in the history, so the wake below comes
            # at the same point on replay. A local activity's result did not always (a replay
            # took another turn of the loop: docs/reliability.md, finding 5), and its retries held
            # the workflow task while the read model was down (finding 4).
            self.projecting = workflow.start_activity_method(
                ProjectionActivities.project_pool,
                self._pool_projection(now),
                start_to_close_timeout=PROJECTION_TIMEOUT,
                retry_policy=PROJECTION_RETRY,
            )
        else:
            self.projecting = workflow.start_local_activity_method(
                ProjectionActivities.project_pool,
                self._pool_projection(now),
                start_to_close_timeout=PROJECTION_TIMEOUT,
                retry_policy=PROJECTION_RETRY,
            )
        self.projecting.add_done_callback(lambda _: self._wake())

    async def _project_removed(self) -> None:
        """The removed pool's row deleted (its audit events stay); awaited, after any projection in flight."""
        await workflow.execute_local_activity_method(
            ProjectionActivities.project_pool,
            self._pool_projection(workflow.now(), removed=True),
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
        )

    def _pool_projection(self, now: datetime, removed: bool = False) -> ProjectPoolInput:
        state, spec = self.book.state, self.book.state.spec
        removal = state.removal
        return ProjectPoolInput(
            pool_id=state.pool_id,
            name=spec.name,
            project=spec.project,
            spec=spec_to_json(spec),
            template_version=state.template_version,
            enabled=spec.enabled,
            waiting=len(state.queue),
            restrained_reason=state.restrained_reason,
            at=now,
            counts={k: v for k, v in dataclasses.asdict(self.book.counts()).items()},
            removed=removed,
            removal_mode=removal.mode.value if removal else "",
            removal_reason=removal.reason if removal else "",
        )

    def _wake(self) -> None:
        self.wake = True
