"""The audit trail: every action on pools and desktops, and one desktop's history (`logs`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from api.cli import output as out
from api.cli.config import runtime
from api.cli.desktops import event_rows

RELATIVE = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIME_HELP = "ISO time, or an age such as 30m, 12h, 7d"


def register(app: typer.Typer) -> None:
    app.command("events")(events)
    app.command("logs")(logs)


def moment(value: str | None, now: datetime | None = None) -> str | None:
    """'2h' means two hours ago; anything else is passed to the API as written."""
    if value is None:
        return None
    match = RELATIVE.match(value.strip())
    if not match:
        return value
    delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    return ((now or datetime.now(UTC)) - delta).isoformat(timespec="seconds")


def events(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option("--pool")] = None,
    desktop: Annotated[str | None, typer.Option("--desktop")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="who did it (a user, or the system)")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. pool.create, desktop.assign")] = None,
    since: Annotated[str | None, typer.Option("--since", help=TIME_HELP)] = None,
    until: Annotated[str | None, typer.Option("--until", help=TIME_HELP)] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
) -> None:
    """The audit trail: who did what to which pool or desktop, and when."""
    rt = runtime(ctx)
    rows: list[dict[str, Any]] = rt.client().audit(
        pool=pool, desktop=desktop, actor=actor, action=action, since=moment(since), until=moment(until), limit=limit
    )
    if rt.json:
        out.emit_json(rows)
        return
    out.table(
        ["AT", "ACTOR", "ACTION", "POOL", "DESKTOP", "DETAIL"],
        [(out.when(e.get("at")), e.get("actor"), e.get("action"), e.get("pool_id"), e.get("desktop_id"),
          e.get("detail") or None) for e in rows],
    )  # fmt: skip


def logs(ctx: typer.Context, desktop_id: Annotated[str, typer.Argument(metavar="DESKTOP")]) -> None:
    """One desktop's event history (from its detail)."""
    rt = runtime(ctx)
    view: dict[str, Any] = rt.client().get_desktop(desktop_id)
    history: list[dict[str, Any]] = view.get("events") or []
    if rt.json:
        out.emit_json(history)
    else:
        event_rows(history)
