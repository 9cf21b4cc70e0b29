"""The role matrix for every endpoint of the API, enumerated from `app.routes`: an endpoint added
without a line here fails `test_every_endpoint_has_a_line_in_the_matrix`.

Each endpoint is either public (no sign-in asked), the agent's (its desktop's secret, not a user),
signed in (the JSON API: 401 without a sign-in) or a portal page (the same checks through the API's
own route functions; without a sign-in a 303 to the login page). Each `Denied` line names a caller
whose role may not use it and what they get — 403, or 404 for another user's desktop or claim (ids
cannot be probed), or for list endpoints the empty list / a page without the pool (they filter
instead of refusing). Portal forms are sent as forms.
`Allowed` lines (read-only endpoints) check that the matrix is not simply refusing everyone.
The rules are those of api/auth/roles.py as tests/test_api_roles.py and the README state them.

Over the real engine (dev server, worker, fake cloud) through the `api` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from activities.agent_secret import agent_secret
from api.main import create_app
from tests.api_client import app_of
from tests.engine_api import AGENT_KEY, until, who
from tests.test_api_roles import TEMPLATE, setup_pools

EMPTY = "empty list"  # a list endpoint that filters instead of refusing
HIDDEN = "page without pool a"  # a portal page that filters instead of refusing


@dataclass(frozen=True)
class Denied:
    who: str
    status: int | str
    pool: str = "a"  # which pool's id fills {pool_id}: "a" (padmin's, alice entitled) or "b" (cloud west)
    body: Any = None
    form: dict[str, str] | None = None  # portal pages take forms


@dataclass(frozen=True)
class Allowed:
    who: str
    pool: str = "a"
    status: int = 200


@dataclass(frozen=True)
class Rule:
    kind: str = "signed_in"  # "public" | "agent" | "signed_in" | "portal"
    denied: tuple[Denied, ...] = ()
    allowed: tuple[Allowed, ...] = ()
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _pool_spec(name: str) -> dict[str, Any]:
    return {"template": TEMPLATE, "name": name, "naming_mask": "mx-", "prestarted": 1}


RULE_BODY = {"name": "Morning", "calendar": {"hour": 8, "time_zone": "UTC"}, "sizing": {"prestarted": 1}}
GRANT_ON_B = {"role": "user", "principal_kind": "user", "principal": "bob", "scope_kind": "pool", "scope": "{b}"}
OWNER_403_OTHERS_404 = (Denied("alice", 403), Denied("bob", 404))  # administrators' actions on alice's desktop

MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule("public"),
    ("GET", "/readyz"): Rule("public"),
    ("GET", "/metrics"): Rule("public", note="keep it off the public side of the proxy"),
    ("POST", "/auth/login"): Rule("public"),
    ("POST", "/auth/logout"): Rule("public", note="only forgets the cookie"),
    ("GET", "/auth/me"): Rule(allowed=(Allowed("alice"),)),
    ("POST", "/auth/tokens"): Rule(denied=(Denied("alice", 403, body={"name": "x"}),)),
    ("GET", "/auth/tokens"): Rule(denied=(Denied("alice", EMPTY),), allowed=(Allowed("root"),)),
    ("DELETE", "/auth/tokens/{token_id}"): Rule(denied=(Denied("alice", 404), Denied("padmin", 404))),
    ("GET", "/roles"): Rule(denied=(Denied("alice", EMPTY),), allowed=(Allowed("padmin"),)),
    ("POST", "/roles"): Rule(denied=(Denied("padmin", 403, body=GRANT_ON_B), Denied("alice", 403, body=GRANT_ON_B))),
    ("DELETE", "/roles/{grant_id}"): Rule(denied=(Denied("padmin", 404), Denied("alice", 404))),
    ("POST", "/pools"): Rule(
        denied=(
            Denied("padmin", 403, body=_pool_spec("Matrix one")),
            Denied("alice", 403, body=_pool_spec("Matrix two")),
        )
    ),
    ("GET", "/pools"): Rule(denied=(Denied("alice", EMPTY),), allowed=(Allowed("padmin"),)),
    ("GET", "/pools/{pool_id}"): Rule(
        denied=(Denied("alice", 403), Denied("padmin", 403, pool="b"), Denied("cadmin", 403)),
        allowed=(Allowed("padmin"), Allowed("cadmin", pool="b")),
    ),
    ("GET", "/pools/{pool_id}/entitlement"): Rule(
        denied=(Denied("cadmin", 403), Denied("alice", 403)), allowed=(Allowed("padmin"),)
    ),
    ("PUT", "/pools/{pool_id}"): Rule(denied=(Denied("alice", 403, body="spec"), Denied("cadmin", 403, body="spec"))),
    ("POST", "/pools/{pool_id}/enable"): Rule(denied=(Denied("padmin", 403, pool="b"), Denied("alice", 403))),
    ("POST", "/pools/{pool_id}/disable"): Rule(denied=(Denied("padmin", 403, pool="b"), Denied("alice", 403))),
    ("POST", "/pools/{pool_id}/increase"): Rule(denied=(Denied("alice", 403, body={"by": 1}),)),
    ("POST", "/pools/{pool_id}/shrink"): Rule(denied=(Denied("alice", 403, body={"by": 1}),)),
    ("PUT", "/pools/{pool_id}/entitlement"): Rule(denied=(Denied("alice", 403, body={"users": ["alice", "bob"]}),)),
    ("DELETE", "/pools/{pool_id}"): Rule(denied=(Denied("alice", 403), Denied("padmin", 403, pool="b"))),
    ("POST", "/pools/{pool_id}/claims"): Rule(denied=(Denied("bob", 403), Denied("padmin", 403))),
    ("GET", "/pools/{pool_id}/claims/{request_id}"): Rule(denied=(Denied("bob", 404),), allowed=(Allowed("alice"),)),
    ("POST", "/pools/{pool_id}/assignments"): Rule(denied=(Denied("alice", 403, body={"user": "alice"}),)),
    ("GET", "/desktops"): Rule(denied=(Denied("bob", EMPTY),), allowed=(Allowed("alice"), Allowed("padmin"))),
    ("GET", "/desktops/{desktop_id}"): Rule(
        denied=(Denied("bob", 404), Denied("cadmin", 404)), allowed=(Allowed("alice"), Allowed("padmin"))
    ),
    ("POST", "/desktops/{desktop_id}/events"): Rule("agent", note="test_agent_secret_is_per_desktop"),
    ("POST", "/desktops/{desktop_id}/release"): Rule(denied=(Denied("bob", 404), Denied("cadmin", 404))),
    ("POST", "/desktops/{desktop_id}/disconnect"): Rule(denied=(Denied("bob", 404),)),
    ("POST", "/desktops/{desktop_id}/return"): Rule(denied=OWNER_403_OTHERS_404),
    ("POST", "/desktops/{desktop_id}/power"): Rule(
        denied=(Denied("alice", 403, body={"action": "off"}), Denied("bob", 404, body={"action": "off"}))
    ),
    ("POST", "/desktops/{desktop_id}/detach"): Rule(denied=OWNER_403_OTHERS_404),
    ("GET", "/desktops/{desktop_id}/console"): Rule(denied=(Denied("bob", 404), Denied("cadmin", 404))),
    ("GET", "/desktops/{desktop_id}/log"): Rule(denied=OWNER_403_OTHERS_404),
    ("GET", "/pools/{pool_id}/console-options"): Rule(
        allowed=(Allowed("alice"),), note="the caller's own defaults; nothing of anyone else's"
    ),
    ("PUT", "/pools/{pool_id}/console-options"): Rule(denied=(Denied("bob", 403, body={"protocol": "rdp"}),)),
    ("GET", "/desktops/{desktop_id}/connection.{protocol}"): Rule(
        denied=(Denied("bob", 404), Denied("cadmin", 404)), allowed=(Allowed("alice"), Allowed("padmin"))
    ),
    ("GET", "/me/desktops"): Rule(denied=(Denied("bob", EMPTY),), allowed=(Allowed("alice"),)),
    ("GET", "/audit"): Rule(denied=(Denied("alice", 403), Denied("bob", 403)), allowed=(Allowed("padmin"),)),
    ("POST", "/pools/{pool_id}/release-disconnected"): Rule(denied=(Denied("alice", 403), Denied("cadmin", 403))),
    ("GET", "/pools/{pool_id}/schedules"): Rule(denied=(Denied("alice", 403),), allowed=(Allowed("padmin"),)),
    ("POST", "/pools/{pool_id}/schedules"): Rule(
        denied=(Denied("alice", 403, body={**RULE_BODY, "name": "Other"}), Denied("cadmin", 403, body=RULE_BODY))
    ),
    ("GET", "/pools/{pool_id}/schedules/{name}"): Rule(denied=(Denied("alice", 403),), allowed=(Allowed("padmin"),)),
    ("PUT", "/pools/{pool_id}/schedules/{name}"): Rule(denied=(Denied("alice", 403, body=RULE_BODY),)),
    ("DELETE", "/pools/{pool_id}/schedules/{name}"): Rule(denied=(Denied("alice", 403), Denied("cadmin", 403))),
    ("POST", "/pools/{pool_id}/schedules/{name}/pause"): Rule(denied=(Denied("alice", 403),)),
    ("POST", "/pools/{pool_id}/schedules/{name}/unpause"): Rule(denied=(Denied("alice", 403),)),
    ("POST", "/pools/{pool_id}/schedules/{name}/trigger"): Rule(denied=(Denied("alice", 403),)),
    ("POST", "/pools/{pool_id}/recreate"): Rule(
        denied=(Denied("alice", 403, body={"strategy": "rolling"}), Denied("cadmin", 403))
    ),
    ("GET", "/pools/{pool_id}/rollout"): Rule(denied=(Denied("alice", 403), Denied("cadmin", 403))),
    ("POST", "/pools/{pool_id}/rollout/pause"): Rule(denied=(Denied("alice", 403),)),
    ("POST", "/pools/{pool_id}/rollout/resume"): Rule(denied=(Denied("alice", 403),)),
    ("POST", "/pools/{pool_id}/rollout/cancel"): Rule(denied=(Denied("alice", 403), Denied("padmin", 403, pool="b"))),
    # The web portal (api/portal): pages over the same route functions.
    ("GET", "/"): Rule("public", note="a redirect to /portal"),
    ("GET", "/portal/login"): Rule("public"),
    ("GET", "/portal"): Rule("portal", allowed=(Allowed("alice", status=303),)),
    ("GET", "/portal/desktops"): Rule("portal", allowed=(Allowed("alice"), Allowed("bob"))),
    ("GET", "/portal/desktops/{pool_id}/card"): Rule(
        "portal", denied=(Denied("bob", 403),), allowed=(Allowed("alice"),)
    ),
    ("POST", "/portal/desktops/{pool_id}/connect"): Rule("portal", denied=(Denied("bob", 403), Denied("padmin", 403))),
    ("POST", "/portal/desktops/{pool_id}/release/{desktop_id}"): Rule("portal", denied=(Denied("bob", 404),)),
    ("POST", "/portal/desktops/{pool_id}/disconnect/{desktop_id}"): Rule("portal", denied=(Denied("bob", 404),)),
    ("GET", "/portal/pools"): Rule("portal", denied=(Denied("alice", 403),), allowed=(Allowed("padmin"),)),
    ("GET", "/portal/pools/rows"): Rule("portal", denied=(Denied("alice", HIDDEN), Denied("cadmin", HIDDEN))),
    ("GET", "/portal/pools/new"): Rule(
        "portal", denied=(Denied("alice", 403), Denied("padmin", 403)), allowed=(Allowed("root"),)
    ),
    ("POST", "/portal/pools/new"): Rule("portal", denied=(Denied("alice", 403, form={"step": "1"}),)),
    ("POST", "/portal/pools/new/check"): Rule("portal", denied=(Denied("padmin", 403, form={"step": "1"}),)),
    ("GET", "/portal/pools/{pool_id}"): Rule(
        "portal", denied=(Denied("alice", 403), Denied("padmin", 403, pool="b")), allowed=(Allowed("padmin"),)
    ),
    ("GET", "/portal/pools/{pool_id}/live"): Rule(
        "portal", denied=(Denied("alice", 403),), allowed=(Allowed("padmin"),)
    ),
    ("GET", "/portal/pools/{pool_id}/chart"): Rule(
        "portal", denied=(Denied("cadmin", 403),), allowed=(Allowed("padmin"),)
    ),
    ("POST", "/portal/pools/{pool_id}/{action}"): Rule(
        "portal", denied=(Denied("alice", 403), Denied("padmin", 403, pool="b"))
    ),
    ("POST", "/portal/pools/{pool_id}/entitlement/set"): Rule(
        "portal", denied=(Denied("alice", 403, form={"users": "alice, bob"}),)
    ),
    ("POST", "/portal/pools/{pool_id}/roles/grant"): Rule(
        "portal", denied=(Denied("alice", 403, form={"role": "user", "principal_kind": "user", "principal": "bob"}),)
    ),
    ("POST", "/portal/pools/{pool_id}/roles/{grant_id}/revoke"): Rule(
        "portal", denied=(Denied("alice", 404), Denied("padmin", 404))
    ),
    ("GET", "/portal/admin/desktops/{desktop_id}"): Rule(
        "portal", denied=(Denied("bob", 404), Denied("cadmin", 404)), allowed=(Allowed("alice"), Allowed("padmin"))
    ),
    ("GET", "/portal/admin/desktops/{desktop_id}/state"): Rule("portal", denied=(Denied("bob", 404),)),
    ("POST", "/portal/admin/desktops/{desktop_id}/power"): Rule(
        "portal", denied=(Denied("alice", 403, form={"action": "off"}), Denied("bob", 404, form={"action": "off"}))
    ),
    ("GET", "/portal/admin/desktops/{desktop_id}/console"): Rule("portal", denied=(Denied("bob", 404),)),
    ("GET", "/portal/admin/desktops/{desktop_id}/log"): Rule("portal", denied=OWNER_403_OTHERS_404),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the application serves, its included routers' too (FastAPI nests them)."""

    def walk(routes: list[Any], prefix: str) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for route in routes:
            if isinstance(route, APIRoute):
                found |= {(method, prefix + route.path) for method in route.methods if method != "HEAD"}
            elif hasattr(route, "original_router"):
                found |= walk(route.original_router.routes, prefix + route.include_context.prefix)
        return found

    return walk(list(app.routes), "")


def test_every_endpoint_has_a_line_in_the_matrix() -> None:
    served = api_routes(create_app())
    assert len(served) > 40, "route enumeration found too few endpoints: did FastAPI change how it nests routers?"
    missing = sorted(served - MATRIX.keys())
    assert not missing, f"endpoints without a line in tests/security/test_role_matrix.py MATRIX: {missing}"
    gone = sorted(MATRIX.keys() - served)
    assert not gone, f"MATRIX lines for endpoints that no longer exist: {gone}"
    for key, rule in MATRIX.items():
        if rule.kind in ("signed_in", "portal") and not (rule.denied or rule.allowed):
            raise AssertionError(f"{key}: a signed-in endpoint needs at least one Denied or Allowed line")


async def _setup(api: httpx.AsyncClient) -> dict[str, str]:
    """Pools A and B (tests/test_api_roles.setup_pools), alice's desktop in A, a capacity rule,
    a token and a grant to aim at."""
    a, b = await setup_pools(api)
    root, alice, padmin = who(api, "root"), who(api, "alice"), who(api, "padmin")
    await until(api, f"/pools/{a}", lambda p: p["counts"]["ready"] == 1, padmin)
    claimed = await api.post(f"/pools/{a}/claims", headers={**alice, "Idempotency-Key": "matrix-alice"})
    assert claimed.status_code in (200, 202), claimed.text
    assigned = await until(api, f"/pools/{a}/claims/matrix-alice", lambda c: c["status"] == "assigned", alice)
    desktop = assigned["desktop_id"]
    await until(api, f"/desktops/{desktop}", lambda d: d["state"] == "assigned", alice)
    made = await api.post(f"/pools/{a}/schedules", json=RULE_BODY, headers=root)
    assert made.status_code == 201, made.text
    token = await api.post("/auth/tokens", json={"name": "matrix"}, headers=root)
    grants = (await api.get("/roles", params={"scope": "west"}, headers=root)).json()
    return {
        "a": a,
        "b": b,
        "desktop_id": desktop,
        "request_id": "matrix-alice",
        "name": "Morning",
        "protocol": "rdp",
        "token_id": token.json()["id"],
        "grant_id": str(grants[0]["id"]),
        "action": "disable",
    }


async def test_each_endpoint_refuses_who_may_not_and_serves_who_may(api: httpx.AsyncClient) -> None:
    ids = await _setup(api)
    specs = {pool: (await api.get(f"/pools/{ids[pool]}", headers=who(api, "root"))).json()["spec"] for pool in "ab"}
    served = api_routes(app_of(api))
    problems: list[str] = []
    for (method, path), rule in sorted(MATRIX.items()):
        if (method, path) not in served or rule.kind not in ("signed_in", "portal"):
            continue
        url = path.format(**{**ids, "pool_id": ids["a"]})
        anonymous = await api.request(method, url, json={})
        if rule.kind == "portal":
            location = anonymous.headers.get("location", "")
            if anonymous.status_code != 303 or not location.startswith("/portal/login"):
                problems.append(f"{method} {url} without a sign-in: {anonymous.status_code} {location!r}, not login")
        elif anonymous.status_code != 401:
            problems.append(f"{method} {url} without a sign-in: {anonymous.status_code}, not 401")
        for denied in rule.denied:
            url = path.format(**{**ids, "pool_id": ids[denied.pool]})
            body = denied.body
            if body == "spec":
                body = specs[denied.pool]
            elif body == GRANT_ON_B:
                body = {**GRANT_ON_B, "scope": ids["b"]}
            sent: dict[str, Any] = {"data": denied.form or {}} if rule.kind == "portal" else {"json": body}
            answer = await api.request(method, url, headers=who(api, denied.who), **sent)
            if denied.status == EMPTY:
                if answer.status_code != 200 or answer.json() != []:
                    problems.append(f"{method} {url} as {denied.who}: {answer.status_code} {answer.text[:200]}, not []")
            elif denied.status == HIDDEN:
                if answer.status_code != 200 or ids["a"] in answer.text:
                    problems.append(f"{method} {url} as {denied.who}: {answer.status_code}, shows pool {ids['a']}")
            elif answer.status_code != denied.status:
                problems.append(
                    f"{method} {url} as {denied.who}: {answer.status_code}, not {denied.status}: {answer.text[:200]}"
                )
        for allowed in rule.allowed:
            url = path.format(**{**ids, "pool_id": ids[allowed.pool]})
            answer = await api.request(method, url, headers=who(api, allowed.who))
            if answer.status_code != allowed.status:
                problems.append(
                    f"{method} {url} as {allowed.who}: {answer.status_code}, not {allowed.status}: {answer.text[:200]}"
                )
    assert not problems, "\n".join(p.replace("\r\n", " ")[:300] for p in problems)


async def test_agent_secret_is_per_desktop(api: httpx.AsyncClient) -> None:
    """One desktop's secret cannot report events for another desktop; a forged or missing one neither."""
    root = who(api, "root")
    spec = {"template": TEMPLATE, "name": "Agents", "naming_mask": "agt-", "prestarted": 2, "max_desktops": 2,
            "entitlement": {"groups": ["callcentre"]}}  # fmt: skip
    made = await api.post("/pools", json=spec, headers=root)
    assert made.status_code == 201, made.text
    pool = made.json()["id"]
    await until(api, f"/pools/{pool}", lambda p: p["counts"]["ready"] == 2, root)
    first, second = sorted(d["id"] for d in (await api.get("/desktops", params={"pool": pool}, headers=root)).json())

    def event(desktop: str, secret: str | None) -> Any:
        headers = {"X-Desktop-Secret": secret} if secret is not None else {}
        return api.post(f"/desktops/{desktop}/events", json={"kind": "ready"}, headers=headers)

    own = agent_secret(AGENT_KEY, first)
    assert (await event(first, own)).status_code == 202
    assert (await event(second, own)).status_code == 403  # the first desktop's secret, for the second
    assert (await event(second, agent_secret(AGENT_KEY, second))).status_code == 202
    assert (await event(first, own.upper())).status_code == 403
    assert (await event(first, agent_secret(b"another deployment's key", first))).status_code == 403
    assert (await event(first, "")).status_code == 403
    assert (await event(first, None)).status_code == 422  # the header is required
    # A user's session token is no agent secret.
    alice = who(api, "alice")
    forged = await api.post(f"/desktops/{first}/events", json={"kind": "connect"}, headers=alice)
    assert forged.status_code == 422
    token = alice["Authorization"].removeprefix("Bearer ")[:128]
    assert (await event(first, token)).status_code == 403
