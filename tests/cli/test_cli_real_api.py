"""The CLI against the real API (uvicorn on loopback, demo directory): sign-in, roles, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from api.cli.config import Runtime
from api.cli.main import app
from tests.served_api import served_api


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_api(tmp_path_factory.mktemp("cli-api")) as (url, _):
        yield url


def deskpool(base_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--api-url", base_url, *args], obj=Runtime(), input=input, catch_exceptions=False)


def test_login_whoami_grant_and_errors(base_url: str, private_config: Path) -> None:
    assert deskpool(base_url, "whoami").exit_code == 3  # not signed in: the hint to log in
    wrong = deskpool(base_url, "login", "--username", "admin", input="not-it\n")
    assert wrong.exit_code == 3 and "not-it" not in wrong.output
    signed = deskpool(base_url, "login", "--username", "admin", input="demo-admin\n")
    assert signed.exit_code == 0, signed.output
    assert "demo-admin" not in private_config.read_text()
    me = json.loads(deskpool(base_url, "-o", "json", "whoami").stdout)
    assert me["username"] == "admin" and me["super_user"] is True

    granted = deskpool(base_url, "-o", "json", "roles", "grant", "cluster_admin", "--group", "staff", "--cloud", "east")
    assert granted.exit_code == 0, granted.output
    listed = json.loads(deskpool(base_url, "-o", "json", "roles", "list").stdout)
    assert [(g["role"], g["principal"], g["scope"]) for g in listed] == [("cluster_admin", "staff", "east")]
    ghost = deskpool(base_url, "roles", "grant", "user", "--user", "nobody-at-all", "--system")
    assert ghost.exit_code == 1 and "principal" in ghost.output
    assert deskpool(base_url, "pools", "show", "no-such-pool").exit_code == 1
    assert json.loads(deskpool(base_url, "-o", "json", "pools", "list").stdout) == []
