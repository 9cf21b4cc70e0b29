"""Sign-in through the API with the built-in directory, and with a directory that is down."""

from __future__ import annotations

from pathlib import Path

from activities.directory import DirectorySettings
from api.settings import ApiSettings
from tests.api_client import api_client


def _settings(tmp_path: Path, directory: DirectorySettings) -> ApiSettings:
    return ApiSettings(temporal_address="127.0.0.1:1", database_url=f"sqlite:///{tmp_path}/x.db", directory=directory)


async def test_demo_user_signs_in_and_wrong_password_is_401(tmp_path: Path) -> None:
    async with api_client(_settings(tmp_path, DirectorySettings(backend="builtin"))) as (_, client):
        ok = await client.post("/auth/login", json={"username": "alice", "password": "demo-alice"})
        wrong = await client.post("/auth/login", json={"username": "alice", "password": "nope"})
        injected = await client.post("/auth/login", json={"username": "*)(uid=*", "password": "x"})
        empty = await client.post("/auth/login", json={"username": "alice", "password": ""})
    assert ok.status_code == 200
    assert ok.json()["user"]["username"] == "alice" and "callcentre" in ok.json()["user"]["groups"]
    assert ok.json()["token_type"] == "bearer" and ok.json()["token"]
    cookie = ok.headers["set-cookie"].lower()
    assert "deskpool_session=" in cookie and "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert wrong.status_code == 401 and injected.status_code == 401
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "password"]
    assert "demo-alice" not in wrong.text


async def test_directory_down_answers_503_quickly_not_500(tmp_path: Path) -> None:
    down = DirectorySettings(
        backend="ldap",
        urls=["ldap://127.0.0.1:1"],
        base_dn="dc=example,dc=test",
        bind_dn="cn=svc,dc=example,dc=test",
        bind_password="secret",
        server_kind="openldap",
        connect_timeout_s=1,
        receive_timeout_s=1,
    )
    async with api_client(_settings(tmp_path, down)) as (_, client):
        response = await client.post("/auth/login", json={"username": "alice", "password": "x"})
    assert response.status_code == 503
    assert response.json() == {"detail": "directory unavailable"}
    assert response.headers["retry-after"] == "5"


async def test_session_token_and_cookie_sign_requests_in_until_logout(tmp_path: Path) -> None:
    settings = _settings(tmp_path, DirectorySettings(backend="builtin"))
    settings.cookie_secure = False  # the test client speaks plain http
    async with api_client(settings) as (_, client):
        assert (await client.get("/auth/me")).status_code == 401
        login = await client.post("/auth/login", json={"username": "alice", "password": "demo-alice"})
        token = login.json()["token"]
        by_cookie = await client.get("/auth/me")
        assert by_cookie.status_code == 200 and by_cookie.json()["username"] == "alice"
        await client.post("/auth/logout")
        client.cookies.clear()
        assert (await client.get("/auth/me")).status_code == 401
        by_bearer = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert by_bearer.status_code == 200 and "callcentre" in by_bearer.json()["groups"]
        forged = await client.get("/auth/me", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert forged.status_code == 401 and forged.headers["www-authenticate"] == "Bearer"
