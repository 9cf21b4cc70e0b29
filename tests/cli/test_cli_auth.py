"""login / logout / whoami / tokens, credentials handling, error mapping and exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from api.cli.client import ApiClient, ApiError, ApiUnreachable
from tests.cli.conftest import Run
from tests.cli.fake_api import ADMIN_TOKEN, FakeApi


def test_login_prompts_for_a_hidden_password_and_saves_a_0600_credentials_file(
    run: Run, api: FakeApi, private_config: Path
) -> None:
    result = run("login", "--username", "alice", input="demo-alice\n")

    assert result.exit_code == 0, result.output
    assert "demo-alice" not in result.output  # neither echoed nor printed
    assert "Logged in to http://127.0.0.1:8000 as alice" in result.stdout
    (login,) = api.calls("POST", "/auth/login")
    assert api.body(login) == {"username": "alice", "password": "demo-alice"}
    assert "authorization" not in login.headers
    assert stat.S_IMODE(private_config.stat().st_mode) == 0o600
    saved = json.loads(private_config.read_text())
    assert set(saved) == {"api_url", "token", "expires_at", "username"}
    assert saved["username"] == "alice"
    assert saved["expires_at"] == "2025-03-02T09:00:00+00:00"
    assert api.sessions[saved["token"]] == "alice"
    assert "demo-alice" not in private_config.read_text()


def test_login_asks_for_the_username_when_not_given_and_json_never_prints_the_token(
    run: Run, api: FakeApi, private_config: Path
) -> None:
    result = run("--output", "json", "login", input="alice\ndemo-alice\n")

    assert result.exit_code == 0, result.output
    # CliRunner echoes typed input to stdout (a terminal would echo it on the tty, not the pipe).
    assert result.stdout.startswith(" alice\n")
    answer = json.loads(result.stdout[result.stdout.index("{") :])
    assert answer["user"]["username"] == "alice"
    assert "token" not in answer
    token = json.loads(private_config.read_text())["token"]
    assert token not in result.output
    assert "demo-alice" not in result.output


def test_wrong_password_exits_3_with_the_api_detail_and_saves_nothing(
    run: Run, api: FakeApi, private_config: Path
) -> None:
    result = run("login", "-u", "alice", input="wrong-password\n")

    assert result.exit_code == 3
    assert "invalid username or password (HTTP 401)" in result.stderr
    assert "wrong-password" not in result.output
    assert not private_config.exists()


def test_commands_send_the_saved_token_and_whoami_shows_the_grants(run: Run, api: FakeApi) -> None:
    run("login", "-u", "admin", input="s3cret-admin\n")
    api.grants.append(
        {
            "id": 2,
            "role": "super_user",
            "principal_kind": "user",
            "principal": "admin",
            "scope_kind": "system",
            "scope": "",
            "granted_by": "setup",
            "granted_at": None,
        }
    )

    result = run("whoami")

    assert result.exit_code == 0, result.output
    (me,) = api.calls("GET", "/auth/me")
    assert me.headers["authorization"].startswith("Bearer tok-admin-")
    assert "admin" in result.stdout
    assert "super_user" in result.stdout
    assert "user:admin" in result.stdout
    assert "system" in result.stdout


def test_whoami_json_is_the_api_json(run: Run, api: FakeApi, as_admin: None) -> None:
    result = run("-o", "json", "whoami")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "username": "admin",
        "display_name": "Admin",
        "groups": ["callcentre"],
        "super_user": True,
        "grants": [],
    }


def test_env_token_overrides_the_saved_one(run: Run, api: FakeApi, as_alice: None, monkeypatch) -> None:
    monkeypatch.setenv("DESKPOOL_TOKEN", ADMIN_TOKEN)

    assert run("whoami").exit_code == 0
    assert api.calls("GET", "/auth/me")[0].headers["authorization"] == f"Bearer {ADMIN_TOKEN}"


def test_a_saved_token_is_never_sent_to_another_api_url(run: Run, api: FakeApi, as_admin: None) -> None:
    result = run("--api-url", "http://elsewhere.example:8000", "whoami")

    assert result.exit_code == 3
    request = api.requests[-1]
    assert request.url.host == "elsewhere.example"
    assert "authorization" not in request.headers
    assert "hint: run `deskpool login --api-url http://elsewhere.example:8000`" in result.stderr


def test_not_logged_in_exits_3_with_a_login_hint(run: Run, api: FakeApi) -> None:
    result = run("pools", "list")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert "error: not signed in (HTTP 401)" in result.stderr
    assert "hint: run `deskpool login`" in result.stderr


def test_forbidden_exits_3(run: Run, api: FakeApi, as_alice: None, tmp_path: Path) -> None:
    spec = tmp_path / "pool.yaml"
    spec.write_text("name: Labs\nmin_desktops: 1\n")

    result = run("pools", "create", "-f", str(spec))

    assert result.exit_code == 3
    assert "pool_admin role required (HTTP 403)" in result.stderr


def test_connection_refused_prints_the_url_tried(run: Run, api: FakeApi, as_admin: None) -> None:
    api.down = True

    result = run("pools", "list")

    assert result.exit_code == 1
    assert "cannot reach the deskpool API at http://127.0.0.1:8000/pools" in result.stderr
    assert "Connection refused" in result.stderr


def test_api_url_from_the_environment(run: Run, api: FakeApi, monkeypatch) -> None:
    monkeypatch.setenv("DESKPOOL_API_URL", "http://deskpool.example/")
    monkeypatch.setenv("DESKPOOL_TOKEN", ADMIN_TOKEN)

    assert run("pools", "list").exit_code == 0
    assert str(api.requests[-1].url) == "http://deskpool.example/pools"


def test_logout_tells_the_api_and_deletes_the_credentials(run: Run, api: FakeApi, private_config: Path) -> None:
    run("login", "-u", "alice", input="demo-alice\n")
    token = json.loads(private_config.read_text())["token"]

    result = run("logout")

    assert result.exit_code == 0
    (logout,) = api.calls("POST", "/auth/logout")
    assert logout.headers["authorization"] == f"Bearer {token}"
    assert token not in api.sessions
    assert not private_config.exists()


def test_credentials_respect_xdg_config_home(run: Run, api: FakeApi, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))

    run("login", "-u", "alice", input="demo-alice\n")

    assert (tmp_path / "elsewhere" / "deskpool" / "credentials.json").exists()


def test_tokens_create_list_revoke(run: Run, api: FakeApi, as_admin: None) -> None:
    created = run("tokens", "create", "ci", "--days", "30")
    assert created.exit_code == 0, created.output
    assert api.body(api.calls("POST", "/auth/tokens")[0]) == {"name": "ci", "expires_in_days": 30}
    assert "dpt_t1_secret" in created.stdout
    assert "only time the token is shown" in created.stderr

    listed = run("-o", "json", "tokens", "list")
    assert json.loads(listed.stdout) == [
        {"id": "t1", "name": "ci", "created_at": "2025-03-01T10:00:00+00:00", "expires_at": "2025-03-31T10:00:00+00:00"}
    ]
    table = run("tokens", "list")
    assert "ci" in table.stdout
    assert "dpt_t1_secret" not in table.stdout

    revoked = run("tokens", "revoke", "t1")
    assert revoked.exit_code == 0
    assert api.calls("DELETE", "/auth/tokens/t1")
    assert run("tokens", "revoke", "t1").exit_code == 1


def test_token_lifetime_defaults_to_the_apis_or_never_on_request(run: Run, api: FakeApi, as_admin: None) -> None:
    result = run("-o", "json", "tokens", "create", "default")
    assert api.body(api.calls("POST", "/auth/tokens")[0]) == {"name": "default"}
    assert json.loads(result.stdout)["token"] == "dpt_t1_secret"

    run("tokens", "create", "forever", "--no-expiry")
    assert api.body(api.calls("POST", "/auth/tokens")[1]) == {"name": "forever", "expires_in_days": None}

    assert run("tokens", "create", "both", "--no-expiry", "--days", "3").exit_code == 2
    assert len(api.calls("POST", "/auth/tokens")) == 2


def test_api_client_maps_errors_and_can_be_used_directly(api: FakeApi) -> None:
    client = ApiClient("http://127.0.0.1:8000/", ADMIN_TOKEN, transport=api.transport)

    assert client.get_pool("call-centre")["id"] == "call-centre"
    with pytest.raises(ApiError) as caught:
        client.get_pool("nope")
    assert (caught.value.status, caught.value.detail) == (404, "pool nope not found")
    assert caught.value.url == "http://127.0.0.1:8000/pools/nope"
    api.down = True
    with pytest.raises(ApiUnreachable) as unreachable:
        client.list_pools()
    assert unreachable.value.url == "http://127.0.0.1:8000/pools"
    assert not unreachable.value.maybe_sent
