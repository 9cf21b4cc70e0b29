"""Fixtures of the workflow tests (the shared servers come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.workflows.support import Rig, register_search_attributes, rig


@pytest_asyncio.fixture(scope="session")
async def timer_env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The shared time-skipping server with deskpool's search attributes declared.

    Without them the test server fails every desktop workflow task that upserts
    DeskpoolState/DeskpoolUser, and the desktop never leaves provisioning.
    """
    await register_search_attributes(time_skipping_env.client)
    return time_skipping_env


@pytest_asyncio.fixture
async def timer_rig(timer_env: WorkflowEnvironment, task_queue: str, sqlite_url: str) -> AsyncIterator[Rig]:
    async with rig(timer_env.client, task_queue, sqlite_url) as the_rig:
        yield the_rig
