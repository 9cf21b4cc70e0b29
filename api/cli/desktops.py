"""Desktops (administrators): list and filter, inspect with history, release, return, power."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from api.cli import output as out
from api.cli.config import runtime

desktops = typer.Typer(help="Desktops of every pool (administrators).", no_args_is_help=True)
DesktopId = Annotated[str, typer.Argument(metavar="DESKTOP")]


class Power(StrEnum):
    ON = "on"
    OFF = "off"
    RESTART = "restart"
    FORCE_RESTART = "force_restart"


def register(app: typer.Typer) -> None:
    app.add_typer(desktops, name="desktops")


def desktop_rows(views: list[dict[str, Any]]) -> None:
    out.table(
        ["ID", "POOL", "NAME", "STATE", "USER", "VERSION", "ADDRESS", "UPDATED"],
        [(d.get("id"), d.get("pool_id"), d.get("name"), d.get("state"), d.get("user"), d.get("template_version"),
          d.get("address"), out.when(d.get("updated_at"))) for d in views],
    )  # fmt: skip


def event_rows(events: list[dict[str, Any]]) -> None:
    out.table(["AT", "ACTION", "ACTOR"], [(out.when(e.get("at")), e.get("action"), e.get("actor")) for e in events])


@desktops.command("list")
def list_desktops(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option("--pool", help="only this pool")] = None,
    state: Annotated[str | None, typer.Option("--state", help="only this state, e.g. ready, connected")] = None,
    user: Annotated[str | None, typer.Option("--user", help="only desktops of this user")] = None,
    version: Annotated[int | None, typer.Option("--version", help="only this template version")] = None,
    everything: Annotated[bool, typer.Option("--all", help="include desktops that are gone")] = False,
) -> None:
    """Desktops, filtered by pool, state, user or template version."""
    rt = runtime(ctx)
    views: list[dict[str, Any]] = rt.client().list_desktops(pool, state, user, version, everything)
    if rt.json:
        out.emit_json(views)
    else:
        desktop_rows(views)


@desktops.command("show")
def show_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """One desktop with its event history."""
    rt = runtime(ctx)
    view: dict[str, Any] = rt.client().get_desktop(desktop_id)
    if rt.json:
        out.emit_json(view)
        return
    out.pairs(
        [(key.replace("_", " "), out.when(value) if key.endswith("_at") else value)
         for key, value in view.items() if key != "events"]
    )  # fmt: skip
    event_rows(view.get("events") or [])


def _action(ctx: typer.Context, desktop_id: str, action: str, done: str) -> None:
    rt = runtime(ctx)
    answer = rt.client().desktop_action(desktop_id, action)
    if rt.json:
        out.emit_json(answer)
        return
    status = answer.get("status") if isinstance(answer, dict) else None
    out.message(f"Desktop {desktop_id} {done}" + (f" ({status})." if status else "."))


@desktops.command("release")
def release_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """Release now, without the retention time: destroyed, reverted or held for return."""
    _action(ctx, desktop_id, "release", "released")


@desktops.command("disconnect")
def disconnect_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """End the user's session; the desktop waits out the pool's retention time."""
    _action(ctx, desktop_id, "disconnect", "disconnected")


@desktops.command("return")
def return_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """Manual pools: return a used desktop (it is reverted, then goes back to the pool)."""
    _action(ctx, desktop_id, "return", "returned")


@desktops.command("power")
def power_desktop(
    ctx: typer.Context,
    desktop_id: DesktopId,
    state: Annotated[Power, typer.Argument(metavar="ACTION", help="on, off, restart or force_restart")],
) -> None:
    """Power a desktop on or off, or restart it (forced: a hard reboot). Off is refused while in use."""
    rt = runtime(ctx)
    answer = rt.client().power(desktop_id, state.value)
    if rt.json:
        out.emit_json(answer)
    else:
        out.message(f"Desktop {desktop_id}: power {state.value} requested.")


@desktops.command("detach")
def detach_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """Detach a powered-off desktop: it becomes an independent server, no longer deskpool's."""
    _action(ctx, desktop_id, "detach", "detached")


@desktops.command("console")
def console_desktop(ctx: typer.Context, desktop_id: DesktopId) -> None:
    """Print the desktop's console URL (it carries a short-lived token: do not share it)."""
    rt = runtime(ctx)
    answer: dict[str, Any] = rt.client().console(desktop_id)
    if rt.json:
        out.emit_json(answer)
    else:
        typer.echo(answer["url"])


@desktops.command("log")
def desktop_log(
    ctx: typer.Context,
    desktop_id: DesktopId,
    lines: Annotated[int, typer.Option(min=1, max=10000, help="how many of the last lines")] = 100,
) -> None:
    """The desktop's console log (boot messages), as the cloud keeps it."""
    typer.echo(runtime(ctx).client().console_log(desktop_id, lines), nl=False)
