"""Every portal route asks for a sign-in (the login page, never content), answers refusals as the
API does (403 naming who and what, 404 for what cannot be probed), and bad input with a 4xx that
names the field, never a 500. Over HTTP on the real processes, no browser needed."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
from fastapi.routing import APIRoute

from api.main import create_app
from tests.portal.conftest import api_as

PUBLIC = {("GET", "/"), ("GET", "/portal/login")}


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every route with its full path (FastAPI nests included routers)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            found += _walk(route.original_router.routes, prefix + route.include_context.prefix)
    return found


def portal_routes() -> list[tuple[str, str]]:
    """(method, path) of the portal: its pages, its fragments and actions, and / (the way in)."""
    mine = [(path, r) for path, r in _walk(list(create_app().routes)) if path == "/" or path.startswith("/portal")]
    assert all(not r.include_in_schema for _, r in mine), "portal routes stay out of the OpenAPI schema"
    return sorted({(m, path) for path, r in mine for m in r.methods if m != "HEAD"})


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"action": "enable", "grant_id": "1"}.get(m.group(1), "x"), path)


def test_every_portal_route_needs_a_sign_in(base_url: str) -> None:
    routes = portal_routes()
    assert len(routes) > 20, routes
    anonymous = httpx.Client(base_url=base_url, timeout=30)
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        answer = anonymous.request(method, _concrete(path))
        assert answer.status_code == 303, (method, path, answer.status_code, answer.text[:200])
        assert answer.headers["location"].startswith("/portal/login?next=/portal"), (method, path)
        htmx = anonymous.request(method, _concrete(path), headers={"HX-Request": "true"})
        assert (htmx.status_code, htmx.headers.get("HX-Redirect")) == (204, "/portal/login"), (method, path)
    assert anonymous.get("/").headers["location"] == "/portal"
    assert "Sign in" in anonymous.get("/portal/login").text
    assert anonymous.get("/portal/static/htmx.min.js").status_code == 200
    # A forged cookie is no sign-in either.
    forger = httpx.Client(base_url=base_url, timeout=30, cookies={"deskpool_session": "e30.e30.forged"})
    assert forger.get("/portal/desktops").status_code == 303


def _portal_as(base_url: str, username: str) -> httpx.Client:
    """The portal's cookie, as the login form gets it from POST /auth/login."""
    client = httpx.Client(base_url=base_url, timeout=30)
    assert client.post("/auth/login", json={"username": username, "password": f"demo-{username}"}).status_code == 200
    assert "deskpool_session" in client.cookies
    return client


def test_refusals_and_bad_input_are_clear_4xx(base_url: str) -> None:
    admin_api = api_as(base_url, "admin")
    made = admin_api.post("/pools", json={"name": "Portal access", "naming_mask": "pacc-", "max_desktops": 2,
                                          "entitlement": {"groups": ["teachers"]},
                                          "template": {"image": "win11-golden", "flavor": "vdi.small"}})  # fmt: skip
    assert made.status_code == 201, made.text
    pool_id = made.json()["id"]
    alice, admin = _portal_as(base_url, "alice"), _portal_as(base_url, "admin")

    refused = alice.get("/portal/pools")
    assert refused.status_code == 403 and "alice administers no pool" in refused.text
    page = alice.get(f"/portal/pools/{pool_id}")
    assert page.status_code == 403 and f"alice may not view_pool on pool {pool_id}" in page.text
    assert alice.get("/portal/pools/new").status_code == 403
    # Not entitled (the pool is the teachers'): the claim's own 403, as a flash for htmx.
    connect = alice.post(f"/portal/desktops/{pool_id}/connect", headers={"HX-Request": "true"})
    assert connect.status_code == 403 and connect.headers["HX-Retarget"] == "#flash"
    assert f"alice is not entitled to pool {pool_id}" in connect.text
    # Another user's desktop cannot be probed.
    assert alice.get("/portal/admin/desktops/nowhere.1").status_code == 404

    assert admin.get("/portal/pools/nope").status_code == 404
    bad_window = admin.get(f"/portal/pools/{pool_id}/chart", params={"window": "1y"})
    assert bad_window.status_code == 422 and "window" in bad_window.text
    bad_action = admin.post(f"/portal/pools/{pool_id}/explode")
    assert bad_action.status_code == 422 and "action" in bad_action.text
    bad_power = admin.post("/portal/admin/desktops/x.1/power", data={"action": "melt"}, headers={"HX-Request": "true"})
    assert bad_power.status_code == 422 and "action" in bad_power.text
    bad_role = admin.post(f"/portal/pools/{pool_id}/roles/grant", data={"role": "king", "principal_kind": "user",
                                                                        "principal": "bob"})  # fmt: skip
    assert bad_role.status_code == 422 and "role" in bad_role.text
    nobody = admin.post(f"/portal/pools/{pool_id}/roles/grant", data={"role": "user", "principal_kind": "user",
                                                                      "principal": "nobody-here"})  # fmt: skip
    assert nobody.status_code == 422 and "principal: no user 'nobody-here' in the directory" in unescape(nobody.text)
    bad_step = admin.post("/portal/pools/new", data={"step": "2", "name": "Ok name", "naming_mask": "okm-",
                                                      "max_desktops": "x" * 5000})  # fmt: skip
    assert bad_step.status_code == 422 and "max_desktops" in bad_step.text
