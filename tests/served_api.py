"""The real API served by uvicorn on a free loopback port, in a thread: for clients that speak HTTP
(schemathesis, the CLI). Temporal is a port that refuses, so workflow calls meet their 503 path."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from activities.directory import DirectorySettings
from api.main import create_app
from api.settings import ApiSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served_api(data: Path, **overrides: object) -> Iterator[tuple[str, ApiSettings]]:
    settings = ApiSettings(
        temporal_address=f"127.0.0.1:{free_port()}",  # nobody listens there
        database_url=f"sqlite:///{data}/api.db",
        directory=DirectorySettings(backend="builtin"),  # the demo directory: password demo-<name>
        super_users=["admin"],
        secret_key="served-api-test-key",  # type: ignore[arg-type]
        cookie_secure=False,
        **overrides,  # type: ignore[arg-type]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)
