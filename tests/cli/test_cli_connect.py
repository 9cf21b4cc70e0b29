"""connect: claim, wait in line, retry a busy API with the same Idempotency-Key, save the connection file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import FakeClock, Run
from tests.cli.fake_api import ALICE_TOKEN, RDP_FILE, FakeApi

pytestmark = pytest.mark.usefixtures("as_alice")


def test_connect_waits_through_positions_then_saves_the_rdp_file(
    run: Run, api: FakeApi, clock: FakeClock, tmp_path: Path
) -> None:
    api.line = [3, 2, 1]

    result = run("connect", "call-centre")

    assert result.exit_code == 0, result.output
    for position in (3, 2, 1):
        assert f"waiting: position {position} in line" in result.stderr
    (claim,) = api.calls("POST", "/pools/call-centre/claims")
    assert claim.content == b""  # the claimant is the token's user
    assert claim.headers["authorization"] == f"Bearer {ALICE_TOKEN}"
    assert len(api.calls("GET", "/pools/call-centre/claims/req-1")) == 3
    assert clock.sleeps == [2.0, 2.0, 2.0]
    saved = tmp_path / "cc-007.rdp"  # the tests run in tmp_path
    assert saved.read_bytes() == RDP_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert result.stdout.strip() == str(saved)
    assert api.calls("GET", "/desktops/d-7/connection.rdp")


def test_connect_retries_a_503_after_retry_after_with_the_same_idempotency_key(
    run: Run, api: FakeApi, clock: FakeClock, tmp_path: Path
) -> None:
    api.busy = 2

    result = run("connect", "call-centre", "--save", str(tmp_path / "desk.rdp"))

    assert result.exit_code == 0, result.output
    claims = api.calls("POST", "/pools/call-centre/claims")
    assert len(claims) == 3
    keys = {c.headers["idempotency-key"] for c in claims}
    assert len(keys) == 1
    assert keys.pop()
    assert clock.sleeps == [7.0, 7.0]  # the fake answers Retry-After: 7
    assert "the API is busy (too many claims in line: 500); retrying in 7s" in result.stderr
    assert (tmp_path / "desk.rdp").read_bytes() == RDP_FILE


def test_each_connect_uses_a_new_idempotency_key(run: Run, api: FakeApi, tmp_path: Path) -> None:
    run("connect", "call-centre", "--save", str(tmp_path))
    run("connect", "call-centre", "--save", str(tmp_path))

    keys = [c.headers["idempotency-key"] for c in api.calls("POST", "/pools/call-centre/claims")]
    assert len(set(keys)) == 2


def test_connect_spice_saves_a_vv_file_into_a_directory(run: Run, api: FakeApi, tmp_path: Path) -> None:
    target = tmp_path / "files"
    target.mkdir()

    result = run("connect", "call-centre", "--protocol", "spice", "--save", str(target))

    assert result.exit_code == 0, result.output
    assert (target / "cc-007.vv").read_bytes().startswith(b"[virt-viewer]")
    assert api.calls("GET", "/desktops/d-7/connection.vv")
    assert not api.calls("GET", "/pools/call-centre/console-options")


def test_connect_protocol_defaults_to_the_users_console_options(run: Run, api: FakeApi, tmp_path: Path) -> None:
    api.console["call-centre"] = {"protocol": "spice"}

    result = run("connect", "call-centre")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "cc-007.vv").exists()


def test_connect_no_wait_reports_the_place_in_line(run: Run, api: FakeApi, clock: FakeClock) -> None:
    api.line = [5]

    result = run("connect", "call-centre", "--no-wait")

    assert result.exit_code == 0
    assert "waiting: position 5 in line (request req-1)" in result.stdout
    assert not api.calls("GET", "/pools/call-centre/claims/req-1")
    assert clock.sleeps == []


def test_connect_json_prints_the_final_claim_outcome(run: Run, api: FakeApi, tmp_path: Path) -> None:
    api.line = [1]

    result = run("--output", "json", "connect", "call-centre")

    assert result.exit_code == 0
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "assigned"
    assert outcome["desktop_id"] == "d-7"
    assert f"connection file: {tmp_path / 'cc-007.rdp'}" in result.stderr


def test_connect_gives_up_at_the_timeout(run: Run, api: FakeApi, clock: FakeClock) -> None:
    api.line = [9] * 100

    result = run("connect", "call-centre", "--timeout", "10")

    assert result.exit_code == 1
    assert "still waiting in line (request req-1)" in result.stderr
    assert sum(clock.sleeps) == 10


def test_connect_not_entitled_exits_3(run: Run, api: FakeApi) -> None:
    api.pools["call-centre"]["spec"]["entitlement"]["users"] = ["bob"]

    result = run("connect", "call-centre")

    assert result.exit_code == 3
    assert "user: alice is not entitled to pool call-centre (HTTP 403)" in result.stderr


def test_connect_with_an_api_token_in_the_environment(
    run: Run, api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DESKPOOL_TOKEN", ALICE_TOKEN)
    (tmp_path / "xdg" / "deskpool" / "credentials.json").unlink()

    result = run("connect", "call-centre")

    assert result.exit_code == 0, result.output
    assert api.calls("POST", "/pools/call-centre/claims")[0].headers["authorization"] == f"Bearer {ALICE_TOKEN}"
    assert (tmp_path / "cc-007.rdp").exists()


def test_connect_waits_for_a_booting_desktop_before_downloading(
    run: Run, api: FakeApi, clock: FakeClock, tmp_path: Path
) -> None:
    api.booting = 2

    result = run("connect", "call-centre")

    assert result.exit_code == 0, result.output
    assert len(api.calls("GET", "/desktops/d-7/connection.rdp")) == 3
    assert clock.sleeps == [2.0, 2.0]
    assert result.stderr.count("desktop cc-007 is starting") == 1
    assert (tmp_path / "cc-007.rdp").read_bytes() == RDP_FILE


def test_a_rejected_claim_prints_the_reason_and_exits_1(run: Run, api: FakeApi, tmp_path: Path) -> None:
    api.claim_end = "rejected"

    result = run("connect", "call-centre")

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: pool call-centre is disabled (HTTP 409)"
    assert not list(tmp_path.glob("*.rdp"))


def test_a_claim_that_expires_in_line_exits_1(run: Run, api: FakeApi, tmp_path: Path) -> None:
    api.line = [2, 1]
    api.claim_end = "expired"

    result = run("connect", "call-centre")

    assert result.exit_code == 1
    assert "error: claim expired: the claim waited too long" in result.stderr
    assert not api.calls("GET", "/desktops/d-7/connection.rdp")


def test_my_desktops_cards(run: Run, api: FakeApi) -> None:
    result = run("my")

    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["call-centre", "Call", "centre", "connected", "d-1", "-"] in rows
    assert ["labs", "Labs", "waiting", "-", "3"] in rows
    assert json.loads(run("-o", "json", "my").stdout)[1]["position"] == 3


def test_disconnect_and_release(run: Run, api: FakeApi) -> None:
    assert run("disconnect", "d-1").exit_code == 0
    assert api.calls("POST", "/desktops/d-1/disconnect")
    released = run("-o", "json", "release", "d-1")
    assert json.loads(released.stdout) == {"accepted": True, "status": "releasing"}
    assert api.calls("POST", "/desktops/d-1/release")
