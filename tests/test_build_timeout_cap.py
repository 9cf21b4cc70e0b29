"""DESKPOOL_CLOUD_BUILD_TIMEOUT_S: the worker gives up a server stuck in BUILD after its own cap,
even though the workflow asks for the engine's ten minutes (chaos scenario C3's stuck builds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import CloudActivities
from activities.cloud_driver import CloudConnections
from tools.embedded_cloud.config import CloudConfig, Delays, Faults
from tools.embedded_cloud.runner import run_in_thread
from worker.settings import WorkerSettings
from workflows.activity_io import CreateServerInput, ServerRef
from workflows.pool_spec import Template


def test_a_stuck_build_fails_after_the_workers_cap(tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    config = CloudConfig(delays=Delays(build=0.1), faults=Faults(stuck_build_rate=1.0))
    with run_in_thread(config, clouds_yaml=clouds):
        activities = CloudActivities(CloudConnections(clouds).driver, build_timeout_s=1.0)
        request = CreateServerInput(
            ServerRef("embedded", "cap.1"), "cap-001", "cap", 1, Template(image="win11-golden", flavor="vdi.small"),
            build_timeout_s=600, poll_interval_s=0.1,
        )  # fmt: skip
        with pytest.raises(ApplicationError, match=r"stuck in BUILD for 1s") as caught:
            ActivityEnvironment().run(activities.provision_server, request)
    assert caught.value.non_retryable


def test_the_cap_is_a_setting_off_by_default() -> None:
    assert WorkerSettings().cloud_build_timeout_s is None
    assert WorkerSettings(cloud_build_timeout_s=30).cloud_build_timeout_s == 30
    with pytest.raises(ValueError, match="cloud_build_timeout_s"):
        WorkerSettings(cloud_build_timeout_s=0)
