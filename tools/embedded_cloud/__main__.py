"""``python -m tools.embedded_cloud``: serve the embedded cloud until killed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn

from tools.embedded_cloud.app import create_app
from tools.embedded_cloud.config import CloudConfig, load_config_file
from tools.embedded_cloud.runner import CLOUD_NAME, write_clouds_yaml

# --flag -> (section, field) in CloudConfig
_DELAY_FLAGS = ("build", "delete", "stop", "start", "reboot", "rebuild")
_FAULT_FLAGS = (
    "create_error_rate",
    "stuck_build_rate",
    "conflict_rate",
    "throttle_rate",
    "unavailable_rate",
    "instances_quota",
    "max_builds_in_flight",
    "max_requests_per_second",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.embedded_cloud",
        description="OpenStack-compatible fake cloud for deskpool (Keystone, "
        "Nova, Glance, Neutron subsets) with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8774)
    parser.add_argument("--data-dir", type=Path, help="persist servers here")
    parser.add_argument("--config", type=Path, help="YAML/JSON CloudConfig file")
    parser.add_argument(
        "--write-clouds-yaml", type=Path, metavar="PATH", help=f"write a clouds.yaml with cloud '{CLOUD_NAME}'"
    )
    parser.add_argument(
        "--clouds-yaml-auth",
        choices=("password", "v3applicationcredential"),
        default="password",
        help="auth_type written to the clouds.yaml",
    )
    parser.add_argument("--public-url", help="base URL for the service catalog")
    parser.add_argument("--random-seed", type=int)
    parser.add_argument("--log-level", default="info")
    for name in _DELAY_FLAGS:
        parser.add_argument(f"--{name}-delay", type=float, metavar="SECONDS")
    for name in _FAULT_FLAGS:
        kind = float if name.endswith(("rate", "second")) else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind)
    parser.add_argument("--outage", action="store_true", help="start in outage")
    return parser


def build_config(args: argparse.Namespace) -> CloudConfig:
    """Config file first, then explicit command-line flags on top."""
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    delays = data.setdefault("delays", {})
    faults = data.setdefault("faults", {})
    for name in _DELAY_FLAGS:
        if (value := getattr(args, f"{name}_delay")) is not None:
            delays[name] = value
    for name in _FAULT_FLAGS:
        if (value := getattr(args, name)) is not None:
            faults[name] = value
    if args.outage:
        faults["outage"] = True
    for key in ("data_dir", "public_url", "random_seed"):
        if (value := getattr(args, key)) is not None:
            data[key] = value
    return CloudConfig.model_validate(data)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = build_config(args)
    if args.write_clouds_yaml:
        # 0.0.0.0 is a bind address, not somewhere a client can connect to.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        base = config.public_url or f"http://{host}:{args.port}"
        write_clouds_yaml(args.write_clouds_yaml, base, config, auth_type=args.clouds_yaml_auth)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
