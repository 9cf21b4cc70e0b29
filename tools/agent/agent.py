#!/usr/bin/env python3
"""deskpool reference in-guest agent: tells the deskpool API what happens to the desktop's session.

Runs on the template image as a service. Python 3.8 or later, standard
library only: copy this one file onto the image, nothing else.

    agent.py send connect            one event (from a login or logoff script)
    agent.py watch --session-command CMD [--idle-command CMD --idle-after-s N]
                                     sends `ready`, then polls and sends each transition

Configuration, the first found wins: command-line flags, environment
variables, the OpenStack metadata service (`meta` of meta_data.json, where
deskpool's create activity puts the desktop id and the agent secret):

    desktop id   --desktop-id   DESKPOOL_DESKTOP_ID     meta deskpool_desktop
    secret       --secret       DESKPOOL_AGENT_SECRET   meta deskpool_agent_secret
    API URL      --api-url      DESKPOOL_API_URL        meta deskpool_api_url (set it in the
                                                        pool template's metadata; deskpool
                                                        itself does not)
    metadata     --metadata-url DESKPOOL_METADATA_URL   default http://169.254.169.254/...

The secret is sent only in the X-Desktop-Secret header and never logged.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

LOG = logging.getLogger("deskpool.agent")

DEFAULT_METADATA_URL = "http://169.254.169.254/openstack/latest/meta_data.json"
META_DESKTOP_ID = "deskpool_desktop"
META_SECRET = "deskpool_agent_secret"
META_API_URL = "deskpool_api_url"
ENV_DESKTOP_ID = "DESKPOOL_DESKTOP_ID"
ENV_SECRET = "DESKPOOL_AGENT_SECRET"
ENV_API_URL = "DESKPOOL_API_URL"
ENV_METADATA_URL = "DESKPOOL_METADATA_URL"

EVENT_KINDS = ("ready", "connect", "disconnect", "logoff", "idle", "active")
SESSION_STATES = ("connected", "disconnected", "none")
# (previous session state, current one) -> the event that reports the change.
TRANSITIONS = {
    ("none", "connected"): "connect",
    ("disconnected", "connected"): "connect",
    ("connected", "disconnected"): "disconnect",
    ("none", "disconnected"): "disconnect",
    ("connected", "none"): "logoff",
    ("disconnected", "none"): "logoff",
}

# What a send came to.
SENT = "sent"  # 2xx
REJECTED = "rejected"  # 3xx or 4xx: retrying would not help; logged, and the agent goes on
FAILED = "failed"  # 5xx or no answer, after every retry

MAX_BODY = 64 * 1024
MAX_METADATA = 1024 * 1024
SECRET_MAX_LENGTH = 128  # the API refuses longer X-Desktop-Secret headers


class ConfigError(Exception):
    """The agent cannot start: a setting is missing or malformed."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following one would hand the secret header to another URL."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _check_url(name: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: must be an http:// or https:// URL")
    return url


class HttpClient:
    """Bounded HTTP: a timeout on every call, retries with exponential backoff on 5xx and network
    errors, none on 3xx/4xx. Logs status codes and network errors, never headers or bodies."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_BODY,
    ) -> tuple[int, bytes] | None:
        """(status, body) of a 2xx, 3xx or 4xx answer; None when every attempt met a 5xx or no answer."""
        request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            LOG.debug("%s: %s %s (attempt %d/%d)", what, method, url, attempt, self.attempts)
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    return int(response.status), response.read(max_bytes)
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    return error.code, _read_error_body(error, max_bytes)
                _read_error_body(error, 0)
                problem = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                problem = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
            if attempt == self.attempts:
                LOG.error("%s: %s; giving up after %d attempts", what, problem, self.attempts)
                return None
            LOG.warning("%s: %s; retrying in %.1f s (attempt %d/%d)", what, problem, delay, attempt, self.attempts)
            self._sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
        return None  # not reached: attempts >= 1


def _read_error_body(error: urllib.error.HTTPError, max_bytes: int) -> bytes:
    try:
        return error.read(max_bytes) if max_bytes else b""
    except (OSError, http.client.HTTPException, AttributeError):
        return b""
    finally:
        error.close()


def fetch_metadata(client: HttpClient, url: str) -> dict[str, str]:
    """The `meta` dict of the OpenStack metadata service's meta_data.json (string values only)."""
    result = client.call("GET", url, what="metadata", max_bytes=MAX_METADATA)
    if result is None:
        raise ConfigError(f"metadata service {url}: no answer")
    status, body = result
    if status != 200:
        raise ConfigError(f"metadata service {url}: HTTP {status}")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ConfigError(f"metadata service {url}: not JSON ({error})") from None
    meta = document.get("meta") if isinstance(document, dict) else None
    if not isinstance(meta, dict):
        return {}
    return {key: value for key, value in meta.items() if isinstance(key, str) and isinstance(value, str)}


@dataclass(frozen=True)
class Config:
    api_url: str
    desktop_id: str
    secret: str = field(repr=False)

    def events_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/desktops/{urllib.parse.quote(self.desktop_id, safe='')}/events"


def resolve_config(
    *,
    api_url: str | None,
    desktop_id: str | None,
    secret: str | None,
    metadata_url: str | None,
    environ: Mapping[str, str],
    client: HttpClient,
) -> Config:
    """Flags, then environment, then the metadata service (asked only when something is still missing)."""
    values = {
        "api_url": api_url or environ.get(ENV_API_URL) or None,
        "desktop_id": desktop_id or environ.get(ENV_DESKTOP_ID) or None,
        "secret": secret or environ.get(ENV_SECRET) or None,
    }
    sources = {
        "api_url": f"--api-url, {ENV_API_URL} or metadata key {META_API_URL}",
        "desktop_id": f"--desktop-id, {ENV_DESKTOP_ID} or metadata key {META_DESKTOP_ID}",
        "secret": f"--secret, {ENV_SECRET} or metadata key {META_SECRET} (set when deskpool has a secret key)",
    }
    if not all(values.values()):
        url = _check_url("metadata URL", metadata_url or environ.get(ENV_METADATA_URL) or DEFAULT_METADATA_URL)
        meta = fetch_metadata(client, url)
        keys = {"api_url": META_API_URL, "desktop_id": META_DESKTOP_ID, "secret": META_SECRET}
        for name, key in keys.items():
            values[name] = values[name] or meta.get(key) or None
    missing = [sources[name] for name, value in values.items() if not value]
    if missing:
        raise ConfigError("missing: " + "; ".join(missing))
    config = Config(
        api_url=values["api_url"] or "", desktop_id=values["desktop_id"] or "", secret=values["secret"] or ""
    )
    _check_url("API URL", config.api_url)
    if len(config.secret) > SECRET_MAX_LENGTH or not all(" " < char < "\x7f" for char in config.secret):
        raise ConfigError(f"the secret must be at most {SECRET_MAX_LENGTH} printable ASCII characters")
    return config


class EventSender:
    def __init__(self, config: Config, client: HttpClient) -> None:
        self._config = config
        self._client = client

    def _redact(self, text: str) -> str:
        return text.replace(self._config.secret, "***")

    def send(self, kind: str) -> str:
        """POST one event; SENT, REJECTED (3xx/4xx, logged) or FAILED (5xx or unreachable after retries)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        result = self._client.call(
            "POST",
            self._config.events_url(),
            what=f"event {kind}",
            body=json.dumps({"kind": kind}).encode(),
            headers={"Content-Type": "application/json", "X-Desktop-Secret": self._config.secret},
        )
        if result is None:
            return FAILED
        status, body = result
        if 200 <= status < 300:
            LOG.info("event %s: accepted (HTTP %d)", kind, status)
            return SENT
        detail = self._redact(body[:500].decode("utf-8", "replace"))
        LOG.warning("event %s: refused with HTTP %d, not retried: %s", kind, status, detail)
        return REJECTED


def _run(command: str, timeout_s: float) -> str | None:
    """The stripped output of a shell command, or None (logged) when it fails or hangs."""
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        LOG.warning("command %r failed: %s", command, error)
        return None
    if done.returncode != 0:
        LOG.warning("command %r exited with %d: %s", command, done.returncode, done.stderr.strip()[:500])
        return None
    return done.stdout.strip()


class SessionSource(Protocol):
    def state(self) -> str | None:
        """connected, disconnected or none; None when it cannot tell (no transition then)."""


class IdleSource(Protocol):
    def idle_seconds(self) -> float | None:
        """How long the session's user has been idle; None when it cannot tell."""


class CommandSessionSource:
    """A shell command whose last output line is connected, disconnected or none."""

    def __init__(self, command: str, timeout_s: float = 10.0) -> None:
        self.command = command
        self.timeout_s = timeout_s

    def state(self) -> str | None:
        output = _run(self.command, self.timeout_s)
        if output is None:
            return None
        value = output.splitlines()[-1].strip().lower() if output else ""
        if value not in SESSION_STATES:
            LOG.warning("session command printed %r, not one of %s", value[:100], "|".join(SESSION_STATES))
            return None
        return value


class CommandIdleSource:
    """A shell command whose last output line is the number of seconds the user has been idle."""

    def __init__(self, command: str, timeout_s: float = 10.0) -> None:
        self.command = command
        self.timeout_s = timeout_s

    def idle_seconds(self) -> float | None:
        output = _run(self.command, self.timeout_s)
        if not output:
            return None
        try:
            value = float(output.splitlines()[-1])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            LOG.warning("idle command printed %r, not a number of seconds", output[:100])
            return None
        return value


class Watcher:
    """Sends `ready`, then on each poll the session transition (connect, disconnect, logoff) and,
    while connected, idle/active around the idle threshold. A send that failed after its
    retries is tried again at the next poll; a refused one (4xx) is not."""

    def __init__(
        self,
        sender: EventSender,
        session: SessionSource,
        *,
        idle: IdleSource | None = None,
        idle_after_s: float | None = None,
        interval_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sender = sender
        self._session = session
        self._idle = idle if idle_after_s is not None else None
        self._idle_after_s = idle_after_s or 0.0
        self._interval_s = interval_s
        self._sleep = sleep
        self.state = "none"
        self.idle = False
        self._ready_pending = True

    def _send(self, kind: str) -> bool:
        """True when done with this event (sent or refused), False when it should be tried again."""
        return self._sender.send(kind) != FAILED

    def step(self) -> None:
        if self._ready_pending:
            self._ready_pending = not self._send("ready")
        current = self._session.state()
        if current is not None and current != self.state:
            event = TRANSITIONS[(self.state, current)]
            if self._send(event):
                LOG.info("session %s -> %s", self.state, current)
                self.state = current
                self.idle = False
        if self.state != "connected" or self._idle is None:
            return
        idle_s = self._idle.idle_seconds()
        if idle_s is None:
            return
        if not self.idle and idle_s >= self._idle_after_s:
            self.idle = self._send("idle")
        elif self.idle and idle_s < self._idle_after_s:
            self.idle = not self._send("active")

    def run(self, max_iterations: int | None = None) -> None:
        done = 0
        while True:
            self.step()
            done += 1
            if max_iterations is not None and done >= max_iterations:
                return
            self._sleep(self._interval_s)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help=f"deskpool API base URL (env {ENV_API_URL})")
    common.add_argument("--desktop-id", help=f"this desktop's id (env {ENV_DESKTOP_ID})")
    common.add_argument("--secret", help=f"this desktop's agent secret (env {ENV_SECRET}; prefer it: flags show in ps)")
    common.add_argument("--metadata-url", help=f"metadata document (env {ENV_METADATA_URL})")
    common.add_argument("--timeout-s", type=float, default=10.0, help="timeout of each HTTP call and command")
    common.add_argument("--attempts", type=int, default=5, help="tries per HTTP call on 5xx or network errors")
    common.add_argument("--backoff-s", type=float, default=1.0, help="first retry delay, doubled each time")
    common.add_argument("--max-backoff-s", type=float, default=30.0)
    common.add_argument("-v", "--verbose", action="store_true")
    parser = argparse.ArgumentParser(prog="deskpool-agent", description="deskpool in-guest agent")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", parents=[common], help="send one event")
    send.add_argument("kind", choices=EVENT_KINDS)
    watch = commands.add_parser("watch", parents=[common], help="send ready, then poll and send transitions")
    watch.add_argument("--session-command", required=True, help="prints connected|disconnected|none")
    watch.add_argument("--idle-command", help="prints the seconds the user has been idle")
    watch.add_argument("--idle-after-s", type=float, help="send idle past this many idle seconds")
    watch.add_argument("--interval-s", type=float, default=5.0, help="seconds between polls")
    watch.add_argument("--max-iterations", type=int, help="stop after this many polls (tests)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "watch" and (args.idle_command is None) != (args.idle_after_s is None):
        parser.error("--idle-command and --idle-after-s go together")
    if args.verbose:
        LOG.setLevel(logging.DEBUG)
    timeout_s = float(args.timeout_s)
    client = HttpClient(
        timeout_s=timeout_s,
        attempts=int(args.attempts),
        backoff_s=float(args.backoff_s),
        max_backoff_s=float(args.max_backoff_s),
        sleep=sleep,
    )
    try:
        config = resolve_config(
            api_url=args.api_url,
            desktop_id=args.desktop_id,
            secret=args.secret,
            metadata_url=args.metadata_url,
            environ=os.environ if environ is None else environ,
            client=client,
        )
    except ConfigError as error:
        LOG.error("cannot start: %s", error)
        return 2
    LOG.info("desktop %s reports to %s", config.desktop_id, config.api_url)
    sender = EventSender(config, client)
    if args.command == "send":
        return 0 if sender.send(str(args.kind)) == SENT else 1
    idle = CommandIdleSource(str(args.idle_command), timeout_s) if args.idle_command else None
    watcher = Watcher(
        sender,
        CommandSessionSource(str(args.session_command), timeout_s),
        idle=idle,
        idle_after_s=args.idle_after_s,
        interval_s=float(args.interval_s),
        sleep=sleep,
    )
    watcher.run(args.max_iterations)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
