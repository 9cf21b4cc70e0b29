"""The API in-process over the real engine (dev server, worker, fake cloud), with a small built-in
directory: root (super user by configuration), padmin, cadmin, alice and carol (group callcentre), bob."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from activities.directory import DirectorySettings
from api.settings import ApiSettings
from tests.api_client import api_client, as_user
from tests.engine import engine_worker
from tests.fakes import FakeCloud

AGENT_KEY = b"engine-api-agent-key"
PEOPLE = ["root", "padmin", "cadmin", "alice", "bob", "carol"]


def directory_file(path: Path) -> Path:
    data = {"users": {u: {} for u in PEOPLE}, "groups": {"callcentre": {"users": ["alice", "carol"]}}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def fake_cloud() -> FakeCloud:
    """The cloud behind `api`: a test that asks for both may hold or fail builds."""
    return FakeCloud()


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, tmp_path: Path, fake_cloud: FakeCloud
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        database_url=sqlite_url,
        directory=DirectorySettings(backend="builtin", builtin_file=directory_file(tmp_path / "dir.yaml")),
        super_users=["root"],
        secret_key=AGENT_KEY.decode(),  # type: ignore[arg-type]
    )
    async with engine_worker(dev_env.client, task_queue, sqlite_url, fake_cloud), api_client(settings) as (_, client):
        yield client


def who(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    return as_user(api, name, ("callcentre",) if name in ("alice", "carol") else ())


async def until(api: httpx.AsyncClient, path: str, accept: Any, headers: dict[str, str]) -> Any:
    """Poll until `accept(body)`; a body without the expected keys (a 404 while the read model
    catches up) counts as not yet."""

    def accepted(body: Any) -> bool:
        try:
            return bool(accept(body))
        except (KeyError, IndexError, TypeError):
            return False

    deadline = asyncio.get_running_loop().time() + 20
    body = (await api.get(path, headers=headers)).json()
    while not accepted(body):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{path} never reached the wanted state: {body}")
        await asyncio.sleep(0.05)
        body = (await api.get(path, headers=headers)).json()
    return body
