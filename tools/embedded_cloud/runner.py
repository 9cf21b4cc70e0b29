"""Running the embedded cloud: clouds.yaml writer and in-process test runner."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from tools.embedded_cloud.app import create_app
from tools.embedded_cloud.config import CloudConfig
from tools.embedded_cloud.state import CloudState

CLOUD_NAME = "embedded"


AuthType = Literal["password", "v3applicationcredential"]


def clouds_yaml_document(
    base_url: str,
    config: CloudConfig,
    cloud_name: str = CLOUD_NAME,
    auth_type: AuthType = "password",
) -> dict[str, Any]:
    """A clouds.yaml for the first seeded user (or application credential)."""
    auth_url = f"{base_url.rstrip('/')}/identity/v3"
    auth: dict[str, str]
    if auth_type == "v3applicationcredential":
        credential = config.seed.application_credentials[0]
        auth = {
            "auth_url": auth_url,
            "application_credential_id": credential.id,
            "application_credential_secret": credential.secret,
        }
    else:
        user = config.seed.users[0]
        auth = {
            "auth_url": auth_url,
            "username": user.name,
            "password": user.password,
            "project_name": user.project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        }
    entry = {
        "auth_type": auth_type,
        "auth": auth,
        "region_name": config.seed.region,
        "interface": "public",
        "identity_api_version": 3,
    }
    return {"clouds": {cloud_name: entry}}


def write_clouds_yaml(
    path: Path,
    base_url: str,
    config: CloudConfig,
    cloud_name: str = CLOUD_NAME,
    auth_type: AuthType = "password",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = clouds_yaml_document(base_url, config, cloud_name, auth_type)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass(frozen=True)
class RunningCloud:
    base_url: str
    port: int
    clouds_yaml: Path
    cloud_name: str
    app: FastAPI

    @property
    def state(self) -> CloudState:
        """Direct access to the cloud's state (tests may inspect it)."""
        state: CloudState = self.app.state.cloud
        return state

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/_admin"


class _Dispatcher:
    """ASGI app forwarding to whichever cloud app is currently served.

    Lets one uvicorn server host a fresh cloud per test: starting and stopping
    uvicorn costs ~0.2 s (its shutdown alone sleeps 0.1 s), swapping costs
    nothing. Lifespan events are answered here; ``CloudHost.serve`` closes
    each cloud's store itself.
    """

    def __init__(self) -> None:
        self.current: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        app = self.current
        if app is None:
            await JSONResponse({"detail": "no cloud is being served"}, status_code=503)(scope, receive, send)
            return
        await app(scope, receive, send)


class CloudHost:
    """A uvicorn server in a background thread that serves one cloud at a
    time (``serve``); port 0 picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0) -> None:
        self._dispatcher = _Dispatcher()
        self._timeout = startup_timeout
        # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY
        # on accepted sockets whose proto says TCP, and without it every
        # response (headers and body are two writes) waits ~40 ms for a
        # delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        # Allows an immediate restart on the same port (TIME_WAIT sockets).
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self._dispatcher, log_level="warning", access_log=False, lifespan="on")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="embedded-cloud", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("embedded cloud failed to start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=self._timeout)
        self._sock.close()

    def __enter__(self) -> CloudHost:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @contextmanager
    def serve(
        self,
        config: CloudConfig | None = None,
        *,
        clouds_yaml: Path | None = None,
        cloud_name: str = CLOUD_NAME,
        clock: Callable[[], float] = time.time,
    ) -> Iterator[RunningCloud]:
        """Serve a new cloud built from ``config`` until the block exits.

        Yields a ``RunningCloud`` with the base URL and a written clouds.yaml
        (``clouds_yaml`` path, else ``<data_dir>/clouds.yaml``, else a
        temporary file). ``clock`` replaces wall-clock time for every delay,
        token expiry and rate window, so tests can step through states.
        Serving again with the same ``data_dir`` is a restart: servers,
        projects and even the tokens a client holds are still valid.
        """
        config = config or CloudConfig()
        with tempfile.TemporaryDirectory(prefix="embedded-cloud-") as scratch:
            if clouds_yaml is None:
                clouds_yaml = (config.data_dir or Path(scratch)) / "clouds.yaml"
            write_clouds_yaml(clouds_yaml, self.base_url, config, cloud_name)
            app = create_app(config, clock)
            self._dispatcher.current = app
            try:
                yield RunningCloud(self.base_url, self.port, clouds_yaml, cloud_name, app)
            finally:
                self._dispatcher.current = None
                app.state.cloud.store.close()


@contextmanager
def run_in_thread(
    config: CloudConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clouds_yaml: Path | None = None,
    cloud_name: str = CLOUD_NAME,
    clock: Callable[[], float] = time.time,
    startup_timeout: float = 10.0,
) -> Iterator[RunningCloud]:
    """Start a server in a background thread serving one cloud (see
    ``CloudHost.serve`` for the arguments); stopped when the block exits.
    Starting again on the same ``port`` and ``data_dir`` is a full restart."""
    with (
        CloudHost(host, port, startup_timeout) as cloud_host,
        cloud_host.serve(config, clouds_yaml=clouds_yaml, cloud_name=cloud_name, clock=clock) as running,
    ):
        yield running
