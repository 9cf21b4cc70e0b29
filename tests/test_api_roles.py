"""Every endpoint checks who is calling: 401 without a sign-in, 403 when the role does not allow it,
404 for another user's desktop — per role, over the real engine (dev server, worker, fake cloud)."""

from __future__ import annotations

import uuid

import httpx

from tests.engine_api import until, who

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium"}


async def setup_pools(api: httpx.AsyncClient) -> tuple[str, str]:
    root = who(api, "root")
    tag = uuid.uuid4().hex[:6]
    east = {"template": TEMPLATE, "name": f"East {tag}", "naming_mask": "east-", "prestarted": 1, "max_desktops": 2,
            "entitlement": {"groups": ["callcentre"]}, "spice_proxy": "http://proxy.example.test:3128",
            "peripherals": {"usb": True, "drives": True}}  # fmt: skip
    west = {
        "template": TEMPLATE,
        "name": f"West {uuid.uuid4().hex[:6]}",
        "naming_mask": "west-",
        "prestarted": 1,
        "cloud": "west",
    }
    made_a = await api.post("/pools", json=east, headers=root)
    assert made_a.status_code == 201, made_a.text
    a = made_a.json()["id"]
    made_b = await api.post("/pools", json=west, headers=root)
    assert made_b.status_code == 201, made_b.text
    b = made_b.json()["id"]
    grants = [
        {"role": "pool_admin", "principal_kind": "user", "principal": "padmin", "scope_kind": "pool", "scope": a},
        {"role": "cluster_admin", "principal_kind": "user", "principal": "cadmin", "scope_kind": "cloud",
         "scope": "west"},
    ]  # fmt: skip
    for grant in grants:
        made = await api.post("/roles", json=grant, headers=root)
        assert made.status_code == 201, made.text
    return a, b


async def test_unauthenticated_calls_are_401(api: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/pools"), ("POST", "/pools"), ("GET", "/desktops"), ("GET", "/me/desktops"),
                         ("GET", "/audit"), ("GET", "/roles"), ("POST", "/pools/x/claims"), ("GET", "/auth/me"),
                         ("DELETE", "/pools/x"), ("GET", "/desktops/x/connection.rdp")]:  # fmt: skip
        response = await api.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.status_code)
    bad = await api.get("/pools", headers={"Authorization": "Bearer dpat_0011_nope"})
    assert bad.status_code == 401


async def test_each_role_gets_what_it_may_and_403_otherwise(api: httpx.AsyncClient) -> None:
    a, b = await setup_pools(api)
    alice, padmin, cadmin = (who(api, n) for n in ("alice", "padmin", "cadmin"))

    # Pool administrator of A: A only, no new pools, no wide grants.
    assert [p["id"] for p in (await api.get("/pools", headers=padmin)).json()] == [a]
    assert (await api.get(f"/pools/{b}", headers=padmin)).status_code == 403
    assert (await api.post(f"/pools/{a}/disable", headers=padmin)).json()["enabled"] is False
    assert (await api.post(f"/pools/{a}/enable", headers=padmin)).json()["enabled"] is True
    assert (await api.post(f"/pools/{b}/disable", headers=padmin)).status_code == 403
    new_pool = {"template": TEMPLATE, "name": f"Mine {uuid.uuid4().hex[:6]}", "naming_mask": "mine-", "prestarted": 1}
    assert (await api.post("/pools", json=new_pool, headers=padmin)).status_code == 403
    wide = {"role": "pool_admin", "principal_kind": "user", "principal": "bob", "scope_kind": "system"}
    assert (await api.post("/roles", json=wide, headers=padmin)).status_code == 403

    # Cluster administrator of cloud "west": B, and new pools there only.
    assert [p["id"] for p in (await api.get("/pools", headers=cadmin)).json()] == [b]
    assert (await api.post("/pools", json={**new_pool, "cloud": "west"}, headers=cadmin)).status_code == 201
    assert (
        await api.post("/pools", json={**new_pool, "name": f"Other {uuid.uuid4().hex[:6]}"}, headers=cadmin)
    ).status_code == 403
    assert (await api.get(f"/pools/{a}/entitlement", headers=cadmin)).status_code == 403

    # Users administer nothing.
    for path in (f"/pools/{a}", f"/pools/{a}/entitlement"):
        assert (await api.get(path, headers=alice)).status_code == 403
    assert (await api.get("/pools", headers=alice)).json() == []
    assert (await api.get("/audit", headers=alice)).status_code == 403
    assert (await api.delete(f"/pools/{a}", headers=alice)).status_code == 403
    assert (await api.post("/auth/tokens", json={"name": "x"}, headers=alice)).status_code == 403

    # The audit log shows who did what, to administrators of that pool only.
    trail = (await api.get("/audit", params={"pool": a, "actor": "padmin"}, headers=padmin)).json()
    assert [e["action"] for e in trail] == ["pool.enabled", "pool.disabled"]
    assert {e["action"] for e in (await api.get("/audit", params={"pool": a}, headers=padmin)).json()} >= {
        "pool.created", "role.granted", "pool.enabled"
    }  # fmt: skip
    assert (await api.get("/audit", params={"pool": b}, headers=padmin)).json() == []


async def test_users_claim_their_desktop_and_never_see_anothers(api: httpx.AsyncClient) -> None:
    a, _ = await setup_pools(api)
    alice, bob, padmin = who(api, "alice"), who(api, "bob"), who(api, "padmin")
    await until(api, f"/pools/{a}", lambda p: p["counts"]["ready"] == 1, padmin)
    assert (await api.post(f"/pools/{a}/claims", headers=bob)).status_code == 403  # not entitled
    claimed = await api.post(f"/pools/{a}/claims", headers=alice)
    assert claimed.status_code in (200, 202), claimed.text  # 202 while the pool takes its new desktop's report
    request_id = claimed.json()["request_id"]
    assigned = await until(api, f"/pools/{a}/claims/{request_id}", lambda c: c["status"] == "assigned", alice)
    desktop = assigned["desktop_id"]
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "assigned", alice)

    cards = (await api.get("/me/desktops", headers=alice)).json()
    assert [(c["pool_id"], c["state"], c["desktop_id"]) for c in cards] == [(a, "ready", desktop)]
    assert (await api.get("/me/desktops", headers=bob)).json() == []
    assert [d["id"] for d in (await api.get("/desktops", headers=alice)).json()] == [desktop]
    assert (await api.get("/desktops", headers=bob)).json() == []
    others = [("GET", f"/desktops/{desktop}"), ("POST", f"/desktops/{desktop}/release"),
              ("POST", f"/desktops/{desktop}/disconnect"), ("GET", f"/desktops/{desktop}/connection.rdp")]  # fmt: skip
    for method, path in others:
        assert (await api.request(method, path, headers=bob)).status_code == 404, path
    assert (await api.post(f"/desktops/{desktop}/power", json={"on": False}, headers=alice)).status_code == 403

    # Console options narrow what the pool allows and become alice's default for the pool.
    options = {"protocol": "spice", "full_screen": False, "width": 1280, "height": 800, "usb": False}
    assert (await api.put(f"/pools/{a}/console-options", json=options, headers=alice)).status_code == 200
    assert (await api.get(f"/pools/{a}/console-options", headers=alice)).json()["usb"] is False
    rdp = await api.get(f"/desktops/{desktop}/connection.rdp", headers=alice)
    assert rdp.status_code == 200 and rdp.headers["content-type"].startswith("application/x-rdp")
    lines = rdp.text.split("\r\n")
    assert "screen mode id:i:1" in lines and "desktopwidth:i:1280" in lines
    assert "drivestoredirect:s:*" in lines and "usbdevicestoredirect:s:*" not in lines
    vv = await api.get(f"/desktops/{desktop}/connection.vv", headers=alice)
    assert "proxy=http://proxy.example.test:3128" in vv.text and "enable-usbredir=0" in vv.text

    # A pool administrator grants bob the user role on the pool: now he may claim (and waits: the pool is busy).
    grant = {"role": "user", "principal_kind": "user", "principal": "bob", "scope_kind": "pool", "scope": a}
    assert (await api.post("/roles", json=grant, headers=padmin)).status_code == 201
    ghost = {**grant, "principal": "nobody-here"}
    missing = await api.post("/roles", json=ghost, headers=padmin)
    assert missing.status_code == 422 and missing.json()["detail"].startswith("principal:")
    assert (await api.post(f"/pools/{a}/claims", headers=bob)).status_code in (200, 202)


async def test_api_tokens_are_shown_once_stored_hashed_and_revocable(api: httpx.AsyncClient) -> None:
    root = who(api, "root")
    made = await api.post("/auth/tokens", json={"name": "ci", "expires_in_days": 1}, headers=root)
    assert made.status_code == 201
    token = made.json()["token"]
    by_token = {"Authorization": f"Bearer {token}"}
    me = await api.get("/auth/me", headers=by_token)
    assert me.status_code == 200 and me.json()["username"] == "root" and me.json()["super_user"] is True
    listed = (await api.get("/auth/tokens", headers=root)).json()
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    assert (await api.post("/auth/tokens", json={"name": "more"}, headers=by_token)).status_code == 403
    assert (await api.delete(f"/auth/tokens/{made.json()['id']}", headers=root)).status_code == 204
    assert (await api.get("/auth/me", headers=by_token)).status_code == 401
