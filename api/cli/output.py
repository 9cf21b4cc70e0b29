"""What the CLI prints: the API's JSON (`--output json`), rich tables, one-line errors.

Tables and messages go to stdout; progress, warnings and errors go to stderr, so that with
`--output json` stdout carries nothing but the JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from api.cli.client import ApiError, ApiUnreachable
from api.cli.config import DEFAULT_API_URL

WIDE = 250  # when not a terminal: never fold a table to 80 columns


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    return Console(file=stream, width=None if terminal else WIDE, highlight=False, soft_wrap=not terminal)


def stdout() -> Console:
    return _console(stderr=False)


def stderr() -> Console:
    return _console(stderr=True)


def emit_json(data: Any) -> None:
    """The API's JSON on stdout; nothing at all for an empty (204) answer."""
    if data is None:
        return
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def message(text: str) -> None:
    """A human sentence on stdout (table mode)."""
    stdout().print(Text(text))


def note(text: str) -> None:
    """Progress and side remarks: stderr, so JSON output stays clean."""
    stderr().print(Text(text))


def cell(value: Any) -> Text:
    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return Text(str(value))


def when(value: Any) -> str:
    """An ISO timestamp shortened to the second; anything else as it came."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    offset = parsed.utcoffset()
    suffix = "Z" if offset is not None and not offset.total_seconds() else parsed.strftime("%z")
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + suffix


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    view = Table(*columns, box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False)
    for row in rows:
        view.add_row(*(cell(value) for value in row))
    stdout().print(view)


def pairs(items: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    view = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    view.add_column(style="bold")
    view.add_column()
    for key, value in items:
        view.add_row(Text(key), cell(value))
    stdout().print(view)


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc] if isinstance(loc, (list, tuple)) else [str(loc)]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts)


def detail_lines(detail: Any) -> list[str]:
    """A FastAPI `detail`: a string, or pydantic's errors as "field: msg" lines."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                where = _location(item.get("loc", ()))
                msg = str(item.get("msg", item))
                lines.append(f"{where}: {msg}" if where else msg)
            else:
                lines.append(str(item))
        return lines or ["(no detail)"]
    if isinstance(detail, dict):
        return [json.dumps(detail, ensure_ascii=False)]
    return [str(detail)]


def report_api_error(exc: ApiError, api_url: str) -> int:
    """Print the error, return the exit code: 3 for 401/403 (with a hint), 1 otherwise."""
    lines = detail_lines(exc.detail)
    err = stderr()
    if len(lines) == 1:
        err.print(Text(f"error: {lines[0]} (HTTP {exc.status})"))
    else:
        err.print(Text(f"error: the API refused the request (HTTP {exc.status}):"))
        for line in lines:
            err.print(Text(f"  {line}"))
    if exc.status in (401, 403):
        target = "" if api_url == DEFAULT_API_URL else f" --api-url {api_url}"
        why = "sign in" if exc.status == 401 else "sign in as someone allowed to do this"
        err.print(Text(f"hint: run `deskpool login{target}` to {why} (or set DESKPOOL_TOKEN)"))
        return 3
    return 1


def report_unreachable(exc: ApiUnreachable) -> int:
    stderr().print(Text(f"error: cannot reach the deskpool API at {exc.url}: {exc.reason}"))
    stderr().print(Text("hint: check --api-url or DESKPOOL_API_URL"))
    return 1
