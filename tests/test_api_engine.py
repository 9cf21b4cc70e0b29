"""The API's pool, claim, assignment and desktop endpoints over the real engine
(dev server, real worker and activities, fake cloud), in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from activities.directory import DirectorySettings, DirectoryUnavailable
from api.claim_gateway import ClaimGateway
from api.deps import get_gateway
from api.settings import ApiSettings
from tests.api_client import api_client, as_user
from tests.engine import engine_worker
from tests.fakes import FakeCloud

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium"}
USERS = ["alice", "bob", "carol", "u1", "u2", "u3", "late", "x"] + [f"user{i:03d}" for i in range(60)]


def directory_file(path: Path) -> Path:
    """A built-in directory of entitlement-only users (no passwords) in group `everyone`."""
    data = {
        "users": {u: {} for u in [*USERS, "outsider"]},
        "groups": {"everyone": {"users": USERS}, "nobody": {"users": []}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def pool_body(**fields: Any) -> dict[str, Any]:
    return {"template": TEMPLATE, "entitlement": {"groups": ["everyone"]}, **fields}


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, task_queue: str, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        database_url=sqlite_url,
        directory=DirectorySettings(backend="builtin", builtin_file=directory_file(tmp_path / "dir.yaml")),
        super_users=["root"],
    )
    async with engine_worker(dev_env.client, task_queue, sqlite_url, FakeCloud()), api_client(settings) as (_, client):
        client.headers.update(as_user(client, "root"))  # the administrator; users sign in per request
        yield client


async def _until(api: httpx.AsyncClient, path: str, accept: Any, timeout_s: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    body = (await api.get(path)).json()
    while not accept(body) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        body = (await api.get(path)).json()
    return body


async def test_personal_pool_assign_connect_unassign_keeps_the_desktop(api: httpx.AsyncClient) -> None:
    spec = pool_body(
        name="Personal", naming_mask="per-", assignment="personal", prestarted=0, min_desktops=2, max_desktops=3
    )
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    pool = await _until(api, f"/pools/{pool_id}", lambda p: p["counts"]["ready"] == 2)
    assert pool["counts"]["ready"] == 2

    refused = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "bob"))
    assert refused.status_code == 409 and "no desktop" in refused.json()["reason"]

    assigned = await api.post(f"/pools/{pool_id}/assignments", json={"user": "bob"})
    assert assigned.status_code == 200, assigned.text
    desktop_id = assigned.json()["desktop_id"]
    mine = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "bob"))
    assert mine.status_code == 200 and mine.json()["desktop_id"] == desktop_id

    again = await api.post(f"/pools/{pool_id}/assignments", json={"user": "bob"})
    assert again.status_code == 409  # one desktop per user by default

    released = await api.post(f"/desktops/{desktop_id}/release")
    assert released.status_code == 200
    back = await _until(api, f"/desktops/{desktop_id}", lambda d: d["state"] == "ready" and d["user"] is None)
    assert back["state"] == "ready"  # unassigned, not destroyed: personal desktops are kept


async def test_manual_pool_waits_for_an_administrator_to_return_the_desktop(api: httpx.AsyncClient) -> None:
    spec = pool_body(name="Manual", naming_mask="man-", release="manual", prestarted=1, max_desktops=2)
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    await _until(api, f"/pools/{pool_id}", lambda p: p["counts"]["ready"] == 1)
    claimed = (await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "carol"))).json()
    desktop_id = claimed["desktop_id"]

    early = await api.post(f"/desktops/{desktop_id}/return")
    assert early.status_code == 409  # still in use: nothing to return

    assert (await api.post(f"/desktops/{desktop_id}/release")).status_code == 200
    held = await _until(api, f"/desktops/{desktop_id}", lambda d: d["state"] == "awaiting_return")
    assert held["state"] == "awaiting_return"
    assert (await api.post(f"/desktops/{desktop_id}/return")).status_code == 202
    ready = await _until(api, f"/desktops/{desktop_id}", lambda d: d["state"] == "ready")
    assert ready["state"] == "ready"
    assert any(e["action"] == "desktop.reverted" for e in ready["events"])


async def test_claim_answers_waiting_with_place_in_line_then_status(api: httpx.AsyncClient) -> None:
    spec = pool_body(name="Tiny", naming_mask="tin-", prestarted=1, max_desktops=1)
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    await _until(api, f"/pools/{pool_id}", lambda p: p["counts"]["ready"] == 1)
    first = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "u1"))
    second = await api.post(f"/pools/{pool_id}/claims", headers={**as_user(api, "u2"), "Idempotency-Key": "u2-k"})
    third = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "u3"))
    assert first.status_code == 200
    assert second.status_code == 202 and second.json()["position"] == 1 and second.json()["preparing"] is False
    assert third.json()["position"] == 2
    status = await api.get(f"/pools/{pool_id}/claims/u2-k")
    assert status.json()["status"] == "waiting" and status.json()["position"] == 1


async def test_unknown_pool_and_bad_input_are_clear_4xx(api: httpx.AsyncClient) -> None:
    missing = await api.post("/pools/nope/claims", headers=as_user(api, "x"))  # entitlement is checked on a known pool
    assert missing.status_code == 404
    assert (await api.get("/pools/nope")).status_code == 404
    bad_limit = await api.get("/desktops", params={"limit": 0})
    assert bad_limit.status_code == 422 and bad_limit.json()["detail"][0]["loc"] == ["query", "limit"]
    spec = pool_body(name="Dup", naming_mask="dup-")
    assert (await api.post("/pools", json=spec)).status_code == 201
    dup = await api.post("/pools", json=spec)
    assert dup.status_code == 409 and dup.json()["detail"].startswith("name:")


async def test_overloaded_pool_answers_503_with_retry_after(
    api: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    spec = pool_body(name="Busy", naming_mask="bus-")
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    tight = ClaimGateway(dev_env.client, max_pending=0)
    app.dependency_overrides[get_gateway] = lambda: tight  # type: ignore[attr-defined]
    response = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "late"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_burst_of_claims_never_gives_one_desktop_to_two_users(api: httpx.AsyncClient) -> None:
    spec = pool_body(name="Burst", naming_mask="bst-", prestarted=10, max_desktops=10)
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    await _until(api, f"/pools/{pool_id}", lambda p: p["counts"]["ready"] == 10)
    users = [f"user{i:03d}" for i in range(60)]
    responses = await asyncio.gather(
        *(api.post(f"/pools/{pool_id}/claims", headers={**as_user(api, u), "Idempotency-Key": u}) for u in users)
    )
    outcomes = [r.json() for r in responses]
    assert {r.status_code for r in responses} <= {200, 202}
    assigned = [o for o in outcomes if o["status"] == "assigned"]
    waiting = [o for o in outcomes if o["status"] == "waiting"]
    assert len(assigned) == 10
    assert len({o["desktop_id"] for o in assigned}) == 10  # no desktop twice
    assert sorted(o["position"] for o in waiting) == list(range(1, 51))  # one line, no gaps
    retried = await asyncio.gather(
        *(api.post(f"/pools/{pool_id}/claims", headers={**as_user(api, u), "Idempotency-Key": u}) for u in users[:10])
    )
    assert [r.json()["desktop_id"] for r in retried] == [o["desktop_id"] for o in outcomes[:10]]


async def test_only_entitled_users_claim_and_the_set_is_deduplicated(api: httpx.AsyncClient) -> None:
    spec = pool_body(
        name="Entitled", naming_mask="ent-", entitlement={"users": ["alice", "outsider"], "groups": ["everyone"]}
    )
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    entitlement = (await api.get(f"/pools/{pool_id}/entitlement")).json()
    assert entitlement["total"] == len(USERS) + 1  # alice counted once, outsider added
    assert {s["name"]: s["user_count"] for s in entitlement["sources"]} == {
        "alice": 1, "outsider": 1, "everyone": len(USERS)
    }  # fmt: skip
    closed = pool_body(name="Closed", naming_mask="clo-", entitlement={"groups": ["nobody"]})
    closed_id = (await api.post("/pools", json=closed)).json()["id"]
    refused = await api.post(f"/pools/{closed_id}/claims", headers=as_user(api, "alice"))
    assert refused.status_code == 403 and refused.json()["detail"].startswith("user:")


async def test_directory_outage_keeps_holders_connected_and_refuses_newcomers(api: httpx.AsyncClient) -> None:
    spec = pool_body(name="Outage", naming_mask="out-", prestarted=1, max_desktops=3)
    pool_id = (await api.post("/pools", json=spec)).json()["id"]
    await _until(api, f"/pools/{pool_id}", lambda p: p["counts"]["ready"] == 1)
    held = (await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "alice"))).json()
    await _until(api, f"/desktops/{held['desktop_id']}", lambda d: d["state"] == "assigned")

    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    directory = transport.app.state.directory  # type: ignore[attr-defined]

    async def down(*_: object) -> None:
        raise DirectoryUnavailable("test: directory down")

    directory.invalidate()
    directory.inner.resolve_entitlement = down
    again = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "alice"))
    newcomer = await api.post(f"/pools/{pool_id}/claims", headers=as_user(api, "bob"))
    assert again.status_code == 200 and again.json()["desktop_id"] == held["desktop_id"]
    assert newcomer.status_code == 503 and newcomer.json() == {"detail": "directory unavailable"}
