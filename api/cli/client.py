"""ApiClient: one method per API endpoint, every HTTP failure turned into one of two exceptions.

Tests pass an `httpx.MockTransport` as `transport`; nothing else here knows it is being tested.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

Json = Any
DEFAULT_TIMEOUT_S = 30.0


class ApiError(Exception):
    """The API answered 4xx/5xx. `detail` is the body's "detail" (a string or pydantic's error list)."""

    def __init__(self, status: int, detail: Json, body: Json, retry_after: float | None, url: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = body
        self.retry_after = retry_after
        self.url = url


class ApiUnreachable(Exception):
    """No answer: connection refused, DNS, timeout. `maybe_sent` when the request may have arrived."""

    def __init__(self, url: str, reason: str, *, maybe_sent: bool = False) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason
        self.maybe_sent = maybe_sent


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error(response: httpx.Response) -> ApiError:
    try:
        body: Json = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None and isinstance(body, dict) and body.get("reason"):
        detail = body["reason"]  # a rejected or ended claim answers with its outcome
    if detail is None:
        text = body.strip().splitlines()[0] if isinstance(body, str) and body.strip() else ""
        detail = text or response.reason_phrase or f"HTTP {response.status_code}"
    return ApiError(response.status_code, detail, body, _retry_after(response), str(response.request.url))


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "deskpool-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, transport=transport, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Json = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, path, json=body, params=_clean(params or {}) or None, headers=headers)
        except httpx.ConnectError as exc:
            raise ApiUnreachable(url, str(exc) or "connection failed") from exc
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ApiUnreachable(url, "timed out connecting") from exc
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(url, "timed out waiting for an answer", maybe_sent=True) from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(url, str(exc) or type(exc).__name__, maybe_sent=True) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # auth
    def login(self, username: str, password: str) -> Json:
        return self._json("POST", "/auth/login", body={"username": username, "password": password})

    def logout(self) -> None:
        self._json("POST", "/auth/logout")

    def me(self) -> Json:
        return self._json("GET", "/auth/me")

    def create_token(self, name: str, expires_in_days: int | None, *, default: bool = False) -> Json:
        """`expires_in_days` None means never; with `default` and no days the API picks the lifetime."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None or not default:
            body["expires_in_days"] = expires_in_days
        return self._json("POST", "/auth/tokens", body=body)

    def list_tokens(self) -> Json:
        return self._json("GET", "/auth/tokens")

    def revoke_token(self, token_id: str) -> None:
        self._json("DELETE", f"/auth/tokens/{_seg(token_id)}")

    # pools
    def list_pools(self) -> Json:
        return self._json("GET", "/pools")

    def get_pool(self, pool_id: str) -> Json:
        return self._json("GET", f"/pools/{_seg(pool_id)}")

    def create_pool(self, spec: Json) -> Json:
        return self._json("POST", "/pools", body=spec)

    def update_pool(self, pool_id: str, spec: Json) -> Json:
        return self._json("PUT", f"/pools/{_seg(pool_id)}", body=spec)

    def delete_pool(self, pool_id: str, desktops: str | None) -> Json:
        return self._json("DELETE", f"/pools/{_seg(pool_id)}", params={"desktops": desktops})

    def enable_pool(self, pool_id: str) -> Json:
        return self._json("POST", f"/pools/{_seg(pool_id)}/enable")

    def disable_pool(self, pool_id: str) -> Json:
        return self._json("POST", f"/pools/{_seg(pool_id)}/disable")

    def increase_pool(self, pool_id: str, by: int) -> Json:
        return self._json("POST", f"/pools/{_seg(pool_id)}/increase", body={"by": by})

    def recreate_pool(self, pool_id: str, strategy: str) -> Json:
        return self._json("POST", f"/pools/{_seg(pool_id)}/recreate", body={"strategy": strategy})

    def rollout(self, pool_id: str) -> Json:
        return self._json("GET", f"/pools/{_seg(pool_id)}/rollout")

    def get_entitlement(self, pool_id: str) -> Json:
        return self._json("GET", f"/pools/{_seg(pool_id)}/entitlement")

    def set_entitlement(self, pool_id: str, users: list[str], groups: list[str], org_units: list[str]) -> Json:
        body = {"users": users, "groups": groups, "org_units": org_units}
        return self._json("PUT", f"/pools/{_seg(pool_id)}/entitlement", body=body)

    def get_console_options(self, pool_id: str) -> Json:
        return self._json("GET", f"/pools/{_seg(pool_id)}/console-options")

    def set_console_options(self, pool_id: str, options: Json) -> Json:
        return self._json("PUT", f"/pools/{_seg(pool_id)}/console-options", body=options)

    # claims
    def claim(self, pool_id: str, idempotency_key: str) -> Json:
        """The claimant is the token's user; the key makes a retried claim the same claim."""
        headers = {"Idempotency-Key": idempotency_key}
        return self._json("POST", f"/pools/{_seg(pool_id)}/claims", headers=headers)

    def claim_status(self, pool_id: str, request_id: str) -> Json:
        return self._json("GET", f"/pools/{_seg(pool_id)}/claims/{_seg(request_id)}")

    def my_desktops(self) -> Json:
        return self._json("GET", "/me/desktops")

    # roles
    def list_roles(self, principal: str | None, scope_kind: str | None, scope: str | None) -> Json:
        return self._json("GET", "/roles", params={"principal": principal, "scope_kind": scope_kind, "scope": scope})

    def grant_role(self, role: str, principal_kind: str, principal: str, scope_kind: str, scope: str) -> Json:
        body = {"role": role, "principal_kind": principal_kind, "principal": principal,
                "scope_kind": scope_kind, "scope": scope}  # fmt: skip
        return self._json("POST", "/roles", body=body)

    def revoke_role(self, grant_id: str) -> None:
        self._json("DELETE", f"/roles/{_seg(grant_id)}")

    # desktops
    def list_desktops(
        self,
        pool: str | None = None,
        state: str | None = None,
        user: str | None = None,
        template_version: int | None = None,
        include_gone: bool = False,
    ) -> Json:
        params = {"pool": pool, "state": state, "user": user, "template_version": template_version,
                  "include_gone": "true" if include_gone else None}  # fmt: skip
        return self._json("GET", "/desktops", params=params)

    def get_desktop(self, desktop_id: str) -> Json:
        return self._json("GET", f"/desktops/{_seg(desktop_id)}")

    def desktop_action(self, desktop_id: str, action: str) -> Json:
        """release, disconnect, return or detach."""
        return self._json("POST", f"/desktops/{_seg(desktop_id)}/{action}")

    def power(self, desktop_id: str, action: str) -> Json:
        """on, off, restart or force_restart."""
        return self._json("POST", f"/desktops/{_seg(desktop_id)}/power", body={"action": action})

    def console(self, desktop_id: str) -> Json:
        return self._json("GET", f"/desktops/{_seg(desktop_id)}/console")

    def console_log(self, desktop_id: str, lines: int) -> str:
        return self._send("GET", f"/desktops/{_seg(desktop_id)}/log", params={"lines": lines}).text

    def connection_file(self, desktop_id: str, extension: str) -> bytes:
        response = self._send("GET", f"/desktops/{_seg(desktop_id)}/connection.{extension}")
        return response.content

    # audit
    def audit(self, **filters: Any) -> Json:
        return self._json("GET", "/audit", params=filters)
