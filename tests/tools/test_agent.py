"""The reference in-guest agent against a local stand-in for deskpool's API and the metadata service.

The stand-in is a stdlib http.server on 127.0.0.1 (a free port) that records
every request and answers event posts from a script. Sleeps are injected, so
retries and polls take no time and nothing depends on timing.
"""

from __future__ import annotations

import ast
import json
import logging
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tools.agent import agent
from tools.agent.agent import (
    FAILED,
    REJECTED,
    SENT,
    CommandIdleSource,
    CommandSessionSource,
    Config,
    EventSender,
    HttpClient,
    Watcher,
    main,
)

SECRET = "5ec12e7" + "c0ffee" * 8
DESKTOP_ID = "pool-a1b2.7"
METADATA_PATH = "/openstack/latest/meta_data.json"
AGENT_FILE = Path(agent.__file__)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeDeskpool:
    """Serves the metadata document and records event posts; answers them from `responses`, then 202."""

    meta: dict[str, str] = field(
        default_factory=lambda: {"deskpool_desktop": DESKTOP_ID, "deskpool_agent_secret": SECRET}
    )
    responses: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    @property
    def metadata_url(self) -> str:
        return self.url + METADATA_PATH

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def kinds(self) -> list[str]:
        return [r.json()["kind"] for r in self.posts]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake.requests.append(
                    Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                )

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._record()
                if self.path == METADATA_PATH:
                    self._answer(200, json.dumps({"uuid": "a-server", "meta": fake.meta}).encode())
                else:
                    self._answer(404, b'{"detail": "not found"}')

            def do_POST(self) -> None:
                self._record()
                if fake.responses:
                    self._answer(*fake.responses.pop(0))
                else:
                    self._answer(202, b'{"status": "accepted"}')

        return Handler


@pytest.fixture
def server() -> Iterator[FakeDeskpool]:
    fake = FakeDeskpool()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with the agent's debug logging captured; none may show the secret."""
    caplog.set_level(logging.DEBUG, logger="deskpool.agent")
    yield
    assert SECRET not in caplog.text
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def no_sleep(seconds: float) -> None:
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(server: FakeDeskpool, *argv: str, sleeps: list[float] | None = None, **environ: str) -> int:
    args = [*argv, "--metadata-url", server.metadata_url, "--backoff-s", "1", "--verbose"]
    if "--api-url" not in argv:
        args += ["--api-url", server.url]
    return main(args, environ=environ, sleep=(sleeps if sleeps is not None else []).append)


# --- send -----------------------------------------------------------------------


def test_send_posts_the_event_with_the_secret_header(server: FakeDeskpool) -> None:
    assert run(server, "send", "connect") == 0
    assert [r.path for r in server.requests if r.method == "GET"] == [METADATA_PATH]
    [post] = server.posts
    assert post.path == f"/desktops/{DESKTOP_ID}/events"
    assert post.headers["X-Desktop-Secret"] == SECRET
    assert post.headers["Content-Type"] == "application/json"
    assert post.json() == {"kind": "connect"}


@pytest.mark.parametrize("kind", agent.EVENT_KINDS)
def test_send_every_kind(server: FakeDeskpool, kind: str) -> None:
    assert run(server, "send", kind) == 0
    assert server.kinds == [kind]


def test_send_unknown_kind_is_a_usage_error(server: FakeDeskpool) -> None:
    with pytest.raises(SystemExit) as caught:
        run(server, "send", "reboot")
    assert caught.value.code == 2
    assert not server.requests


def test_desktop_id_is_quoted_in_the_path(server: FakeDeskpool) -> None:
    server.meta["deskpool_desktop"] = "a b/c"
    assert run(server, "send", "ready") == 0
    assert server.posts[0].path == "/desktops/a%20b%2Fc/events"


def test_api_url_from_metadata(server: FakeDeskpool) -> None:
    server.meta["deskpool_api_url"] = server.url + "/"
    assert main(["send", "idle", "--metadata-url", server.metadata_url], environ={}, sleep=no_sleep) == 0
    assert server.posts[0].path == f"/desktops/{DESKTOP_ID}/events"


def test_environment_overrides_metadata_and_flags_override_both(server: FakeDeskpool) -> None:
    env: dict[str, Any] = {"DESKPOOL_AGENT_SECRET": "env-secret", "DESKPOOL_DESKTOP_ID": "env-desktop"}
    assert run(server, "send", "ready", **env) == 0
    assert server.posts[-1].headers["X-Desktop-Secret"] == "env-secret"
    assert server.posts[-1].path == "/desktops/env-desktop/events"
    assert run(server, "send", "ready", "--secret", "flag-secret", **env) == 0
    assert server.posts[-1].headers["X-Desktop-Secret"] == "flag-secret"


def test_metadata_not_asked_when_everything_is_given(server: FakeDeskpool) -> None:
    assert run(server, "send", "ready", DESKPOOL_AGENT_SECRET=SECRET, DESKPOOL_DESKTOP_ID=DESKTOP_ID) == 0
    assert [r.method for r in server.requests] == ["POST"]


def test_retry_on_503_then_success(server: FakeDeskpool) -> None:
    server.responses = [(503, b'{"detail": "busy"}', {}), (503, b"", {})]
    sleeps: list[float] = []
    assert run(server, "send", "disconnect", sleeps=sleeps) == 0
    assert server.kinds == ["disconnect"] * 3
    assert sleeps == [1.0, 2.0]  # exponential backoff


def test_gives_up_after_the_last_attempt(server: FakeDeskpool, caplog: pytest.LogCaptureFixture) -> None:
    server.responses = [(500, b"", {})] * 3
    sleeps: list[float] = []
    assert run(server, "send", "logoff", "--attempts", "3", sleeps=sleeps) == 1
    assert len(server.posts) == 3
    assert sleeps == [1.0, 2.0]
    assert "giving up after 3 attempts" in caplog.text


def test_backoff_is_capped(server: FakeDeskpool) -> None:
    server.responses = [(502, b"", {})] * 4
    sleeps: list[float] = []
    assert run(server, "send", "ready", "--max-backoff-s", "3", sleeps=sleeps) == 0
    assert sleeps == [1.0, 2.0, 3.0, 3.0]


def test_no_retry_on_403(server: FakeDeskpool, caplog: pytest.LogCaptureFixture) -> None:
    server.responses = [(403, b'{"detail": "x-desktop-secret: not this desktop\'s secret"}', {})]
    sleeps: list[float] = []
    assert run(server, "send", "connect", sleeps=sleeps) == 1
    assert len(server.posts) == 1
    assert sleeps == []
    assert "HTTP 403" in caplog.text


def test_a_body_echoing_the_secret_is_redacted(server: FakeDeskpool, caplog: pytest.LogCaptureFixture) -> None:
    server.responses = [(422, json.dumps({"detail": [{"input": SECRET}]}).encode(), {})]
    assert run(server, "send", "connect") == 1
    assert "HTTP 422" in caplog.text
    assert "***" in caplog.text


def test_redirects_are_not_followed(server: FakeDeskpool) -> None:
    server.responses = [(307, b"", {"Location": "http://127.0.0.1:1/steal"})]
    assert run(server, "send", "connect") == 1
    assert len(server.posts) == 1


def test_retry_on_connection_errors(server: FakeDeskpool, caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    closed = f"http://127.0.0.1:{free_port()}"
    assert run(server, "send", "connect", "--api-url", closed, "--attempts", "3", sleeps=sleeps) == 1
    assert sleeps == [1.0, 2.0]
    assert "giving up" in caplog.text


@pytest.mark.parametrize(
    ("meta", "missing"),
    [
        ({"deskpool_desktop": DESKTOP_ID}, "deskpool_agent_secret"),
        ({"deskpool_agent_secret": SECRET}, "deskpool_desktop"),
    ],
)
def test_missing_settings_are_named(
    server: FakeDeskpool, caplog: pytest.LogCaptureFixture, meta: dict[str, str], missing: str
) -> None:
    server.meta = meta
    assert run(server, "send", "ready") == 2
    assert missing in caplog.text
    assert not server.posts


def test_api_url_needed(server: FakeDeskpool, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["send", "ready", "--metadata-url", server.metadata_url], environ={}, sleep=no_sleep) == 2
    assert "deskpool_api_url" in caplog.text


def test_unreachable_metadata_service(caplog: pytest.LogCaptureFixture) -> None:
    metadata = f"http://127.0.0.1:{free_port()}{METADATA_PATH}"
    code = main(["send", "ready", "--metadata-url", metadata, "--attempts", "2"], environ={}, sleep=no_sleep)
    assert code == 2
    assert "metadata service" in caplog.text


@pytest.mark.parametrize("secret", ["with space", "x" * 129, "line\nbreak"])
def test_malformed_secret_refused_without_echo(
    server: FakeDeskpool, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    assert run(server, "send", "ready", "--secret", secret) == 2
    assert secret not in caplog.text
    assert not server.posts


def test_config_repr_hides_the_secret() -> None:
    config = Config(api_url="http://api", desktop_id=DESKTOP_ID, secret=SECRET)
    assert SECRET not in repr(config)


# --- watch ------------------------------------------------------------------------


def session_command(tmp_path: Path, states: list[str]) -> str:
    """A command printing the next state of `states` on each run (the last one repeats)."""
    state_file = tmp_path / "states"
    state_file.write_text("\n".join(states) + "\n")
    script = tmp_path / "session.py"
    script.write_text(
        "import pathlib, sys\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "lines = path.read_text().splitlines()\n"
        "print(lines[0])\n"
        "if len(lines) > 1:\n"
        "    path.write_text('\\n'.join(lines[1:]) + '\\n')\n"
    )
    return shlex.join([sys.executable, str(script), str(state_file)])


def test_watch_sends_ready_then_each_transition_once(server: FakeDeskpool, tmp_path: Path) -> None:
    command = session_command(tmp_path, ["none", "connected", "connected", "disconnected", "disconnected", "none"])
    sleeps: list[float] = []
    code = run(
        server, "watch", "--session-command", command, "--interval-s", "7", "--max-iterations", "6", sleeps=sleeps
    )
    assert code == 0
    assert server.kinds == ["ready", "connect", "disconnect", "logoff"]
    assert all(r.headers["X-Desktop-Secret"] == SECRET for r in server.posts)
    assert sleeps == [7.0] * 5


def test_watch_idle_and_active(server: FakeDeskpool, tmp_path: Path) -> None:
    states = ["connected"] * 6 + ["disconnected"]
    (tmp_path / "idle").mkdir()
    idle = session_command(tmp_path / "idle", ["0", "400", "500", "10", "20", "301", "999"])
    sessions = session_command(tmp_path, states)
    code = run(
        server,
        "watch",
        "--session-command",
        sessions,
        "--idle-command",
        idle,
        "--idle-after-s",
        "300",
        "--max-iterations",
        "7",
    )
    assert code == 0
    # The idle command is asked only while connected: its last value (999) is never read.
    assert server.kinds == ["ready", "connect", "idle", "active", "idle", "disconnect"]


@pytest.fixture
def client() -> HttpClient:
    return HttpClient(timeout_s=5, attempts=1, sleep=no_sleep)


class Scripted:
    """A session and idle source reading from lists; None means "cannot tell"."""

    def __init__(self, states: list[str | None], idle: list[float | None] | None = None) -> None:
        self.states = states
        self.idles = idle or []

    def state(self) -> str | None:
        return self.states.pop(0)

    def idle_seconds(self) -> float | None:
        return self.idles.pop(0)


def sender_for(server: FakeDeskpool, client: HttpClient) -> EventSender:
    return EventSender(Config(api_url=server.url, desktop_id=DESKTOP_ID, secret=SECRET), client)


def test_watch_retries_a_failed_event_at_the_next_poll(server: FakeDeskpool, client: HttpClient) -> None:
    server.responses = [(202, b"", {}), (503, b"", {})]
    watcher = Watcher(sender_for(server, client), Scripted(["connected"] * 3), sleep=no_sleep)
    watcher.run(max_iterations=3)
    assert server.kinds == ["ready", "connect", "connect"]
    assert watcher.state == "connected"


def test_watch_retries_ready_until_sent(server: FakeDeskpool, client: HttpClient) -> None:
    server.responses = [(503, b"", {}), (503, b"", {})]
    Watcher(sender_for(server, client), Scripted(["none"] * 4), sleep=no_sleep).run(max_iterations=4)
    assert server.kinds == ["ready", "ready", "ready"]


def test_watch_goes_on_after_a_refused_event(server: FakeDeskpool, client: HttpClient) -> None:
    server.responses = [(202, b"", {}), (403, b"", {})]
    source = Scripted(["connected", "connected", "disconnected"])
    watcher = Watcher(sender_for(server, client), source, sleep=no_sleep)
    watcher.run(max_iterations=3)
    assert server.kinds == ["ready", "connect", "disconnect"]
    assert watcher.state == "disconnected"


def test_watch_ignores_unknown_states(server: FakeDeskpool, client: HttpClient) -> None:
    source = Scripted([None, "connected", None, "connected"])
    Watcher(sender_for(server, client), source, sleep=no_sleep).run(max_iterations=4)
    assert server.kinds == ["ready", "connect"]


def test_idle_without_threshold_is_not_polled(server: FakeDeskpool, client: HttpClient) -> None:
    source = Scripted(["connected"], idle=[])
    Watcher(sender_for(server, client), source, idle=source, sleep=no_sleep).run(max_iterations=1)
    assert server.kinds == ["ready", "connect"]


TRANSITIONS_FROM_NONE = {"connected": "connect", "disconnected": "disconnect"}


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        ("none", "connected", "connect"),
        ("disconnected", "connected", "connect"),
        ("connected", "disconnected", "disconnect"),
        ("none", "disconnected", "disconnect"),
        ("connected", "none", "logoff"),
        ("disconnected", "none", "logoff"),
    ],
)
def test_transitions(server: FakeDeskpool, client: HttpClient, before: str, after: str, event: str) -> None:
    watcher = Watcher(sender_for(server, client), Scripted([before, after, after]), sleep=no_sleep)
    watcher.run(max_iterations=3)
    expected = ["ready", event] if before == "none" else ["ready", TRANSITIONS_FROM_NONE[before], event]
    assert server.kinds == expected


def test_every_state_pair_has_an_event() -> None:
    pairs = {(a, b) for a in agent.SESSION_STATES for b in agent.SESSION_STATES if a != b}
    assert set(agent.TRANSITIONS) == pairs
    assert set(agent.TRANSITIONS.values()) <= set(agent.EVENT_KINDS)


def test_sender_outcomes(server: FakeDeskpool, client: HttpClient) -> None:
    server.responses = [(202, b"", {}), (404, b"", {}), (500, b"", {})]
    sender = sender_for(server, client)
    assert [sender.send("ready"), sender.send("ready"), sender.send("ready")] == [SENT, REJECTED, FAILED]
    with pytest.raises(ValueError, match="unknown event kind"):
        sender.send("reboot")


# --- command sources ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "state"),
    [
        ("echo connected", "connected"),
        ("echo '  Disconnected '", "disconnected"),
        ("printf 'noise\\nnone\\n'", "none"),
        ("echo bogus", None),
        ("true", None),
        ("echo connected; exit 3", None),
        ("exec sleep 5", None),
    ],
)
def test_command_session_source(command: str, state: str | None) -> None:
    assert CommandSessionSource(command, timeout_s=0.5).state() == state


@pytest.mark.parametrize(
    ("command", "seconds"),
    [("echo 12.5", 12.5), ("echo 0", 0.0), ("echo abc", None), ("echo -3", None), ("echo nan", None), ("false", None)],
)
def test_command_idle_source(command: str, seconds: float | None) -> None:
    assert CommandIdleSource(command, timeout_s=5).idle_seconds() == seconds


# --- as shipped ----------------------------------------------------------------------


def test_runs_as_a_bare_script_without_site_packages(server: FakeDeskpool) -> None:
    """As on a template image: `python3 agent.py`, no deskpool, no site-packages (-S), isolated (-I)."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(AGENT_FILE), "send", "ready", "--metadata-url", server.metadata_url],
        env={"DESKPOOL_API_URL": server.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert server.kinds == ["ready"]
    assert "accepted" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_runs_as_a_module(server: FakeDeskpool) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.agent.agent", "send", "active", "--metadata-url", server.metadata_url],
        env={"DESKPOOL_API_URL": server.url, "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert server.kinds == ["active"]


def test_standard_library_only_and_python_38_syntax() -> None:
    tree = ast.parse(AGENT_FILE.read_text(), feature_version=(3, 8))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names
