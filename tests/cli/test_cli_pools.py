"""pools: tables, JSON, create/edit from files, validation errors, --wait progress, delete, recreate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import FakeClock, Run
from tests.cli.fake_api import FakeApi

pytestmark = pytest.mark.usefixtures("as_admin")

POOL_YAML = """\
name: Labs
cloud: prod
min_desktops: 2
prestarted: 4
template:
  image: ubuntu-24.04
  flavor: m1.medium
entitlement:
  groups: [teachers]
"""


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(POOL_YAML)
    return path


def test_pools_list_table_has_the_counts(run: Run, api: FakeApi) -> None:
    result = run("pools", "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("ID"))
    assert header.split() == [
        "ID",
        "NAME",
        "ENABLED",
        "READY",
        "IN",
        "USE",
        "PROVISIONING",
        "FAILED",
        "WAITING",
        "FILL",
    ]
    row = next(line for line in lines if line.lstrip().startswith("call-centre"))
    # ready 2, in use 1 assigned + 2 connected + 1 disconnected, provisioning 1, failed 1, waiting 4
    assert row.split() == [
        "call-centre",
        "Call",
        "centre",
        "yes",
        "2",
        "4",
        "1",
        "1",
        "4",
        "3",
        "of",
        "3",
        "desktops",
        "ready",
    ]
    assert api.calls("GET", "/pools")[0].headers["authorization"] == "Bearer tok-admin-session"


def test_pools_list_json_is_exactly_the_api_json(run: Run, api: FakeApi) -> None:
    expected = list(api.pools.values())
    result = run("--output", "json", "pools", "list")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))
    assert result.stderr == ""


def test_pools_show(run: Run, api: FakeApi) -> None:
    result = run("pools", "show", "call-centre")

    assert result.exit_code == 0
    assert "prod/RegionOne" in result.stdout
    assert "min 2, max 10, prestarted 3" in result.stdout
    assert "workflows/pool%2Fcall-centre" in result.stdout


def test_unknown_pool_is_a_one_line_error_exit_1(run: Run) -> None:
    result = run("pools", "show", "nope")

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: pool nope not found (HTTP 404)"


def test_pools_create_posts_the_yaml_file_as_json(run: Run, api: FakeApi, pool_file: Path) -> None:
    result = run("pools", "create", "-f", str(pool_file))

    assert result.exit_code == 0, result.output
    (post,) = api.calls("POST", "/pools")
    assert api.body(post) == {
        "name": "Labs",
        "cloud": "prod",
        "min_desktops": 2,
        "prestarted": 4,
        "template": {"image": "ubuntu-24.04", "flavor": "m1.medium"},
        "entitlement": {"groups": ["teachers"]},
    }
    assert post.headers["content-type"] == "application/json"
    assert "Pool labs created" in result.stdout
    assert not api.calls("GET", "/pools/labs")  # no --wait, no polling


def test_pools_create_reads_json_too(run: Run, api: FakeApi, tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"name": "Json Pool", "min_desktops": 0}))

    result = run("-o", "json", "pools", "create", "--file", str(path))

    assert result.exit_code == 0
    assert json.loads(result.stdout) == api.pools["json-pool"]


def test_validation_errors_name_each_field_and_exit_1(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("min_desktops: -1\n")

    result = run("pools", "create", "-f", str(path))

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr
    assert "  name: Field required" in result.stderr
    assert "  min_desktops: Input should be greater than or equal to 0" in result.stderr
    assert "body" not in result.stderr
    assert result.stdout == ""


def test_a_missing_or_malformed_file_is_a_usage_error(run: Run, api: FakeApi, tmp_path: Path) -> None:
    assert run("pools", "create", "-f", str(tmp_path / "missing.yaml")).exit_code == 2
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert run("pools", "create", "-f", str(tmp_path / "list.yaml")).exit_code == 2
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert run("pools", "create", "-f", str(tmp_path / "broken.yaml")).exit_code == 2
    assert not api.calls("POST", "/pools")


def test_pools_create_wait_polls_every_second_until_filled(
    run: Run, api: FakeApi, clock: FakeClock, pool_file: Path
) -> None:
    result = run("pools", "create", "-f", str(pool_file), "--wait")

    assert result.exit_code == 0, result.output
    # target max(2, 4) = 4; the fake readies one desktop per poll
    assert len(api.calls("GET", "/pools/labs")) == 4
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0]
    assert "pool labs: 0 of 4 desktops ready" in result.stderr
    assert "pool labs: 4 of 4 desktops ready" in result.stderr
    assert api.pools["labs"]["counts"]["ready"] == 4


def test_pools_create_wait_json_prints_only_the_final_pool(run: Run, api: FakeApi, pool_file: Path) -> None:
    result = run("-o", "json", "pools", "create", "-f", str(pool_file), "--wait")

    assert result.exit_code == 0
    final = json.loads(result.stdout)
    assert final["counts"]["ready"] == 4
    assert final == api.pools["labs"]


def test_pools_create_wait_times_out_with_the_current_fill(
    run: Run, api: FakeApi, clock: FakeClock, pool_file: Path
) -> None:
    api.fill_step = 0

    result = run("pools", "create", "-f", str(pool_file), "--wait", "--timeout", "5")

    assert result.exit_code == 1
    assert "timed out after 5s waiting for pool labs: 0 of 4 desktops ready" in result.stderr
    assert sum(clock.sleeps) == 5


def test_pools_edit_puts_the_full_spec(run: Run, api: FakeApi, pool_file: Path) -> None:
    result = run("pools", "edit", "call-centre", "-f", str(pool_file))

    assert result.exit_code == 0
    (put,) = api.calls("PUT", "/pools/call-centre")
    assert api.body(put)["template"] == {"image": "ubuntu-24.04", "flavor": "m1.medium"}
    assert "template version 2" in result.stdout


def test_pools_delete_conflict_then_destroy(run: Run, api: FakeApi) -> None:
    refused = run("pools", "delete", "call-centre", "--yes")
    assert refused.exit_code == 1
    assert "pool call-centre has 9 live desktops" in refused.stderr
    assert "call-centre" in api.pools

    done = run("-o", "json", "pools", "delete", "call-centre", "--desktops", "destroy", "--yes")
    assert done.exit_code == 0
    assert json.loads(done.stdout) == {"status": "removing", "live_desktops": 9}
    assert api.calls("DELETE", "/pools/call-centre")[-1].url.params["desktops"] == "destroy"


def test_pools_delete_asks_first(run: Run, api: FakeApi) -> None:
    result = run("pools", "delete", "call-centre", "--desktops", "detach", input="n\n")

    assert result.exit_code == 1
    assert not api.calls("DELETE", "/pools/call-centre")


def test_pools_delete_rejects_an_unknown_choice(run: Run, api: FakeApi) -> None:
    assert run("pools", "delete", "call-centre", "--desktops", "explode", "--yes").exit_code == 2


def test_enable_disable(run: Run, api: FakeApi) -> None:
    assert run("pools", "disable", "call-centre").exit_code == 0
    assert api.pools["call-centre"]["enabled"] is False
    result = run("-o", "json", "pools", "enable", "call-centre")
    assert json.loads(result.stdout)["enabled"] is True


def test_increase_wait(run: Run, api: FakeApi, clock: FakeClock) -> None:
    result = run("pools", "increase", "call-centre", "--by", "2", "--wait")

    assert result.exit_code == 0, result.output
    assert api.body(api.calls("POST", "/pools/call-centre/increase")[0]) == {"by": 2}
    # min 4, prestarted max(3, 4) = 4; 3 idle, the rest provisioned one per poll
    assert api.pools["call-centre"]["counts"]["ready"] + api.pools["call-centre"]["counts"]["standby"] >= 4
    assert "4 of 4 desktops ready" in result.stdout


def test_recreate_wait_shows_done_of_total(run: Run, api: FakeApi, clock: FakeClock) -> None:
    api.rollout_steps = [
        {"status": "running", "done": 0, "total": 3},
        {"status": "running", "done": 2, "total": 3},
        {"status": "completed", "done": 3, "total": 3},
    ]

    result = run("pools", "recreate", "call-centre", "--strategy", "immediate", "--wait")

    assert result.exit_code == 0, result.output
    assert api.body(api.calls("POST", "/pools/call-centre/recreate")[0]) == {"strategy": "immediate"}
    assert "recreate call-centre: running, 2 of 3 desktops recreated" in result.stderr
    assert "completed, 3 of 3 desktops recreated" in result.stdout
    assert len(clock.sleeps) == 2


def test_recreate_failed_rollout_exits_1(run: Run, api: FakeApi) -> None:
    api.rollout_steps = [{"status": "failed", "done": 1, "total": 3}]

    result = run("pools", "recreate", "call-centre", "--wait")

    assert result.exit_code == 1
    assert "failed, 1 of 3" in result.stderr


def test_recreate_wait_stops_when_the_rollout_pauses_itself(run: Run, api: FakeApi, clock: FakeClock) -> None:
    api.rollout_steps = [
        {"status": "running", "done": 0, "total": 3},
        {"status": "paused", "done": 0, "total": 3, "paused_reason": "canary vd-004 failed: quota"},
    ]

    result = run("pools", "recreate", "call-centre", "--wait", "--timeout", "600")

    assert result.exit_code == 1
    assert "paused (canary vd-004 failed: quota)" in result.stderr
    assert len(clock.sleeps) == 1, "it must not poll on until the timeout"


def test_recreate_without_wait_prints_the_rollout(run: Run, api: FakeApi) -> None:
    result = run("-o", "json", "pools", "recreate", "call-centre")

    assert json.loads(result.stdout) == {"rollout_id": "ro-1", "strategy": "rolling", "status": "running"}
    assert not api.calls("GET", "/pools/call-centre/rollout")


def test_console_options_show_and_change(run: Run, api: FakeApi) -> None:
    shown = run("console-options", "call-centre")
    assert shown.exit_code == 0
    assert "full screen" in shown.stdout
    assert not api.calls("PUT", "/pools/call-centre/console-options")

    changed = run(
        "-o",
        "json",
        "console-options",
        "call-centre",
        "--protocol",
        "spice",
        "--windowed",
        "--width",
        "1920",
        "--no-audio",
        "--usb",
    )
    assert changed.exit_code == 0, changed.output
    body = api.body(api.calls("PUT", "/pools/call-centre/console-options")[0])
    assert body["protocol"] == "spice"
    assert body["full_screen"] is False
    assert body["width"] == 1920
    assert body["audio"] is False
    assert body["usb"] is True
    assert body["clipboard"] is True  # untouched settings are kept
    assert json.loads(changed.stdout) == body
