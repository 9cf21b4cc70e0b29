"""The real local OpenStack (tools/minicloud) for the tests in this directory.

`minicloud` brings it up once per test run, or reuses one that is already up
and healthy (e.g. after `make minicloud`), and takes it down at the end of the
session only if it started it. A failed bring-up fails the tests with the log
tail that explains it: these tests never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from activities.cloud import CloudActivities
from activities.cloud_driver import CloudConnections, connect
from tools import minicloud as mc


class MiniCloud(NamedTuple):
    clouds_yaml: Path
    cloud: str
    state_dir: Path


@pytest.fixture(scope="session")
def minicloud() -> Iterator[MiniCloud]:
    state_dir = Path(os.environ.get("DESKPOOL_MINICLOUD_STATE_DIR", str(mc.DEFAULT_STATE_DIR)))
    progress: list[str] = []
    try:
        result = mc.up(state_dir, say=progress.append)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with its log tail
        pytest.fail(
            "minicloud bring-up failed (tools/minicloud; logs under "
            f"{state_dir}/logs):\n{exc}\n--- progress ---\n" + "\n".join(progress),
            pytrace=False,
        )
    try:
        yield MiniCloud(result.clouds_yaml, result.cloud, state_dir)
    finally:
        if result.started:
            mc.down(state_dir, say=progress.append)


@pytest.fixture(scope="session")
def activities(minicloud: MiniCloud) -> CloudActivities:
    """The project's cloud activities over its real openstacksdk driver (no sleeping shortcuts)."""
    return CloudActivities(CloudConnections(minicloud.clouds_yaml).driver)


@pytest.fixture(scope="session")
def sdk(minicloud: MiniCloud) -> Any:
    """A plain openstacksdk connection, to check what the driver did from the cloud's side."""
    return connect(minicloud.clouds_yaml, minicloud.cloud)
