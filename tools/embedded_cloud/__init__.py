"""Embedded OpenStack-compatible cloud for running and testing deskpool.

Entry points:
  * ``python -m tools.embedded_cloud --port 8774 --data-dir DIR
    --write-clouds-yaml PATH`` (see ``__main__``);
  * ``run_in_thread(config)`` context manager for tests, or ``CloudHost``
    to serve a fresh cloud per test from one server (see ``runner``);
  * ``create_app(config)`` for any other ASGI server.
"""

from tools.embedded_cloud.app import create_app
from tools.embedded_cloud.config import CloudConfig, Delays, Faults, SeedData
from tools.embedded_cloud.runner import (
    CloudHost,
    RunningCloud,
    clouds_yaml_document,
    run_in_thread,
    write_clouds_yaml,
)

__all__ = [
    "CloudConfig",
    "CloudHost",
    "Delays",
    "Faults",
    "RunningCloud",
    "SeedData",
    "clouds_yaml_document",
    "create_app",
    "run_in_thread",
    "write_clouds_yaml",
]
