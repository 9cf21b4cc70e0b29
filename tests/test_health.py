"""/healthz and /readyz against a real Temporal dev server and a real worker."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from activities.store.database import make_engine
from api.deps import get_engine
from api.settings import ApiSettings
from tests.api_client import api_client
from worker.main import build_worker
from worker.settings import WorkerSettings


def _settings(env: WorkflowEnvironment, task_queue: str, database_url: str) -> ApiSettings:
    return ApiSettings(
        temporal_address=env.client.service_client.config.target_host,
        task_queue=task_queue,
        database_url=database_url,
    )


async def test_healthz_answers_without_dependencies(tmp_path: Path) -> None:
    settings = ApiSettings(temporal_address="127.0.0.1:1", database_url=f"sqlite:///{tmp_path}/x.db")
    async with api_client(settings) as (_, client):
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_names_missing_worker_then_turns_green(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    settings = _settings(dev_env, task_queue, sqlite_url)
    async with api_client(settings) as (_, client):
        before = await client.get("/readyz")
        assert before.status_code == 503
        body = before.json()
        assert body["checks"]["database"]["ok"] and body["checks"]["temporal"]["ok"]
        assert not body["checks"]["worker"]["ok"]
        assert task_queue in body["checks"]["worker"]["detail"]

        worker_settings = WorkerSettings(task_queue=task_queue, database_url=sqlite_url)
        with ThreadPoolExecutor(4) as executor:
            async with build_worker(dev_env.client, worker_settings, executor):
                for _ in range(50):
                    after = await client.get("/readyz")
                    if after.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
    assert after.status_code == 200, after.json()
    assert after.json()["ready"] is True


async def test_readyz_reports_unreachable_temporal(tmp_path: Path) -> None:
    settings = ApiSettings(temporal_address="127.0.0.1:1", database_url=f"sqlite:///{tmp_path}/x.db")
    async with api_client(settings) as (_, client):
        response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["temporal"]["ok"] is False and "Temporal unreachable" in checks["temporal"]["detail"]


async def test_readyz_reports_unreachable_database(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    dead: Engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    settings = _settings(dev_env, task_queue, sqlite_url)
    async with api_client(settings, overrides={get_engine: lambda: dead}) as (_, client):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "detail": "database unreachable: OperationalError"}
