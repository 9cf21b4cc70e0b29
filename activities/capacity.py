"""The side effects of scheduled capacity: apply a rule's sizing to a pool, forget a removed pool's rules.

A workflow cannot query or update another workflow, so CapacityChangeWorkflow does it here: read
the pool's spec from its `status` query, apply the sizing (every PoolSpec rule checked), send the
`update_spec` Update and keep the store's copy of the spec in step, as the API's change_spec does.
A retry reads the spec afresh, so an edit made meanwhile is never overwritten with a stale copy.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.store.models import CapacityRuleRecord, PoolRecord
from workflows.capacity_rules import (
    CAPACITY_REFUSED,
    ApplyCapacityInput,
    ApplyCapacityResult,
    SizingRefused,
    apply_sizing,
    capacity_schedule_id,
    rule_slug,
    sizing_of,
)
from workflows.messages import PoolStatusInput, PoolStatusResult, UpdateSpecInput, pool_workflow_id
from workflows.pool_spec import PoolSpec, spec_to_json
from workflows.pool_workflow import PoolWorkflow


class CapacityActivities:
    def __init__(self, client: Client, engine: Engine) -> None:
        self._client = client
        self._engine = engine

    @activity.defn
    async def apply_capacity(self, input: ApplyCapacityInput) -> ApplyCapacityResult:
        """The rule's sizing on the pool's current spec, through the pool's workflow, then the store.

        Raises a non-retryable ApplicationError (type CapacityRefused, naming the rule and the
        field) when the resulting spec breaks a PoolSpec rule; answers "pool_gone" (and removes
        the rule's schedule and stored row) once the pool is removed or being removed."""
        handle = self._client.get_workflow_handle_for(PoolWorkflow.run, pool_workflow_id(input.pool_id))
        status = await self._status(handle, input.pool_id)
        if status is None or status.removal:
            await forget_rule(self._client, self._engine, input.pool_id, input.rule, input.schedule_id)
            return ApplyCapacityResult("pool_gone")
        try:
            spec = apply_sizing(status.spec, input.sizing, rule=input.rule, pool_id=input.pool_id)
        except SizingRefused as err:
            raise ApplicationError(str(err), err.field, type=CAPACITY_REFUSED, non_retryable=True) from None
        template_version = status.template_version
        outcome = "unchanged" if spec == status.spec else "applied"
        if outcome == "applied":
            try:
                result = await handle.execute_update(PoolWorkflow.update_spec, UpdateSpecInput(spec))
            except WorkflowUpdateFailedError as err:
                # The pool's validator refused: it began its removal after our read. The next try sees it.
                raise ApplicationError(f"pool {input.pool_id} refused the change: {err.cause or err}") from err
            template_version = result.template_version
        await asyncio.to_thread(self._store_spec, input.pool_id, spec, template_version)
        return ApplyCapacityResult(outcome, sizing_of(status.spec), sizing_of(spec), template_version)

    async def _status(self, handle: WorkflowHandle[PoolWorkflow, object], pool_id: str) -> PoolStatusResult | None:
        """The running pool's status; None once the pool is removed (no stored pool, no running workflow)."""
        try:
            described = await handle.describe()
            running = described.status is WorkflowExecutionStatus.RUNNING
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            running = False
        if running:
            return await handle.query(PoolWorkflow.status, PoolStatusInput())
        if await asyncio.to_thread(self._pool_stored, pool_id):
            # Stored but not running: being created, or its workflow ended abnormally. Not ours to judge.
            raise ApplicationError(f"pool {pool_id} has no running workflow")
        return None

    def _pool_stored(self, pool_id: str) -> bool:
        with Session(self._engine) as session:
            return session.get(PoolRecord, pool_id) is not None

    def _store_spec(self, pool_id: str, spec: PoolSpec, template_version: int) -> None:
        """The store's copy of the spec, as api/pool_service.change_spec keeps it."""
        with Session(self._engine) as session:
            record = session.get(PoolRecord, pool_id)
            if record is None:
                return  # removed meanwhile
            record.spec, record.template_version, record.enabled = spec_to_json(spec), template_version, spec.enabled
            session.add(record)
            session.commit()


async def forget_rule(client: Client, engine: Engine, pool_id: str, rule: str, schedule_id: str) -> None:
    """A rule gone: its Temporal Schedule deleted (already gone is fine), then its stored row."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    await asyncio.to_thread(_delete_rows, engine, pool_id, rule_slug(rule))


async def forget_pool_rules(client: Client, engine: Engine, pool_id: str) -> int:
    """Every capacity rule of a pool gone (its removal): their schedules, then their rows. How many."""
    rows = await asyncio.to_thread(_rules_of, engine, pool_id)
    for row in rows:
        await forget_rule(client, engine, pool_id, row.name, capacity_schedule_id(pool_id, row.name))
    return len(rows)


def _rules_of(engine: Engine, pool_id: str) -> list[CapacityRuleRecord]:
    with Session(engine) as session:
        return list(session.exec(select(CapacityRuleRecord).where(CapacityRuleRecord.pool_id == pool_id)).all())


def _delete_rows(engine: Engine, pool_id: str, slug: str) -> None:
    with Session(engine) as session:
        row = session.get(CapacityRuleRecord, (pool_id, slug))
        if row is not None:
            session.delete(row)
            session.commit()
