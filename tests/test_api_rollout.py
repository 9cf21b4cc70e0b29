"""Recreate over the API and the real engine (dev server, worker, fake cloud): start, follow,
pause, resume and cancel a rollout; one at a time per pool; a failed canary pauses it; bad input
422 naming the field; roles; Temporal down 503; delete protection blocks template changes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.store.models import PoolRecord
from api.settings import ApiSettings
from tests.api_client import api_client, as_user
from tests.engine import eventually
from tests.engine_api import until, who
from tests.fakes import FakeCloud
from workflows.reconcile_workflow import CloudReconcileWorkflow, ReconcileStatusInput, reconcile_workflow_id

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium"}
V2 = {"image": "win11-v2", "flavor": "vdi.medium"}
STUCK = 10**9


@pytest.fixture
async def make_pool(api: httpx.AsyncClient, dev_env: WorkflowEnvironment, task_queue: str) -> Any:
    """Make a pool through the API and wait until it is filled and settled."""

    async def make(**fields: Any) -> str:
        body = {"template": TEMPLATE, "name": f"Rollout {uuid.uuid4().hex[:6]}", "naming_mask": "rol-",
                "prestarted": 2, "max_desktops": 4, "entitlement": {"groups": ["callcentre"]}, **fields}  # fmt: skip
        made = await api.post("/pools", json=body, headers=who(api, "root"))
        assert made.status_code == 201, made.text
        pool_id: str = made.json()["id"]
        await first_sweep_over(dev_env, task_queue)
        await until(
            api,
            f"/pools/{pool_id}",
            lambda p: p["counts"]["ready"] == p["spec"]["prestarted"] and p["counts"]["provisioning"] == 0,
            who(api, "root"),
        )
        return pool_id

    return make


async def first_sweep_over(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    """The cloud reconciler sweeps at once when the session's first pool starts it (then every minute).
    A sweep that listed the cloud before a desktop came up could take it for one whose server vanished
    and replace it, and a pool whose desktops are being replaced skews a rollout's counts: when the
    reconciler runs on this test's worker, its first sweep is let pass before a rollout starts."""
    handle = dev_env.client.get_workflow_handle_for(CloudReconcileWorkflow.run, reconcile_workflow_id("embedded", None))
    described = await handle.describe()
    if described.task_queue != task_queue or described.status is not WorkflowExecutionStatus.RUNNING:
        return
    swept = await eventually(
        lambda: handle.query(CloudReconcileWorkflow.status, ReconcileStatusInput()), lambda r: r.sweeps >= 1
    )
    assert swept.sweeps >= 1


async def change_template(api: httpx.AsyncClient, pool: str, template: dict[str, Any]) -> httpx.Response:
    root = who(api, "root")
    spec = (await api.get(f"/pools/{pool}", headers=root)).json()["spec"]
    return await api.put(f"/pools/{pool}", json={**spec, "template": template}, headers=root)


async def rollout_until(api: httpx.AsyncClient, pool: str, accept: Any, timeout_s: float = 60.0) -> Any:
    """A rollout looks at its pool every two seconds: a longer deadline than `until`'s."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await api.get(f"/pools/{pool}/rollout", headers=who(api, "root"))).json()
        if "status" in body and accept(body):
            return body
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"the rollout of {pool} never got there: {body}")
        await asyncio.sleep(0.1)


def let_go(cloud: FakeCloud) -> None:
    with cloud._lock:
        cloud.build_polls = 0
        for server in cloud.servers.values():
            server.polls_left = 0


async def test_recreate_follow_pause_resume_and_complete(
    api: httpx.AsyncClient, fake_cloud: FakeCloud, make_pool: Any
) -> None:
    root = who(api, "root")
    pool = await make_pool()
    never = await api.get(f"/pools/{pool}/rollout", headers=root)
    assert never.status_code == 404 and never.json()["detail"].startswith("rollout:")
    changed = await change_template(api, pool, V2)
    assert changed.status_code == 200 and changed.json()["template_version"] == 2

    fake_cloud.build_polls = STUCK  # the canary is held while the administrator looks
    started = await api.post(f"/pools/{pool}/recreate", json={"strategy": "rolling"}, headers=root)
    assert started.status_code == 202, started.text
    body = started.json()
    assert (body["rollout_id"], body["status"], body["total"]) == (f"rollout/{pool}", "running", 2)
    assert (body["target_version"], body["floor"], body["batch_size"], body["max_failures"]) == (2, 1, 2, 2)
    assert body["workflow_url"].endswith(f"/workflows/rollout%2F{pool}")
    again = await api.post(f"/pools/{pool}/recreate", json={}, headers=root)
    assert again.status_code == 409 and again.json()["detail"].startswith("rollout: a rollout of pool")

    building = await rollout_until(api, pool, lambda r: r["canary"]["result"] == "building")
    assert building["canary"]["desktop_id"].startswith(f"{pool}.") and building["done"] + building["leaving"] == 1
    paused = await api.post(f"/pools/{pool}/rollout/pause", json={"reason": "lunch"}, headers=root)
    assert paused.status_code == 200 and (paused.json()["status"], paused.json()["paused_reason"]) == (
        "paused",
        "lunch",
    )
    twice = await api.post(f"/pools/{pool}/rollout/pause", headers=root)
    assert twice.status_code == 409 and "only a running rollout can be paused" in twice.json()["detail"]
    resumed = await api.post(f"/pools/{pool}/rollout/resume", headers=root)
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"

    let_go(fake_cloud)
    done = await rollout_until(api, pool, lambda r: r["status"] == "completed")
    assert (done["done"], done["total"], done["canary"]["result"]) == (2, 2, "ready")
    assert done["lowest_ready"] >= 1 and done["finished_at"] is not None
    desktops = await until(
        api,
        f"/desktops?pool={pool}",
        lambda ds: (
            sorted((d["state"], d["template_version"]) for d in ds if d["state"] == "ready")
            == [("ready", 2), ("ready", 2)]
        ),
        root,
    )
    assert {d["template_version"] for d in desktops if d["state"] == "ready"} == {2}
    ended = await api.post(f"/pools/{pool}/rollout/cancel", headers=root)
    assert ended.status_code == 409 and ended.json()["detail"].startswith("rollout: the last rollout")

    actions = [
        e["action"] for e in (await api.get("/audit", params={"pool": pool, "actor": "root"}, headers=root)).json()
    ]
    for action in ("pool.recreate_started", "pool.rollout_paused", "pool.rollout_resumed"):
        assert action in actions, actions


async def test_a_failed_canary_pauses_and_cancel_ends_it(
    api: httpx.AsyncClient, fake_cloud: FakeCloud, make_pool: Any
) -> None:
    root = who(api, "root")
    pool = await make_pool(prestarted=3, max_desktops=5)
    assert (await change_template(api, pool, V2)).status_code == 200
    fake_cloud.fail_all = True
    started = await api.post(f"/pools/{pool}/recreate", json={"strategy": "immediate", "max_failures": 0}, headers=root)
    assert started.status_code == 202 and started.json()["floor"] == 0 and started.json()["batch_size"] == 0

    paused = await rollout_until(api, pool, lambda r: r["status"] == "paused")
    assert paused["paused_reason"].startswith("canary desktop ") and "failed" in paused["paused_reason"]
    assert paused["canary"]["result"] == "failed" and paused["failures"] >= 1
    cancelled = await api.post(f"/pools/{pool}/rollout/cancel", json={"reason": "template is broken"}, headers=root)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == ("cancelled", "template is broken")
    last = await rollout_until(api, pool, lambda r: r["status"] == "cancelled")
    assert last["finished_at"] is not None and last["done"] + last["leaving"] == 1
    # A new rollout may start once the last one ended.
    fake_cloud.fail_all = False
    assert (await api.post(f"/pools/{pool}/recreate", headers=root)).status_code == 202
    await rollout_until(api, pool, lambda r: r["status"] == "completed")


async def test_a_rollout_terminated_outside_shows_as_failed(
    api: httpx.AsyncClient, fake_cloud: FakeCloud, dev_env: WorkflowEnvironment, make_pool: Any
) -> None:
    root = who(api, "root")
    pool = await make_pool()
    assert (await change_template(api, pool, V2)).status_code == 200
    fake_cloud.build_polls = STUCK
    assert (await api.post(f"/pools/{pool}/recreate", headers=root)).status_code == 202
    await rollout_until(api, pool, lambda r: r["canary"]["result"] == "building")
    await dev_env.client.get_workflow_handle(f"rollout/{pool}").terminate("by an operator")
    ended = await rollout_until(api, pool, lambda r: r["status"] != "running")
    assert (ended["status"], ended["reason"]) == ("failed", "the rollout workflow was terminated")
    assert (await api.post(f"/pools/{pool}/rollout/resume", headers=root)).status_code == 409
    let_go(fake_cloud)
    assert (await api.post(f"/pools/{pool}/recreate", headers=root)).status_code == 202
    await rollout_until(api, pool, lambda r: r["status"] == "completed")


async def test_bad_input_and_roles(api: httpx.AsyncClient, make_pool: Any) -> None:
    root = who(api, "root")
    pool = await make_pool()
    for body, field in (({"batch_size": 0}, "batch_size"), ({"strategy": "sideways"}, "strategy"),
                        ({"max_failures": -1}, "max_failures"), ({"floor": -1}, "floor")):  # fmt: skip
        refused = await api.post(f"/pools/{pool}/recreate", json=body, headers=root)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == field, refused.text
    too_high = await api.post(f"/pools/{pool}/recreate", json={"floor": 2}, headers=root)
    assert too_high.status_code == 422 and too_high.json()["detail"].startswith("floor: must be at most 1")

    for user in ("alice", "padmin"):  # a user of the pool; an administrator of nothing
        assert (await api.post(f"/pools/{pool}/recreate", headers=who(api, user))).status_code == 403
        assert (await api.get(f"/pools/{pool}/rollout", headers=who(api, user))).status_code == 403
        assert (await api.post(f"/pools/{pool}/rollout/pause", headers=who(api, user))).status_code == 403
    grant = {"role": "pool_admin", "principal_kind": "user", "principal": "padmin", "scope_kind": "pool", "scope": pool}
    assert (await api.post("/roles", json=grant, headers=root)).status_code == 201
    assert (await api.post(f"/pools/{pool}/recreate", headers=who(api, "padmin"))).status_code == 202
    # Nothing to replace: it may have completed already (then there is nothing to cancel).
    assert (await api.post(f"/pools/{pool}/rollout/cancel", headers=who(api, "padmin"))).status_code in (200, 409)
    assert (await api.post("/pools/nope/recreate", headers=root)).status_code == 404


async def test_delete_protection_blocks_template_changes_until_lifted(api: httpx.AsyncClient, make_pool: Any) -> None:
    root = who(api, "root")
    pool = await make_pool(delete_protection=True, prestarted=1, max_desktops=2)
    spec = (await api.get(f"/pools/{pool}", headers=root)).json()["spec"]
    blocked = await api.put(f"/pools/{pool}", json={**spec, "template": V2}, headers=root)
    assert blocked.status_code == 409 and blocked.json()["detail"].startswith("delete_protection:")
    both = await api.put(f"/pools/{pool}", json={**spec, "template": V2, "delete_protection": False}, headers=root)
    assert both.status_code == 409  # lift it first, then change the template
    other = await api.put(f"/pools/{pool}", json={**spec, "description": "still protected"}, headers=root)
    assert other.status_code == 200 and other.json()["template_version"] == 1
    lifted = await api.put(f"/pools/{pool}", json={**spec, "delete_protection": False}, headers=root)
    assert lifted.status_code == 200
    changed = await change_template(api, pool, V2)
    assert changed.status_code == 200 and changed.json()["template_version"] == 2


async def test_temporal_down_answers_503(tmp_path: Path) -> None:
    settings = ApiSettings(
        temporal_address="127.0.0.1:1", database_url=f"sqlite:///{tmp_path}/down.db", super_users=["root"]
    )
    async with api_client(settings) as (app, client):
        spec = {"name": "Down pool", "template": TEMPLATE, "naming_mask": "down-", "prestarted": 2, "max_desktops": 4}
        with Session(app.state.engine) as session:
            session.add(PoolRecord(id="down-pool", name="Down pool", spec=spec))
            session.commit()
        root = as_user(client, "root")
        for method, path in (("POST", "/pools/down-pool/recreate"), ("GET", "/pools/down-pool/rollout"),
                             ("POST", "/pools/down-pool/rollout/pause")):  # fmt: skip
            response = await client.request(method, path, headers=root)
            assert response.status_code == 503, (path, response.text)
