"""CapacityChangeWorkflow: one firing of a capacity rule, started by the rule's Temporal Schedule.

It applies the rule's sizing to the pool and audits it (actor `schedule:<rule>`). A workflow
cannot query or update another workflow, so the read of the pool's spec (its `status` query),
the check against every PoolSpec rule, the `update_spec` Update and the store's copy of the
spec are one activity (`CapacityActivities.apply_capacity`, retried on transient errors and
re-reading the spec each time). A sizing the pool's spec refuses fails this workflow visibly,
naming the rule and the field, and is not retried. A removed pool ends it quietly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities, RecordAuditEventInput
    from activities.capacity import CapacityActivities
    from workflows.capacity_rules import (
        CAPACITY_REFUSED,
        ApplyCapacityInput,
        CapacityChangeInput,
        CapacityChangeResult,
        capacity_schedule_id,
    )

APPLY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=[CAPACITY_REFUSED],
)
AUDIT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=20)


@workflow.defn
class CapacityChangeWorkflow:
    @workflow.run
    async def run(self, input: CapacityChangeInput) -> CapacityChangeResult:
        schedule_id = capacity_schedule_id(input.pool_id, input.rule)
        try:
            applied = await workflow.execute_activity_method(
                CapacityActivities.apply_capacity,
                ApplyCapacityInput(input.pool_id, input.rule, input.sizing, schedule_id),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=APPLY_RETRY,
            )
        except ActivityError as err:
            refused = err.cause
            if not (isinstance(refused, ApplicationError) and refused.type == CAPACITY_REFUSED):
                raise
            detail = {"rule": input.rule, "sizing": input.sizing.changes(), "error": refused.message}
            await self._audit(input, "pool.capacity_refused", detail)
            raise ApplicationError(refused.message, type=CAPACITY_REFUSED, non_retryable=True) from None
        result = CapacityChangeResult(input.pool_id, input.rule, applied.outcome, applied.before, applied.after)
        if applied.outcome == "pool_gone":
            workflow.logger.info("pool %s is gone: capacity rule %s removed", input.pool_id, input.rule)
            return result
        detail = {"rule": input.rule, "outcome": applied.outcome, "before": applied.before, "after": applied.after}
        await self._audit(input, "pool.capacity_changed", detail)
        return result

    async def _audit(self, input: CapacityChangeInput, action: str, detail: dict[str, Any]) -> None:
        await workflow.execute_activity_method(
            AuditActivities.record_audit_event,
            RecordAuditEventInput(
                # One event per run: a retried activity finds its key and stops.
                key=f"capacity/{workflow.info().run_id}",
                actor=f"schedule:{input.rule}",
                action=action,
                at=workflow.now(),
                pool_id=input.pool_id,
                detail=detail,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=AUDIT_RETRY,
        )
