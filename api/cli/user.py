"""What users do: see their desktops, connect (claim, wait in line, fetch the connection file), let go."""

from __future__ import annotations

import contextlib
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from api.cli import output as out
from api.cli.client import ApiClient, ApiError, ApiUnreachable
from api.cli.config import Runtime, runtime

POLL_S = 2.0
DEFAULT_RETRY_S = 2.0
MAX_LOST_ANSWERS = 3
EXTENSIONS = {"rdp": "rdp", "spice": "vv"}


class Protocol(StrEnum):
    RDP = "rdp"
    SPICE = "spice"


def register(app: typer.Typer) -> None:
    app.command("my")(my_desktops)
    app.command()(connect)
    app.command("disconnect")(disconnect)
    app.command("release")(release)


def my_desktops(ctx: typer.Context) -> None:
    """Your pools and where you stand in each: ready, connected, waiting in line..."""
    rt = runtime(ctx)
    cards: list[dict[str, Any]] = rt.client().my_desktops()
    if rt.json:
        out.emit_json(cards)
        return
    out.table(
        ["POOL", "NAME", "STATE", "DESKTOP", "POSITION"],
        [(c.get("pool_id"), c.get("pool_name"), c.get("state"), c.get("desktop_id"), c.get("position"))
         for c in cards],
    )  # fmt: skip


def _claim(rt: Runtime, client: ApiClient, pool_id: str, key: str, deadline: float) -> Any:
    """POST the claim; on 503 or a lost answer retry with the same Idempotency-Key (never two desktops)."""
    lost = 0
    while True:
        try:
            return client.claim(pool_id, key)
        except ApiError as exc:
            if exc.status != 503 or rt.clock() >= deadline:
                raise
            wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_S
            out.note(f"the API is busy ({out.detail_lines(exc.detail)[0]}); retrying in {wait:g}s")
            rt.sleep(wait)
        except ApiUnreachable as exc:
            lost += 1
            if not exc.maybe_sent or lost > MAX_LOST_ANSWERS or rt.clock() >= deadline:
                raise
            out.note(f"no answer from the API ({exc.reason}); retrying the same claim")
            rt.sleep(DEFAULT_RETRY_S)


def _wait_in_line(rt: Runtime, client: ApiClient, pool_id: str, outcome: dict[str, Any], deadline: float) -> Any:
    console = out.stderr()
    shown: Any = None
    with contextlib.ExitStack() as stack:
        waiting = outcome.get("status") == "waiting"
        status = stack.enter_context(console.status("waiting")) if console.is_terminal and waiting else None
        while outcome.get("status") == "waiting":
            text = f"waiting: position {outcome.get('position') or '?'} in line"
            text += " (a desktop is being prepared)" if outcome.get("preparing") else ""
            if status is not None:
                status.update(text)
            elif text != shown:
                console.print(Text(text))
            shown = text
            if rt.clock() >= deadline:
                console.print(Text(f"error: still waiting in line (request {outcome.get('request_id')})"))
                raise typer.Exit(1)
            pause = POLL_S
            while True:
                rt.sleep(pause)
                try:
                    outcome = client.claim_status(pool_id, str(outcome["request_id"]))
                    break
                except ApiError as exc:
                    if exc.status != 503 or rt.clock() >= deadline:
                        raise
                    pause = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_S
    return outcome


def _protocol(client: ApiClient, pool_id: str, chosen: Protocol | None) -> str:
    if chosen is not None:
        return chosen.value
    try:  # the user's console defaults for the pool pick the protocol
        options: dict[str, Any] = client.get_console_options(pool_id)
    except ApiError:
        return Protocol.RDP.value
    protocol = str(options.get("protocol") or "").lower()
    return protocol if protocol in EXTENSIONS else Protocol.RDP.value


def _download(rt: Runtime, client: ApiClient, outcome: dict[str, Any], extension: str, deadline: float) -> bytes:
    """A desktop assigned from the powered-off reserve has no address until it boots (409): wait for it."""
    told = False
    while True:
        try:
            return client.connection_file(str(outcome["desktop_id"]), extension)
        except ApiError as exc:
            if exc.status not in (409, 503) or rt.clock() >= deadline:
                raise
            if not told:
                out.note(f"desktop {outcome.get('desktop_name') or outcome['desktop_id']} is starting: waiting for it")
                told = True
            rt.sleep(exc.retry_after if exc.retry_after is not None else POLL_S)


def _target(save: Path | None, outcome: dict[str, Any], extension: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(outcome.get("desktop_name") or outcome["desktop_id"]))
    name = f"{stem}.{extension}"
    if save is None:
        return Path.cwd() / name
    return save / name if save.is_dir() else save


def _write_private(path: Path, content: bytes) -> None:
    """Connection files can carry a one-time password: readable by their owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(content)


def connect(
    ctx: typer.Context,
    pool_id: Annotated[str, typer.Argument(metavar="POOL")],
    protocol: Annotated[
        Protocol | None, typer.Option("--protocol", help="default: your console options for the pool, else rdp")
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="where to write the connection file (default: ./<desktop>.rdp|.vv)")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="do not wait in line when the pool is full")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="give up after this many seconds")] = 3600,
) -> None:
    """Get a desktop of POOL: wait in line if needed, then save its connection file and print the path."""
    rt = runtime(ctx)
    client = rt.client()
    deadline = rt.clock() + timeout
    key = rt.new_key()  # one per invocation: retries never claim a second desktop
    outcome: dict[str, Any] = _claim(rt, client, pool_id, key, deadline)
    if outcome.get("status") == "waiting" and no_wait:
        if rt.json:
            out.emit_json(outcome)
        else:
            out.message(f"waiting: position {outcome.get('position')} in line (request {outcome.get('request_id')})")
        return
    outcome = _wait_in_line(rt, client, pool_id, outcome, deadline)
    if outcome.get("status") != "assigned" or not outcome.get("desktop_id"):
        reason = outcome.get("reason") or "no desktop was assigned"
        out.note(f"error: claim {outcome.get('status')}: {reason}")
        raise typer.Exit(1)
    chosen = _protocol(client, pool_id, protocol)
    extension = EXTENSIONS[chosen]
    content = _download(rt, client, outcome, extension, deadline)
    path = _target(save, outcome, extension)
    _write_private(path, content)
    if rt.json:
        out.emit_json(outcome)
        out.note(f"connection file: {path}")
        return
    where = f" at {outcome['address']}" if outcome.get("address") else ""
    out.note(f"desktop {outcome.get('desktop_name') or outcome['desktop_id']}{where} is yours ({chosen})")
    out.message(str(path))


def disconnect(ctx: typer.Context, desktop_id: Annotated[str, typer.Argument(metavar="DESKTOP")]) -> None:
    """Disconnect your session; the desktop stays yours for the pool's retention time."""
    rt = runtime(ctx)
    answer = rt.client().desktop_action(desktop_id, "disconnect")
    out.emit_json(answer) if rt.json else out.message(f"Desktop {desktop_id} disconnected.")


def release(ctx: typer.Context, desktop_id: Annotated[str, typer.Argument(metavar="DESKTOP")]) -> None:
    """Give the desktop back now (no retention time)."""
    rt = runtime(ctx)
    answer = rt.client().desktop_action(desktop_id, "release")
    out.emit_json(answer) if rt.json else out.message(f"Desktop {desktop_id} released.")
