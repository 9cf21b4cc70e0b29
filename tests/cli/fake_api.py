"""An in-memory deskpool API behind an httpx.MockTransport, following the API contract the CLI codes against.

It records every request, so tests assert paths, bodies and headers, and it has knobs for the
interesting cases: claims that wait in line, 503s with Retry-After, pools that fill slowly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

COUNT_KEYS = (
    "provisioning",
    "ready",
    "standby",
    "starting",
    "assigned",
    "connected",
    "disconnected",
    "releasing",
    "awaiting_return",
    "failed",
)
ADMIN_TOKEN = "tok-admin-session"
ALICE_TOKEN = "tok-alice-session"
RDP_FILE = b"full address:s:10.0.0.7:3389\r\nusername:s:alice\r\n"


def pool_view(pool_id: str, spec: dict[str, Any], **counts: int) -> dict[str, Any]:
    view = {
        "id": pool_id,
        "name": spec.get("name", pool_id),
        "project": spec.get("cloud_project") or f"{pool_id}-project",
        "enabled": True,
        "template_version": 1,
        "spec": spec,
        "counts": {key: counts.get(key, 0) for key in COUNT_KEYS},
        "waiting": 0,
        "restrained_reason": "",
        "fill": "",
        "workflow_url": f"http://ui/namespaces/default/workflows/pool%2F{pool_id}",
    }
    refresh_fill(view)
    return view


def refresh_fill(view: dict[str, Any]) -> None:
    target = max(view["spec"].get("min_desktops", 0), view["spec"].get("prestarted", 0))
    idle = view["counts"]["ready"] + view["counts"]["standby"]
    view["fill"] = f"{min(idle, target)} of {target} desktops ready"


def desktop(desktop_id: str, pool_id: str, state: str, user: str | None = None, version: int = 1) -> dict[str, Any]:
    return {
        "id": desktop_id,
        "pool_id": pool_id,
        "name": f"{pool_id}-{desktop_id}",
        "state": state,
        "user": user,
        "template_version": version,
        "server_id": f"srv-{desktop_id}",
        "address": "10.0.0.7",
        "created_at": "2025-03-01T09:00:00+00:00",
        "updated_at": "2025-03-01T09:05:00.123456+00:00",
        "workflow_url": f"http://ui/namespaces/default/workflows/desktop%2F{desktop_id}",
    }


@dataclass
class FakeApi:
    base_url: str = "http://127.0.0.1:8000"
    requests: list[httpx.Request] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=lambda: {"alice": "demo-alice", "admin": "s3cret-admin"})
    sessions: dict[str, str] = field(default_factory=lambda: {ADMIN_TOKEN: "admin", ALICE_TOKEN: "alice"})
    admins: set[str] = field(default_factory=lambda: {"admin"})
    api_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    desktops: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    grants: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    console: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How many desktops become ready on each GET /pools/{id} (a pool filling while the CLI polls).
    fill_step: int = 1
    # Claims: 503s to answer first, then the places in line to report before assigning.
    busy: int = 0
    line: list[int] = field(default_factory=list)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Instead of assigning: how the claim ends ("rejected" answers 409 at once, "expired" after the line).
    claim_end: str | None = None
    rollout_steps: list[dict[str, Any]] = field(default_factory=list)
    # How many times the connection file answers 409 (the assigned desktop still boots).
    booting: int = 0
    down: bool = False

    def __post_init__(self) -> None:
        spec = {
            "name": "Call centre",
            "cloud": "prod",
            "region": "RegionOne",
            "min_desktops": 2,
            "max_desktops": 10,
            "prestarted": 3,
            "entitlement": {"users": ["alice"], "groups": ["callcentre"], "org_units": []},
        }
        self.pools["call-centre"] = pool_view(
            "call-centre", spec, ready=2, standby=1, assigned=1, connected=2, disconnected=1, provisioning=1, failed=1
        )
        self.pools["call-centre"]["waiting"] = 4
        self.desktops["d-1"] = desktop("d-1", "call-centre", "connected", "alice")
        self.desktops["d-2"] = desktop("d-2", "call-centre", "ready", version=2)
        self.events["d-1"] = [
            {"at": "2025-03-01T09:00:00+00:00", "action": "desktop.create", "actor": "system"},
            {"at": "2025-03-01T09:04:00+00:00", "action": "desktop.assign", "actor": "alice"},
        ]
        self.grants.append(
            {
                "id": 1,
                "role": "pool_admin",
                "principal_kind": "group",
                "principal": "it-staff",
                "scope_kind": "pool",
                "scope": "call-centre",
                "granted_by": "admin",
                "granted_at": "2025-02-01T08:00:00+00:00",
            }
        )
        self.audit.append(
            {
                "id": 9,
                "at": "2025-03-01T09:04:00+00:00",
                "actor": "alice",
                "action": "desktop.assign",
                "pool_id": "call-centre",
                "desktop_id": "d-1",
                "detail": {"request": "r-1"},
            }
        )
        self.transport = httpx.MockTransport(self.handle)

    # helpers for tests
    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def body(self, request: httpx.Request) -> Any:
        return json.loads(request.content) if request.content else None

    # dispatch
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        path = request.url.path
        for method, pattern, handler in self.routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                if pattern != "/auth/login":
                    who = self.caller(request)
                    if who is None:
                        return _json(401, {"detail": "not signed in"})
                    request.extensions["user"] = who
                return handler(request, *match.groups())
        return _json(404, {"detail": "Not Found"})

    def caller(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if token in self.sessions:
            return self.sessions[token]
        for entry in self.api_tokens.values():
            if entry["token"] == token:
                return str(entry["owner"])
        return None

    def admin(self, request: httpx.Request) -> httpx.Response | None:
        if request.extensions["user"] not in self.admins:
            return _json(403, {"detail": "pool_admin role required"})
        return None

    def routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        p = r"/pools/([^/]+)"
        d = r"/desktops/([^/]+)"
        return [
            ("POST", "/auth/login", self.login),
            ("POST", "/auth/logout", self.logout),
            ("GET", "/auth/me", self.me),
            ("POST", "/auth/tokens", self.create_token),
            ("GET", "/auth/tokens", self.list_tokens),
            ("DELETE", r"/auth/tokens/([^/]+)", self.revoke_token),
            ("GET", "/pools", lambda r: _json(200, list(self.pools.values()))),
            ("POST", "/pools", self.create_pool),
            ("GET", p, self.get_pool),
            ("PUT", p, self.put_pool),
            ("DELETE", p, self.delete_pool),
            ("POST", p + r"/(enable|disable)", self.toggle_pool),
            ("POST", p + "/increase", self.increase),
            ("POST", p + "/recreate", self.recreate),
            ("GET", p + "/rollout", self.rollout),
            ("GET", p + "/entitlement", self.entitlement),
            ("PUT", p + "/entitlement", self.put_entitlement),
            ("GET", p + "/console-options", self.get_console),
            ("PUT", p + "/console-options", self.put_console),
            ("POST", p + "/claims", self.claim),
            ("GET", p + r"/claims/([^/]+)", self.claim_status),
            ("GET", "/me/desktops", self.my_desktops),
            ("GET", "/roles", self.list_roles),
            ("POST", "/roles", self.grant),
            ("DELETE", r"/roles/([^/]+)", self.revoke_grant),
            ("GET", "/desktops", self.list_desktops),
            ("GET", d, self.get_desktop),
            ("POST", d + r"/(release|disconnect|return|detach)", self.desktop_action),
            ("POST", d + "/power", lambda r, i: _json(202, {"status": f"power {self.body(r)['action']}"})),
            (
                "GET",
                d + "/console",
                lambda r, i: _json(200, {"url": f"https://console.test/{i}?token=t", "type": "novnc"}),
            ),
            ("GET", d + "/log", lambda r, i: httpx.Response(200, text="boot line\n" * int(r.url.params["lines"]))),
            ("GET", d + r"/connection\.(rdp|vv)", self.connection_file),
            ("GET", "/audit", lambda r: _json(200, self.audit)),
        ]

    # auth
    def login(self, request: httpx.Request) -> httpx.Response:
        body = self.body(request)
        if self.passwords.get(body["username"]) != body["password"]:
            return _json(401, {"detail": "invalid username or password"})
        token = f"tok-{body['username']}-{len(self.sessions)}"
        self.sessions[token] = body["username"]
        user = {
            "username": body["username"],
            "display_name": body["username"].title(),
            "email": f"{body['username']}@example.org",
            "groups": ["callcentre"],
        }
        return _json(
            200, {"token": token, "token_type": "bearer", "expires_at": "2025-03-02T09:00:00+00:00", "user": user}
        )

    def logout(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        self.sessions.pop(token, None)
        return httpx.Response(204)

    def me(self, request: httpx.Request) -> httpx.Response:
        who = request.extensions["user"]
        return _json(
            200,
            {
                "username": who,
                "display_name": who.title(),
                "groups": ["callcentre"],
                "super_user": who in self.admins,
                "grants": [g for g in self.grants if g["principal"] == who],
            },
        )

    def create_token(self, request: httpx.Request) -> httpx.Response:
        body = self.body(request)
        token_id = f"t{len(self.api_tokens) + 1}"
        entry = {
            "id": token_id,
            "name": body["name"],
            "token": f"dpt_{token_id}_secret",
            "created_at": "2025-03-01T10:00:00+00:00",
            "expires_at": None if body.get("expires_in_days", 90) is None else "2025-03-31T10:00:00+00:00",
            "owner": request.extensions["user"],
        }
        self.api_tokens[token_id] = entry
        return _json(201, {k: v for k, v in entry.items() if k != "owner"})

    def list_tokens(self, request: httpx.Request) -> httpx.Response:
        return _json(
            200, [{k: v for k, v in t.items() if k not in ("token", "owner")} for t in self.api_tokens.values()]
        )

    def revoke_token(self, request: httpx.Request, token_id: str) -> httpx.Response:
        if self.api_tokens.pop(token_id, None) is None:
            return _json(404, {"detail": f"token {token_id} not found"})
        return httpx.Response(204)

    # pools
    def pool(self, pool_id: str) -> dict[str, Any] | None:
        return self.pools.get(pool_id)

    def create_pool(self, request: httpx.Request) -> httpx.Response:
        if denied := self.admin(request):
            return denied
        spec = self.body(request)
        errors = []
        if "name" not in spec:
            errors.append({"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": spec})
        if not isinstance(spec.get("min_desktops", 0), int) or spec.get("min_desktops", 0) < 0:
            errors.append(
                {
                    "type": "greater_than_equal",
                    "loc": ["body", "min_desktops"],
                    "msg": "Input should be greater than or equal to 0",
                    "input": spec["min_desktops"],
                }
            )
        if errors:
            return _json(422, {"detail": errors})
        pool_id = re.sub(r"[^a-z0-9]+", "-", spec["name"].lower()).strip("-")
        target = max(spec.get("min_desktops", 0), spec.get("prestarted", 0))
        self.pools[pool_id] = pool_view(pool_id, spec, provisioning=target)
        return _json(201, self.pools[pool_id])

    def get_pool(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        view = self.pool(pool_id)
        if view is None:
            return _json(404, {"detail": f"pool {pool_id} not found"})
        step = min(self.fill_step, view["counts"]["provisioning"])
        view["counts"]["provisioning"] -= step
        view["counts"]["ready"] += step
        refresh_fill(view)
        return _json(200, view)

    def put_pool(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        if denied := self.admin(request):
            return denied
        view = self.pools[pool_id]
        view["spec"] = self.body(request)
        view["template_version"] += 1
        return _json(200, view)

    def delete_pool(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        view = self.pools[pool_id]
        live = sum(view["counts"].values())
        if request.url.params.get("desktops") is None and live:
            return _json(409, {"detail": f"pool {pool_id} has {live} live desktops: say ?desktops=destroy|detach"})
        del self.pools[pool_id]
        return _json(202, {"status": "removing", "live_desktops": live})

    def toggle_pool(self, request: httpx.Request, pool_id: str, what: str) -> httpx.Response:
        self.pools[pool_id]["enabled"] = what == "enable"
        return _json(200, self.pools[pool_id])

    def increase(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        view = self.pools[pool_id]
        by = self.body(request)["by"]
        view["spec"]["min_desktops"] = view["spec"].get("min_desktops", 0) + by
        view["spec"]["prestarted"] = max(view["spec"].get("prestarted", 0), view["spec"]["min_desktops"])
        view["counts"]["provisioning"] += max(view["spec"]["min_desktops"], view["spec"]["prestarted"]) - (
            view["counts"]["ready"] + view["counts"]["standby"] + view["counts"]["provisioning"]
        )
        refresh_fill(view)
        return _json(200, view)

    def recreate(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        return _json(202, {"rollout_id": "ro-1", "strategy": self.body(request)["strategy"], "status": "running"})

    def rollout(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        step = self.rollout_steps.pop(0) if len(self.rollout_steps) > 1 else self.rollout_steps[0]
        return _json(200, step)

    def entitlement(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        ent = self.pools[pool_id]["spec"].get("entitlement", {})
        return _json(200, self._resolved(ent))

    def _resolved(self, ent: dict[str, Any]) -> dict[str, Any]:
        groups = {"callcentre": ["alice", "bob", "carol"], "teachers": ["dave"]}
        sources = [{"kind": "user", "name": u, "user_count": 1, "problem": ""} for u in ent.get("users", [])]
        sources += [
            {
                "kind": "group",
                "name": g,
                "user_count": len(groups.get(g, [])),
                "problem": "" if g in groups else "not found",
            }
            for g in ent.get("groups", [])
        ]
        sources += [{"kind": "org_unit", "name": u, "user_count": 0, "problem": ""} for u in ent.get("org_units", [])]
        names = set(ent.get("users", [])) | {n for g in ent.get("groups", []) for n in groups.get(g, [])}
        return {"total": len(names), "sources": sources, "usernames": sorted(names)}

    def put_entitlement(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        body = self.body(request)
        self.pools[pool_id]["spec"]["entitlement"] = body
        return _json(200, self._resolved(body))

    def get_console(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        default = {
            "protocol": "rdp",
            "full_screen": True,
            "width": None,
            "height": None,
            "multi_monitor": False,
            "usb": False,
            "clipboard": True,
            "audio": True,
            "printers": False,
            "drives": False,
            "smart_cards": False,
        }
        return _json(200, self.console.get(pool_id, default))

    def put_console(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        self.console[pool_id] = self.body(request)
        return _json(200, self.console[pool_id])

    # claims
    def claim(self, request: httpx.Request, pool_id: str) -> httpx.Response:
        if self.busy:
            self.busy -= 1
            return _json(503, {"detail": "too many claims in line: 500"}, headers={"Retry-After": "7"})
        key = request.headers.get("idempotency-key")
        if not key:
            return _json(422, {"detail": [{"loc": ["header", "Idempotency-Key"], "msg": "Field required"}]})
        if request.extensions["user"] not in self.pools[pool_id]["spec"]["entitlement"]["users"]:
            return _json(403, {"detail": f"user: {request.extensions['user']} is not entitled to pool {pool_id}"})
        if key not in self.claims:
            self.claims[key] = {"request_id": f"req-{len(self.claims) + 1}", "user": request.extensions["user"]}
        return self._outcome(self.claims[key], advance=False)

    def claim_status(self, request: httpx.Request, pool_id: str, request_id: str) -> httpx.Response:
        claim = next(c for c in self.claims.values() if c["request_id"] == request_id)
        return self._outcome(claim, advance=True)

    def _outcome(self, claim: dict[str, Any], advance: bool) -> httpx.Response:
        if advance and self.line:
            self.line.pop(0)
        base = {
            "request_id": claim["request_id"],
            "user": claim["user"],
            "desktop_id": None,
            "desktop_name": None,
            "position": None,
            "preparing": False,
            "reason": "",
        }
        if self.claim_end == "rejected":
            return _json(409, {**base, "status": "rejected", "reason": "pool call-centre is disabled"})
        if self.line:
            return _json(202, {**base, "status": "waiting", "position": self.line[0], "preparing": True})
        if self.claim_end == "expired":
            return _json(200, {**base, "status": "expired", "reason": "the claim waited too long"})
        return _json(
            200, {**base, "status": "assigned", "desktop_id": "d-7", "desktop_name": "cc-007", "address": "10.0.0.7"}
        )

    def my_desktops(self, request: httpx.Request) -> httpx.Response:
        return _json(
            200,
            [
                {
                    "pool_id": "call-centre",
                    "pool_name": "Call centre",
                    "state": "connected",
                    "desktop_id": "d-1",
                    "request_id": "req-0",
                    "position": None,
                },
                {
                    "pool_id": "labs",
                    "pool_name": "Labs",
                    "state": "waiting",
                    "desktop_id": None,
                    "request_id": "req-9",
                    "position": 3,
                },
            ],
        )

    # roles
    def list_roles(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        rows = [
            g
            for g in self.grants
            if all(g[k] == params[k] for k in ("principal", "scope_kind", "scope") if k in params)
        ]
        return _json(200, rows)

    def grant(self, request: httpx.Request) -> httpx.Response:
        if denied := self.admin(request):
            return denied
        grant = {
            **self.body(request),
            "id": len(self.grants) + 1,
            "granted_by": request.extensions["user"],
            "granted_at": "2025-03-01T11:00:00+00:00",
        }
        self.grants.append(grant)
        return _json(201, grant)

    def revoke_grant(self, request: httpx.Request, grant_id: str) -> httpx.Response:
        self.grants = [g for g in self.grants if str(g["id"]) != grant_id]
        return httpx.Response(204)

    # desktops
    def list_desktops(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        rows = [
            d
            for d in self.desktops.values()
            if params.get("pool") in (None, d["pool_id"]) and params.get("state") in (None, d["state"])
        ]
        return _json(200, rows)

    def get_desktop(self, request: httpx.Request, desktop_id: str) -> httpx.Response:
        if desktop_id not in self.desktops:
            return _json(404, {"detail": f"desktop {desktop_id} not found"})
        return _json(200, {**self.desktops[desktop_id], "events": self.events.get(desktop_id, [])})

    def desktop_action(self, request: httpx.Request, desktop_id: str, action: str) -> httpx.Response:
        if action == "return":
            return _json(409, {"detail": "desktop is connected, not awaiting return"})
        return _json(200, {"accepted": True, "status": "releasing" if action == "release" else "disconnected"})

    def connection_file(self, request: httpx.Request, desktop_id: str, extension: str) -> httpx.Response:
        if self.booting:
            self.booting -= 1
            return _json(409, {"detail": "desktop is starting: it has no address yet"})
        body = RDP_FILE if extension == "rdp" else b"[virt-viewer]\ntype=spice\n"
        return httpx.Response(200, content=body, headers={"content-type": "application/x-rdp"})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)
