"""The `deskpool` command: global options, the command groups, API errors mapped to exit codes once.

Exit codes: 0 success, 1 the API refused or could not be reached, 2 usage errors,
3 not signed in or not allowed (401/403).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from api.cli import access, audit, auth, console, desktops, pools, user
from api.cli.client import ApiError, ApiUnreachable
from api.cli.config import Output, Runtime
from api.cli.output import report_api_error, report_unreachable


class _Root(TyperGroup):
    """Every ApiError and ApiUnreachable a command lets through ends here, as one clear message."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            rt = ctx.find_object(Runtime)
            raise typer.Exit(report_api_error(exc, rt.api_url if rt else "")) from None
        except ApiUnreachable as exc:
            raise typer.Exit(report_unreachable(exc)) from None


app = typer.Typer(
    name="deskpool",
    cls=_Root,
    help="Command-line client of the deskpool API: pools, desktops, entitlements, roles, connect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="DESKPOOL_API_URL",
            help="API base URL (default: the URL you logged in to, else http://127.0.0.1:8000)",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="table for people, json for programs (the API's JSON only)")
    ] = Output.TABLE,
) -> None:
    rt = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    ctx.obj = rt
    rt.configure(api_url, output)
    ctx.call_on_close(rt.close)


auth.register(app)
user.register(app)
pools.register(app)
console.register(app)
desktops.register(app)
access.register(app)
audit.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
