"""desktops, logs and events: filters become query parameters, tables and JSON."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Run
from tests.cli.fake_api import FakeApi

pytestmark = pytest.mark.usefixtures("as_admin")


def test_desktops_list_sends_the_filters(run: Run, api: FakeApi) -> None:
    result = run(
        "desktops", "list", "--pool", "call-centre", "--state", "ready", "--user", "bob", "--version", "2", "--all"
    )

    assert result.exit_code == 0, result.output
    params = dict(api.calls("GET", "/desktops")[0].url.params)
    assert params == {
        "pool": "call-centre",
        "state": "ready",
        "user": "bob",
        "template_version": "2",
        "include_gone": "true",
    }


def test_desktops_list_without_filters_sends_none(run: Run, api: FakeApi) -> None:
    result = run("desktops", "list")

    assert dict(api.calls("GET", "/desktops")[0].url.params) == {}
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [
        "d-1",
        "call-centre",
        "call-centre-d-1",
        "connected",
        "alice",
        "1",
        "10.0.0.7",
        "2025-03-01",
        "09:05:00Z",
    ] in rows
    assert ["d-2", "call-centre", "call-centre-d-2", "ready", "-", "2", "10.0.0.7", "2025-03-01", "09:05:00Z"] in rows


def test_desktops_list_json(run: Run, api: FakeApi) -> None:
    result = run("-o", "json", "desktops", "list")

    assert json.loads(result.stdout) == list(api.desktops.values())


def test_desktops_show_has_the_event_history(run: Run, api: FakeApi) -> None:
    result = run("desktops", "show", "d-1")

    assert result.exit_code == 0
    assert "srv-d-1" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["2025-03-01", "09:04:00Z", "desktop.assign", "alice"] in rows
    assert ["2025-03-01", "09:00:00Z", "desktop.create", "system"] in rows


def test_desktops_show_json_includes_events(run: Run, api: FakeApi) -> None:
    result = run("-o", "json", "desktops", "show", "d-1")

    assert json.loads(result.stdout) == {**api.desktops["d-1"], "events": api.events["d-1"]}


def test_logs_is_the_desktop_history(run: Run, api: FakeApi) -> None:
    table = run("logs", "d-1")
    assert "desktop.assign" in table.stdout
    assert api.calls("GET", "/desktops/d-1")

    as_json = run("-o", "json", "logs", "d-1")
    assert json.loads(as_json.stdout) == api.events["d-1"]


def test_desktop_actions(run: Run, api: FakeApi) -> None:
    released = run("desktops", "release", "d-1")
    assert released.exit_code == 0
    assert "Desktop d-1 released (releasing)." in released.stdout
    assert api.calls("POST", "/desktops/d-1/release")

    assert run("desktops", "disconnect", "d-1").exit_code == 0
    assert api.calls("POST", "/desktops/d-1/disconnect")

    refused = run("desktops", "return", "d-1")
    assert refused.exit_code == 1
    assert "desktop is connected, not awaiting return (HTTP 409)" in refused.stderr


@pytest.mark.parametrize(("state", "on"), [("on", True), ("off", False)])
def test_power(run: Run, api: FakeApi, state: str, on: bool) -> None:
    result = run("desktops", "power", "d-2", state)

    assert result.exit_code == 0
    assert api.body(api.calls("POST", "/desktops/d-2/power")[0]) == {"action": state}


def test_power_needs_on_or_off(run: Run, api: FakeApi) -> None:
    assert run("desktops", "power", "d-2", "sideways").exit_code == 2
    assert not api.calls("POST", "/desktops/d-2/power")


def test_events_filters_and_table(run: Run, api: FakeApi) -> None:
    result = run(
        "events",
        "--pool",
        "call-centre",
        "--desktop",
        "d-1",
        "--actor",
        "alice",
        "--action",
        "desktop.assign",
        "--since",
        "2025-03-01T00:00:00Z",
        "--until",
        "2025-03-02",
        "--limit",
        "50",
    )

    assert result.exit_code == 0, result.output
    params = dict(api.calls("GET", "/audit")[0].url.params)
    assert params == {
        "pool": "call-centre",
        "desktop": "d-1",
        "actor": "alice",
        "action": "desktop.assign",
        "since": "2025-03-01T00:00:00Z",
        "until": "2025-03-02",
        "limit": "50",
    }
    row = next(line for line in result.stdout.splitlines() if "desktop.assign" in line)
    assert row.split() == [
        "2025-03-01",
        "09:04:00Z",
        "alice",
        "desktop.assign",
        "call-centre",
        "d-1",
        '{"request":"r-1"}',
    ]


def test_events_since_accepts_an_age(run: Run, api: FakeApi) -> None:
    run("events", "--since", "2h")

    since = api.calls("GET", "/audit")[0].url.params["since"]
    assert since.endswith("+00:00")
    assert "T" in since


def test_events_json(run: Run, api: FakeApi) -> None:
    result = run("-o", "json", "events")

    assert json.loads(result.stdout) == api.audit


def test_restart_detach_console_and_log(run: Run, api: FakeApi) -> None:
    assert run("desktops", "power", "d-2", "force_restart").exit_code == 0
    assert api.body(api.calls("POST", "/desktops/d-2/power")[-1]) == {"action": "force_restart"}
    detached = run("desktops", "detach", "d-2")
    assert detached.exit_code == 0 and api.calls("POST", "/desktops/d-2/detach")
    console = run("desktops", "console", "d-2")
    assert console.stdout.strip() == "https://console.test/d-2?token=t"
    log = run("desktops", "log", "d-2", "--lines", "3")
    assert log.stdout == "boot line\n" * 3
    assert api.calls("GET", "/desktops/d-2/log")[0].url.params["lines"] == "3"
