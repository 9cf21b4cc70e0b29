"""A pool's cloud project: an existing one, or one created as "<pool name>-<8 random chars>"."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from tests.engine import counts, engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.messages import PoolStatusInput
from workflows.pool_workflow import PoolWorkflow


async def test_auto_created_project_is_made_once_and_holds_the_desktops(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(name="Call centre", auto_create_project=True))
        await eventually(lambda: counts(pool), lambda c: c.ready == 2)
    assert len(cloud.projects) == 1
    ((name, project_id),) = cloud.projects.items()
    assert re.fullmatch(r"Call centre-[a-z0-9]{8}", name)
    assert set(cloud.server_projects.values()) == {project_id}  # every desktop in the pool's project


async def test_missing_project_is_a_visible_fault_not_a_crash_and_heals(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud()
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(cloud_project="contractors"), fault_retry_s=1.0)
        status = await eventually(
            lambda: pool.query(PoolWorkflow.status, PoolStatusInput()), lambda s: bool(s.restrained_reason)
        )
        assert "project 'contractors' not found" in status.restrained_reason
        assert cloud.created == 0 and status.counts.live == 0
        cloud.projects["contractors"] = "proj-contractors"
        healed = await eventually(lambda: counts(pool), lambda c: c.ready == 2)  # it retries by itself
    assert healed.ready == 2
    assert set(cloud.server_projects.values()) == {"proj-contractors"}


def test_project_sources_are_exclusive() -> None:
    with pytest.raises(ValidationError) as caught:
        spec(cloud_project="existing", auto_create_project=True)
    assert caught.value.errors()[0]["loc"] == ("auto_create_project",)
