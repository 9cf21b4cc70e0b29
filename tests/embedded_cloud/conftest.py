"""Fixtures: an embedded cloud per test, reached through openstacksdk only.

Every test talks to the cloud the way deskpool's driver does: a clouds.yaml
written by the cloud, ``OS_CLIENT_CONFIG_FILE`` pointing at it and
``openstack.connect(cloud="embedded")``. The ``/_admin`` API (plain httpx)
is used only to change faults and read statistics.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest
from openstack.compute.v2.server import Server
from openstack.connection import Connection
from openstack.identity.v3._proxy import Proxy as IdentityV3

from tools.embedded_cloud import CloudConfig, CloudHost, Delays, RunningCloud

# Real-time delays small enough that the suite runs in seconds. Tests that
# must observe an intermediate state use ``manual_cloud`` instead of timing.
FAST_DELAYS = Delays(build=0.05, delete=0.05, stop=0.05, start=0.05, reboot=0.05, rebuild=0.05)
POLL = 0.02  # wait_for_server/wait_for_delete polling interval
USER_DATA = base64.b64encode(b"#cloud-config\nhostname: desk\n").decode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence openstacksdk's internal RemovedInSDK*Warning noise (about 2000
    per run, raised inside openstacksdk itself) for these tests only. They are
    PendingDeprecationWarnings, so the project's DeprecationWarning filter
    does not catch them."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack.*"))


class ManualClock:
    """A clock tests advance by hand, for exact state-machine steps."""

    def __init__(self) -> None:
        # Starts at real time: keystoneauth compares token expiry with its
        # own clock, so the cloud's clock must not lag behind it.
        self._now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def _config(data_dir: Path | None, **overrides: Any) -> CloudConfig:
    return CloudConfig.model_validate(
        {"delays": FAST_DELAYS.model_dump(), "data_dir": data_dir, "random_seed": 7, **overrides}
    )


@pytest.fixture
def keystone() -> Callable[[Connection], IdentityV3]:
    """``keystone(conn)``: the connection's identity proxy, checked to be v3
    (what version discovery of /identity/v3 must select)."""

    def _keystone(conn: Connection) -> IdentityV3:
        proxy = conn.identity
        assert isinstance(proxy, IdentityV3)
        return proxy

    return _keystone


@pytest.fixture
def make_config() -> Callable[..., CloudConfig]:
    """``make_config(data_dir, **overrides)``: fast delays, seed 7."""
    return _config


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Connection]]:
    """``connect(cloud_or_clouds_yaml, **kwargs)`` exactly like the deskpool
    driver: ``OS_CLIENT_CONFIG_FILE`` + ``openstack.connect(cloud="embedded")``."""
    opened: list[Connection] = []

    def _connect(cloud: RunningCloud | Path, **kwargs: Any) -> Connection:
        clouds_yaml = cloud if isinstance(cloud, Path) else cloud.clouds_yaml
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
        connection = openstack.connect(cloud="embedded", **kwargs)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "cloud-data"


@pytest.fixture(scope="session")
def cloud_host() -> Iterator[CloudHost]:
    """One HTTP server for the session; each test gets a fresh cloud on it."""
    with CloudHost() as host:
        yield host


@pytest.fixture
def cloud(cloud_host: CloudHost, data_dir: Path) -> Iterator[RunningCloud]:
    with cloud_host.serve(_config(data_dir)) as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_cloud(cloud_host: CloudHost, data_dir: Path, clock: ManualClock) -> Iterator[RunningCloud]:
    """A cloud whose time only moves when the test calls ``clock.advance``."""
    # Default (multi-second) delays: nothing completes unless time is advanced.
    with cloud_host.serve(_config(data_dir, delays=Delays().model_dump()), clock=clock) as running:
        yield running


@pytest.fixture
def conn(cloud: RunningCloud, connect: Callable[..., Connection]) -> Connection:
    return connect(cloud)


@pytest.fixture
def manual_conn(manual_cloud: RunningCloud, connect: Callable[..., Connection]) -> Connection:
    return connect(manual_cloud)


@pytest.fixture
def admin(cloud: RunningCloud) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloud.admin_url, timeout=5) as client:
        yield client


@pytest.fixture
def manual_admin(manual_cloud: RunningCloud) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=manual_cloud.admin_url, timeout=5) as client:
        yield client


def _set_faults(admin: httpx.Client, **faults: Any) -> dict[str, Any]:
    response = admin.post("/faults", json=faults)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def set_faults() -> Callable[..., dict[str, Any]]:
    """``set_faults(admin_client, **faults)`` through ``POST /_admin/faults``."""
    return _set_faults


def _boot(conn: Connection, name: str, **extra: Any) -> Server:
    image = conn.image.find_image("win11-golden", ignore_missing=False)
    flavor = conn.compute.find_flavor("vdi.small", ignore_missing=False)
    network = conn.network.find_network("vdi-net", ignore_missing=False)
    attrs: dict[str, Any] = {
        "name": name,
        "image_id": image.id,
        "flavor_id": flavor.id,
        "networks": [{"uuid": network.id}],
        "security_groups": [{"name": "vdi-rdp"}],
        "metadata": {"deskpool:pool": "pool-a"},
        "tags": ["deskpool", "pool:pool-a"],
        "user_data": USER_DATA,
    }
    attrs.update(extra)
    return conn.compute.create_server(**attrs)


@pytest.fixture
def boot() -> Callable[..., Server]:
    """``boot(conn, name, **attrs)``: create a server the way a driver does,
    resolving image, flavor and network by name."""
    return _boot


@pytest.fixture
def boot_active() -> Callable[..., Server]:
    """Like ``boot`` and then ``wait_for_server`` until ACTIVE."""

    def _boot_active(conn: Connection, name: str, **extra: Any) -> Server:
        return conn.compute.wait_for_server(_boot(conn, name, **extra), interval=POLL, wait=5)

    return _boot_active
