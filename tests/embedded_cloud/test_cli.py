"""``python -m tools.embedded_cloud`` as a real process, and its flags."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from openstack import exceptions
from openstack.compute.v2.server import Server
from openstack.connection import Connection

from tools.embedded_cloud.__main__ import _parser, build_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_command_line_server(tmp_path: Path, connect: Callable[..., Connection], boot: Callable[..., Server]) -> None:
    port, clouds_yaml = free_port(), tmp_path / "clouds.yaml"
    command = [
        sys.executable, "-m", "tools.embedded_cloud",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--write-clouds-yaml", str(clouds_yaml), "--build-delay", "0.05",
        "--instances-quota", "1", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base_url}/_admin/health").json()["persistent"]:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"embedded cloud did not start: {process.communicate()[0]!r}")
                time.sleep(0.05)
        written = yaml.safe_load(clouds_yaml.read_text())["clouds"]["embedded"]
        assert written["auth"]["auth_url"] == f"{base_url}/identity/v3"
        assert written["region_name"] == "RegionOne"

        conn = connect(clouds_yaml)
        server = conn.compute.wait_for_server(boot(conn, "cli-desk"), interval=0.02, wait=5)
        assert server.status == "ACTIVE"
        with pytest.raises(exceptions.ForbiddenException, match="Quota exceeded for instances"):
            boot(conn, "over-quota")
        assert (tmp_path / "data" / "embedded_cloud.sqlite3").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit -15).
    assert process.returncode in (0, -signal.SIGTERM)


def test_flags_override_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "cloud.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "seed": {"region": "RegionTwo"},
                "delays": {"build": 9, "stop": 3},
                "faults": {"create_error_rate": 0.5, "instances_quota": 4},
            }
        )
    )
    args = _parser().parse_args(
        ["--config", str(config_file), "--build-delay", "0.1", "--instances-quota", "2", "--outage",
         "--max-requests-per-second", "50", "--random-seed", "3"]
    )  # fmt: skip

    config = build_config(args)

    assert config.seed.region == "RegionTwo"
    assert (config.delays.build, config.delays.stop) == (0.1, 3)
    assert (config.faults.create_error_rate, config.faults.instances_quota) == (0.5, 2)
    assert config.faults.outage is True
    assert config.faults.max_requests_per_second == 50
    assert config.random_seed == 3
    with pytest.raises(ValueError):
        build_config(_parser().parse_args(["--create-error-rate", "1.5"]))
