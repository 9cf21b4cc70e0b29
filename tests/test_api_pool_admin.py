"""A pool administrator's day over the API and the real engine: increase, entitlement, drain,
a user's disconnect and place in line, and removal (protected, refused with live desktops, destroy)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError

from activities.agent_secret import agent_secret
from tests.api_client import app_of
from tests.engine_api import AGENT_KEY, until, who
from workflows.capacity_rules import capacity_schedule_id

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium"}


async def make_pool(api: httpx.AsyncClient, **fields: Any) -> str:
    body = {"template": TEMPLATE, "name": f"Admin {uuid.uuid4().hex[:6]}", "naming_mask": "adm-",
            "prestarted": 1, "max_desktops": 1, "entitlement": {"groups": ["callcentre"]}, **fields}  # fmt: skip
    made = await api.post("/pools", json=body, headers=who(api, "root"))
    assert made.status_code == 201, made.text
    pool_id: str = made.json()["id"]
    return pool_id


async def test_increase_entitlement_disconnect_and_the_line(api: httpx.AsyncClient) -> None:
    root, alice, bob = who(api, "root"), who(api, "alice"), who(api, "bob")
    pool = await make_pool(api)
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 1, root)

    too_many = await api.post(f"/pools/{pool}/increase", json={"by": 10**5}, headers=root)
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("by:")
    assert (await api.post(f"/pools/{pool}/increase", json={"by": 0}, headers=root)).status_code == 422

    # Bob is not entitled until the administrator adds him; the count is de-duplicated.
    assert (await api.post(f"/pools/{pool}/claims", headers=bob)).status_code == 403
    body = {"users": ["bob", "alice"], "groups": ["callcentre"], "org_units": []}
    entitled = await api.put(f"/pools/{pool}/entitlement", json=body, headers=root)
    assert entitled.status_code == 200 and entitled.json()["total"] == 3  # bob, alice, carol: alice once

    first = await api.post(f"/pools/{pool}/claims", headers=alice)
    request = first.json()["request_id"]
    held = await until(api, f"/pools/{pool}/claims/{request}", lambda c: c["status"] == "assigned", alice)
    waiting = await api.post(f"/pools/{pool}/claims", headers=bob)
    assert waiting.status_code == 202 and waiting.json()["position"] == 1
    cards = await until(api, "/me/desktops", lambda cs: cs and cs[0]["state"] == "waiting", bob)
    assert (cards[0]["pool_id"], cards[0]["position"]) == (pool, 1)

    # The pool grows by one: bob is served by the new desktop, alice keeps hers.
    grown = await api.post(f"/pools/{pool}/increase", json={"by": 1}, headers=root)
    assert grown.status_code == 200 and grown.json()["spec"]["max_desktops"] == 2
    served = await until(api, "/me/desktops", lambda cs: cs and cs[0]["state"] in ("ready", "preparing"), bob)
    assert served[0]["desktop_id"] not in (None, held["desktop_id"])

    # Alice connects (her desktop's agent says so), then disconnects: the retention buffer starts,
    # her desktop stays hers.
    desktop = held["desktop_id"]
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "assigned", alice)
    secret = {"X-Desktop-Secret": agent_secret(AGENT_KEY, desktop)}
    assert (await api.post(f"/desktops/{desktop}/events", json={"kind": "connect"}, headers=secret)).status_code == 202
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "connected", alice)
    assert (await api.post(f"/desktops/{desktop}/disconnect", headers=alice)).status_code == 200
    gone = await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "disconnected", alice)
    assert gone["user"] == "alice"

    # Disabled: a new claim is refused, sessions are untouched.
    assert (await api.post(f"/pools/{pool}/disable", headers=root)).status_code == 200
    refused = await api.post(f"/pools/{pool}/claims", headers=who(api, "carol"))
    assert refused.status_code == 409
    assert (await api.get(f"/desktops/{desktop}", headers=alice)).json()["state"] == "disconnected"


async def test_removal_respects_protection_and_live_desktops(api: httpx.AsyncClient) -> None:
    root = who(api, "root")
    pool = await make_pool(api, delete_protection=True)
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 1, root)
    protected = await api.delete(f"/pools/{pool}", params={"desktops": "destroy"}, headers=root)
    assert protected.status_code == 409 and protected.json()["detail"].startswith("delete_protection:")

    spec = (await api.get(f"/pools/{pool}", headers=root)).json()["spec"]
    assert (await api.put(f"/pools/{pool}", json={**spec, "delete_protection": False}, headers=root)).status_code == 200
    live = await api.delete(f"/pools/{pool}", headers=root)
    assert live.status_code == 409 and live.json()["detail"].startswith("desktops:")
    assert (await api.delete(f"/pools/{pool}", params={"desktops": "everything"}, headers=root)).status_code == 422

    rule = {"name": "Nights", "calendar": {"hour": 22, "time_zone": "UTC"}, "sizing": {"prestarted": 1}}
    assert (await api.post(f"/pools/{pool}/schedules", json=rule, headers=root)).status_code == 201
    schedule = app_of(api).state.temporal.get_schedule_handle(capacity_schedule_id(pool, "Nights"))
    await schedule.describe()  # it exists

    removing = await api.delete(f"/pools/{pool}", params={"desktops": "destroy"}, headers=root)
    assert removing.status_code == 202 and removing.json()["status"] == "removing"
    await until(api, f"/pools/{pool}", lambda p: p.get("detail") == f"pool {pool} not found", root)
    audit = (await api.get("/audit", params={"pool": pool, "actor": "root"}, headers=root)).json()
    assert "pool.removing" in {e["action"] for e in audit}
    with pytest.raises(RPCError):  # its capacity schedule went with it
        await schedule.describe()
