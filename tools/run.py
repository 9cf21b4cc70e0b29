"""`make run`: the whole product on embedded defaults, on this machine, in one terminal.

Starts, in order: the Temporal dev server with its UI (SQLite under data/,
deskpool's search attributes registered), the embedded OpenStack-compatible
cloud, the worker and the API; waits until the API says it is ready; prints
the URLs; on Ctrl-C stops them in reverse order. Every process logs to
data/logs/<name>.log.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.temporal_binaries import temporal_cli
from workflows.search_attributes import dev_server_flags

ROOT = Path(__file__).resolve().parent.parent
# The dev server's SQLite in WAL mode, synced at checkpoints: a crash of any process loses
# nothing (only a power cut could lose the last transactions); see docs/benchmarks.md (B2).
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


@dataclass
class Stack:
    data: Path
    temporal_port: int = 7233
    ui_port: int = 8233
    api_port: int = 8000
    cloud_port: int = 8774
    http_port: int = 7243
    metrics_port: int = 7244
    # The worker's /metrics (deskpool's and the Temporal SDK's metrics).
    worker_metrics_port: int = 9464
    # Extra flags for the embedded cloud (delays, faults) — tests use short ones.
    cloud_args: list[str] = field(default_factory=list)
    # Worker processes on the one task queue (chaos and scale runs use more than one).
    workers: int = 1
    # Settings on top of the defaults below (benchmarks: a generated directory, cloud limits).
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def secret_key(self) -> str:
        """One key per data folder, made on first start and kept (agent secrets derive from it)."""
        path = self.data / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def env(self) -> dict[str, str]:
        clouds = str(self.data / "clouds.yaml")
        return {
            **os.environ,
            "DESKPOOL_SECRET_KEY": self.secret_key,
            "DESKPOOL_TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "DESKPOOL_DATABASE_URL": f"sqlite:///{self.data / 'deskpool.db'}",
            "DESKPOOL_API_PORT": str(self.api_port),
            "DESKPOOL_TEMPORAL_UI_URL": f"http://127.0.0.1:{self.ui_port}",
            "DESKPOOL_CLOUDS_YAML": clouds,
            "DESKPOOL_METRICS_PORT": str(self.worker_metrics_port),
            # The demo directory's administrator is the first super user; plain http on loopback.
            "DESKPOOL_SUPER_USERS": '["admin"]',
            "DESKPOOL_COOKIE_SECURE": "false",
            "OS_CLIENT_CONFIG_FILE": clouds,
            **self.extra_env,
        }

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            # A session of its own: Ctrl-C reaches only us, and we stop the
            # children in order instead of all at once.
            process = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=log, start_new_session=True
            )
        self.processes.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.data}/logs/{name}.log")

    def stop(self) -> None:
        # Interrupts are ignored while stopping and restored after: a process that goes on (a test
        # run stops many stacks) must not keep ignoring them, nor hand that on to its children.
        previous = ignore_interrupts()
        try:
            for _, process in reversed(self.processes):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for _, process in reversed(self.processes):
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def free_ports(n: int) -> list[int]:
    """n TCP ports free on loopback right now (tests and benchmarks run stacks side by side)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def stack_on_free_ports(data: Path, **fields: Any) -> Stack:
    """A Stack whose seven ports are all free ones: it can run beside `make run` and other stacks."""
    temporal, ui, api, cloud, http, metrics, worker_metrics = free_ports(7)
    return Stack(
        data=data,
        temporal_port=temporal,
        ui_port=ui,
        api_port=api,
        cloud_port=cloud,
        http_port=http,
        metrics_port=metrics,
        worker_metrics_port=worker_metrics,
        **fields,
    )


def ignore_interrupts() -> dict[int, Any]:
    """From the first Ctrl-C on: a second one must not cut the orderly stop short. Returns the
    handlers it replaced."""
    return {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}


def wait_for_port(stack: Stack, port: int, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port} within {timeout_s:.0f} s")


def wait_for_ready(stack: Stack, url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {timeout_s:.0f} s: {last}")


def launch(stack: Stack) -> None:
    python = sys.executable
    stack.start(
        "temporal",
        [temporal_cli(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(stack.temporal_port),
         "--ui-port", str(stack.ui_port), "--http-port", str(stack.http_port),
         "--metrics-port", str(stack.metrics_port), "--db-filename", str(stack.data / "temporal.db"),
         "--log-level", "warn", "--ui-disable-news-fetch", *SQLITE_PRAGMAS, *dev_server_flags()],
    )  # fmt: skip
    stack.start(
        "cloud",
        [python, "-m", "tools.embedded_cloud", "--host", "127.0.0.1", "--port", str(stack.cloud_port),
         "--data-dir", str(stack.data / "cloud"), "--write-clouds-yaml", str(stack.data / "clouds.yaml"),
         *stack.cloud_args],
    )  # fmt: skip
    wait_for_port(stack, stack.temporal_port, "Temporal")
    wait_for_port(stack, stack.cloud_port, "the embedded cloud")
    for n in range(stack.workers):
        # Only the first worker serves /metrics on the configured port; the others serve none.
        extra = {} if n == 0 else {"DESKPOOL_METRICS_PORT": "0"}
        stack.start("worker" if n == 0 else f"worker-{n + 1}", [python, "-m", "worker"], extra)
    stack.start("api", [python, "-m", "api"])
    wait_for_ready(stack, f"http://127.0.0.1:{stack.api_port}/readyz")


DEMO_POOL = {
    "name": "Demo call centre",
    "description": "Floating desktops, destroyed after use; made by make run",
    "naming_mask": "demo-",
    "assignment": "floating",
    "release": "destroy",
    "min_desktops": 0,
    "max_desktops": 5,
    "prestarted": 2,
    "timers": {"disconnected_retention_s": 120},
    # The built-in demo directory's call-centre agents: alice, bob and carol.
    "entitlement": {"groups": ["callcentre"]},
    "template": {
        "image": "win11-golden",
        "flavor": "vdi.medium",
        "networks": ["vdi-net"],
        "security_groups": ["vdi-rdp"],
    },
}


def demo_login(base: str, username: str = "admin") -> dict[str, str]:
    """Sign in as a demo directory user (password "demo-<name>"); the Authorization header to send."""
    body = json.dumps({"username": username, "password": f"demo-{username}"}).encode()
    request = urllib.request.Request(f"{base}/auth/login", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return {"Authorization": f"Bearer {json.load(response)['token']}"}


def ensure_demo_pool(stack: Stack) -> str:
    """A working pool on first start, so make run shows desktops with no setup."""
    base = f"http://127.0.0.1:{stack.api_port}"
    auth = demo_login(base)
    with urllib.request.urlopen(urllib.request.Request(f"{base}/pools", headers=auth), timeout=10) as response:
        if json.load(response):
            return "existing pools kept"
    request = urllib.request.Request(
        f"{base}/pools", data=json.dumps(DEMO_POOL).encode(), headers={"Content-Type": "application/json", **auth}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return f"demo pool {json.load(response)['id']!r} created"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="where state and logs are kept")
    parser.add_argument("--exit-when-ready", action="store_true", help="start, check, stop (used by tests)")
    parser.add_argument("--no-demo-pool", action="store_true", help="do not create the demo pool")
    parser.add_argument(
        "--port-base",
        type=int,
        default=None,
        help="use seven ports from here (Temporal, UI, API, cloud, HTTP, Temporal metrics, worker metrics)",
    )
    args = parser.parse_args()
    stack = Stack(data=args.data.resolve())
    if args.port_base is not None:
        base = args.port_base
        stack.temporal_port, stack.ui_port, stack.api_port = base, base + 1, base + 2
        stack.cloud_port, stack.http_port, stack.metrics_port = base + 3, base + 4, base + 5
        stack.worker_metrics_port = base + 6
    stack.data.mkdir(parents=True, exist_ok=True)
    # Started in the background of a non-interactive shell (CI, nohup), a process inherits
    # SIGINT ignored and Python then installs no handler: Ctrl-C must stop us wherever we start.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        launch(stack)
        demo = "" if args.no_demo_pool else ensure_demo_pool(stack)
        print(
            "\ndeskpool is running\n"
            f"  portal          http://127.0.0.1:{stack.api_port}/portal (users' desktops, administrators' pools)\n"
            f"  API docs        http://127.0.0.1:{stack.api_port}/docs\n"
            f"  API ready       http://127.0.0.1:{stack.api_port}/readyz\n"
            f"  API metrics     http://127.0.0.1:{stack.api_port}/metrics\n"
            f"  worker metrics  http://127.0.0.1:{stack.worker_metrics_port}/metrics\n"
            f"  Temporal UI     http://127.0.0.1:{stack.ui_port}\n"
            f"  cloud           http://127.0.0.1:{stack.cloud_port} (embedded, clouds.yaml in {stack.data})\n"
            f"  logs            {stack.data / 'logs'}\n"
            f"  pools           {demo or 'none created'}: http://127.0.0.1:{stack.api_port}/pools\n"
            "  sign in         admin / demo-admin (super user), alice / demo-alice (a user of the demo pool)\n"
            f"  CLI             .venv/bin/deskpool --api-url http://127.0.0.1:{stack.api_port} login\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        if args.exit_when_ready:
            return 0
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        ignore_interrupts()
        print("\nstopping...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"\nmake run failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
