"""Console options: your defaults for a pool's connection files (protocol, screen, devices)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import output as out
from api.cli.config import runtime
from api.cli.user import Protocol


def register(app: typer.Typer) -> None:
    app.command("console-options")(console_options)


def console_options(
    ctx: typer.Context,
    pool_id: Annotated[str, typer.Argument(metavar="POOL")],
    protocol: Annotated[Protocol | None, typer.Option("--protocol")] = None,
    full_screen: Annotated[bool | None, typer.Option("--full-screen/--windowed", show_default=False)] = None,
    width: Annotated[int | None, typer.Option("--width", min=1)] = None,
    height: Annotated[int | None, typer.Option("--height", min=1)] = None,
    multi_monitor: Annotated[bool | None, typer.Option("--multi-monitor/--single-monitor", show_default=False)] = None,
    usb: Annotated[bool | None, typer.Option("--usb/--no-usb", show_default=False)] = None,
    clipboard: Annotated[bool | None, typer.Option("--clipboard/--no-clipboard", show_default=False)] = None,
    audio: Annotated[bool | None, typer.Option("--audio/--no-audio", show_default=False)] = None,
    printers: Annotated[bool | None, typer.Option("--printers/--no-printers", show_default=False)] = None,
    drives: Annotated[bool | None, typer.Option("--drives/--no-drives", show_default=False)] = None,
    smart_cards: Annotated[bool | None, typer.Option("--smart-cards/--no-smart-cards", show_default=False)] = None,
) -> None:
    """Show your console options for POOL; with flags, change them (the rest stay as they are)."""
    rt = runtime(ctx)
    client = rt.client()
    changes = {
        "protocol": protocol.value if protocol else None, "full_screen": full_screen, "width": width,
        "height": height, "multi_monitor": multi_monitor, "usb": usb, "clipboard": clipboard, "audio": audio,
        "printers": printers, "drives": drives, "smart_cards": smart_cards,
    }  # fmt: skip
    changes = {key: value for key, value in changes.items() if value is not None}
    options: dict[str, Any] = client.get_console_options(pool_id)
    if changes:
        options = client.set_console_options(pool_id, {**options, **changes})
    if rt.json:
        out.emit_json(options)
        return
    if changes:
        out.message(f"Console options for pool {pool_id} saved.")
    out.pairs((key.replace("_", " "), value) for key, value in options.items())
