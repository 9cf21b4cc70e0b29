"""Signing in and out, who am I, and administrators' API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import output as out
from api.cli.client import ApiClient, ApiError, ApiUnreachable
from api.cli.config import Credentials, delete_credentials, load_credentials, runtime, save_credentials

tokens = typer.Typer(help="API tokens for scripts (the secret is shown once).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.add_typer(tokens, name="tokens")


def login(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option("--username", "-u", help="directory user name")] = None,
) -> None:
    """Sign in with your directory password (prompted, never echoed or stored); saves a session token."""
    rt = runtime(ctx)
    if not username:
        username = str(typer.prompt("Username", err=True)).strip()
    password = str(typer.prompt("Password", hide_input=True, err=True))
    if not password:
        raise typer.BadParameter("an empty password is not accepted", param_hint="password")
    answer: dict[str, Any] = rt.client(anonymous=True).login(username, password)
    del password
    person: dict[str, Any] = answer.get("user") or {}
    credentials = Credentials(
        api_url=rt.api_url,
        token=str(answer["token"]),
        expires_at=answer.get("expires_at"),
        username=str(person.get("username") or username),
    )
    path = save_credentials(credentials)
    if rt.json:
        # The session token stays in the credentials file: it is never printed.
        out.emit_json({k: v for k, v in answer.items() if k != "token"})
        return
    name = person.get("display_name") or credentials.username
    out.message(f"Logged in to {rt.api_url} as {credentials.username} ({name}).")
    out.message(f"Token saved to {path}; it expires {out.when(credentials.expires_at) or 'never'}.")


def logout(ctx: typer.Context) -> None:
    """Sign out: the API forgets the session token and the credentials file is deleted."""
    rt = runtime(ctx)
    saved = load_credentials()
    if saved is None:
        out.note("Not logged in (no saved credentials).")
        return
    client = ApiClient(saved.api_url, saved.token, transport=rt.transport)
    try:
        client.logout()
    except ApiError as exc:
        if exc.status not in (401, 403):
            out.note(f"warning: the API did not confirm the logout: {out.detail_lines(exc.detail)[0]}")
    except ApiUnreachable as exc:
        out.note(f"warning: could not tell the API ({exc.url}: {exc.reason}); the token stays valid until it expires")
    finally:
        client.close()
    delete_credentials()
    if not rt.json:
        out.message(f"Logged out of {saved.api_url}.")


def whoami(ctx: typer.Context) -> None:
    """Who the current token belongs to, their groups and their role grants."""
    rt = runtime(ctx)
    me: dict[str, Any] = rt.client().me()
    if rt.json:
        out.emit_json(me)
        return
    out.pairs(
        [
            ("user", me.get("username")),
            ("name", me.get("display_name")),
            ("groups", ", ".join(me.get("groups") or [])),
            ("super user", bool(me.get("super_user"))),
            ("api", rt.api_url),
        ]
    )
    grants = me.get("grants") or []
    if grants:
        out.table(["ROLE", "PRINCIPAL", "SCOPE"], [(g.get("role"), principal(g), scope(g)) for g in grants])


def principal(grant: dict[str, Any]) -> str:
    return f"{grant.get('principal_kind')}:{grant.get('principal')}"


def scope(grant: dict[str, Any]) -> str:
    kind = grant.get("scope_kind")
    return "system" if kind == "system" or not grant.get("scope") else f"{kind}:{grant.get('scope')}"


@tokens.command("create")
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="what the token is for")],
    days: Annotated[int | None, typer.Option("--days", min=1, help="expires after N days (default: the API's)")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="never expires")] = False,
) -> None:
    """Create an API token; its secret is printed once, keep it safe."""
    if days is not None and no_expiry:
        raise typer.BadParameter("--days and --no-expiry exclude each other")
    rt = runtime(ctx)
    created: dict[str, Any] = rt.client().create_token(name, None if no_expiry else days, default=not no_expiry)
    if rt.json:
        out.emit_json(created)
        return
    expires = out.when(created.get("expires_at")) or "never"
    out.pairs([("id", created.get("id")), ("name", created.get("name")), ("expires", expires),
               ("token", created.get("token"))])  # fmt: skip
    out.note("This is the only time the token is shown. Use it as DESKPOOL_TOKEN or an Authorization: Bearer header.")


@tokens.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """Your API tokens (never their secrets)."""
    rt = runtime(ctx)
    rows: list[dict[str, Any]] = rt.client().list_tokens()
    if rt.json:
        out.emit_json(rows)
        return
    out.table(
        ["ID", "NAME", "CREATED", "EXPIRES"],
        [(t.get("id"), t.get("name"), out.when(t.get("created_at")), out.when(t.get("expires_at")) or "never")
         for t in rows],
    )  # fmt: skip


@tokens.command("revoke")
def revoke_token(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke an API token at once."""
    rt = runtime(ctx)
    rt.client().revoke_token(token_id)
    if not rt.json:
        out.message(f"Token {token_id} revoked.")
