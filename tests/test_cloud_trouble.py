"""A pool whose cloud is down shows it (finding 2 of docs/reliability.md): a provisioning desktop
whose first create attempts fail on 503s tells its pool, the pool shows "cloud unavailable" with
the cloud's answer and holds further creates; the first desktop up when the cloud is back clears it.
Real dev server and worker, the fake cloud switched off and on."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.engine import engine_worker, eventually, spec, start_pool
from tests.fakes import FakeCloud
from workflows.messages import PoolStatusInput, PoolStatusResult
from workflows.pool_workflow import PoolWorkflow


async def test_pool_shows_the_cloud_outage_and_clears_it_when_the_cloud_is_back(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    cloud = FakeCloud(unavailable=True)
    async with engine_worker(dev_env.client, task_queue, sqlite_url, cloud):
        pool = await start_pool(dev_env.client, task_queue, spec(max_desktops=4, prestarted=2))

        async def status() -> PoolStatusResult:
            result: PoolStatusResult = await pool.query(PoolWorkflow.status, PoolStatusInput())
            return result

        down = await eventually(status, lambda s: s.restrained_reason.startswith("cloud unavailable"), timeout_s=30)
        assert down.restrained_reason.startswith("cloud unavailable: cloud error 503"), down
        assert down.counts.provisioning == 2 and cloud.created == 0  # still trying, nothing made

        cloud.unavailable = False
        back = await eventually(status, lambda s: s.counts.ready == 2 and not s.restrained_reason, timeout_s=60)
        assert (back.counts.ready, back.restrained_reason) == (2, ""), back
        assert cloud.created == 2  # each desktop's later call looked first and made exactly one server
