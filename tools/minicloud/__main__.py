"""`python -m tools.minicloud up|down|status [--state-dir DIR]`: see README.md beside this file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.minicloud.control import DEFAULT_STATE_DIR, MiniCloudError, down, status, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.minicloud", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="configs, data, logs, clouds.yaml")
    parser.add_argument("--purge", action="store_true", help="down: also drop the databases, the vhost, the state dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            result = up(args.state_dir)
            print(f"clouds.yaml: {result.clouds_yaml}  cloud: {result.cloud}")
            print(
                f"try: OS_CLIENT_CONFIG_FILE={result.clouds_yaml} .venv/bin/python -c "
                f'\'import openstack; c = openstack.connect(cloud="{result.cloud}"); '
                "print([s.name for s in c.compute.servers()])'"
            )
        elif args.command == "down":
            if not down(args.state_dir, purge=args.purge):
                print("minicloud was not running")
        else:
            report = status(args.state_dir)
            state = "healthy" if report.healthy else ("unhealthy" if report.running else "stopped")
            print(f"minicloud {state}: {report.state_dir}")
            for name, pid in report.processes.items():
                print(f"  {name:15} pid {pid}")
            for problem in report.problems if report.running else []:
                print(f"  problem: {problem}")
            if report.running:
                print(f"  memory: RSS {report.rss_mb:.0f} MiB summed, PSS {report.pss_mb:.0f} MiB")
            if report.clouds_yaml:
                print(f"  clouds.yaml: {report.clouds_yaml} (cloud 'minicloud')")
            return 0 if report.healthy or not report.running else 1
    except MiniCloudError as exc:
        print(f"minicloud {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
