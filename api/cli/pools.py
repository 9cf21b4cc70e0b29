"""Pools: list, inspect, create and edit from a YAML or JSON file, size, recreate, remove."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from api.cli import output as out
from api.cli.config import runtime
from api.cli.progress import fill_target, idle_count, rollout_text, wait_for_fill, wait_for_rollout

pools = typer.Typer(help="Pools of desktops (administrators).", no_args_is_help=True)

WAIT_HELP = "show progress until the pool has its ready desktops"
TIMEOUT_HELP = "give up waiting after this many seconds (exit 1)"
SpecFile = Annotated[str, typer.Option("--file", "-f", help="the pool definition, YAML or JSON ('-' for stdin)")]
Wait = Annotated[bool, typer.Option("--wait", help=WAIT_HELP)]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help=TIMEOUT_HELP)]


class DesktopsOnDelete(StrEnum):
    DESTROY = "destroy"
    DETACH = "detach"
    NONE = "none"


class Strategy(StrEnum):
    ROLLING = "rolling"
    IMMEDIATE = "immediate"


def register(app: typer.Typer) -> None:
    app.add_typer(pools, name="pools")


def read_spec(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {source}: {exc.strerror or exc}", param_hint="--file") from exc
    try:
        spec = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{source} is not valid YAML or JSON: {exc}", param_hint="--file") from exc
    if not isinstance(spec, dict):
        raise typer.BadParameter(f"{source} must hold one pool definition (a mapping)", param_hint="--file")
    return spec


def in_use(view: dict[str, Any]) -> int:
    counts = view.get("counts") or {}
    return sum(int(counts.get(state) or 0) for state in ("assigned", "connected", "disconnected"))


def pool_rows(views: list[dict[str, Any]]) -> None:
    out.table(
        ["ID", "NAME", "ENABLED", "READY", "IN USE", "PROVISIONING", "FAILED", "WAITING", "FILL"],
        [
            (v.get("id"), v.get("name"), bool(v.get("enabled")), (v.get("counts") or {}).get("ready", 0), in_use(v),
             (v.get("counts") or {}).get("provisioning", 0), (v.get("counts") or {}).get("failed", 0),
             v.get("waiting", 0), v.get("fill"))
            for v in views
        ],
    )  # fmt: skip


def pool_detail(view: dict[str, Any]) -> None:
    spec = view.get("spec") or {}
    out.pairs(
        [
            ("id", view.get("id")),
            ("name", view.get("name")),
            ("project", view.get("project")),
            ("enabled", bool(view.get("enabled"))),
            ("cloud", "/".join(str(p) for p in (spec.get("cloud"), spec.get("region")) if p)),
            ("template version", view.get("template_version")),
            ("sizing", f"min {spec.get('min_desktops', '-')}, max {spec.get('max_desktops', '-')}, "
                       f"prestarted {spec.get('prestarted', '-')}"),
            ("fill", view.get("fill")),
            ("waiting", view.get("waiting")),
            ("restrained", view.get("restrained_reason")),
            ("workflow", view.get("workflow_url")),
        ]
    )  # fmt: skip
    counts = view.get("counts") or {}
    out.table([name.upper().replace("_", " ") for name in counts], [list(counts.values())], title="desktops")


def _show_pool(rt_json: bool, view: dict[str, Any], sentence: str) -> None:
    if rt_json:
        out.emit_json(view)
    else:
        out.message(sentence)
        pool_rows([view])


@pools.command("list")
def list_pools(ctx: typer.Context) -> None:
    """Every pool with its live desktop counts and fill progress."""
    rt = runtime(ctx)
    views: list[dict[str, Any]] = rt.client().list_pools()
    out.emit_json(views) if rt.json else pool_rows(views)


@pools.command("show")
def show_pool(ctx: typer.Context, pool_id: Annotated[str, typer.Argument(metavar="POOL")]) -> None:
    """One pool: definition summary, counts, fill, restraint, workflow link."""
    rt = runtime(ctx)
    view: dict[str, Any] = rt.client().get_pool(pool_id)
    out.emit_json(view) if rt.json else pool_detail(view)


@pools.command("create")
def create_pool(ctx: typer.Context, file: SpecFile, wait: Wait = False, timeout: Timeout = 1800) -> None:
    """Create a pool from a definition file; --wait shows it filling."""
    rt = runtime(ctx)
    spec = read_spec(file)
    client = rt.client()
    view: dict[str, Any] = client.create_pool(spec)
    if not rt.json:
        out.message(f"Pool {view.get('id')} created (template version {view.get('template_version')}).")
    if wait:
        view = wait_for_fill(rt, client, view, timeout)
    _show_pool(rt.json, view, f"Pool {view.get('id')}: {view.get('fill')}.")


@pools.command("edit")
def edit_pool(ctx: typer.Context, pool_id: Annotated[str, typer.Argument(metavar="POOL")], file: SpecFile) -> None:
    """Replace a pool's definition (affects new desktops; a template change makes a new version)."""
    rt = runtime(ctx)
    view: dict[str, Any] = rt.client().update_pool(pool_id, read_spec(file))
    _show_pool(rt.json, view, f"Pool {pool_id} updated (template version {view.get('template_version')}).")


@pools.command("delete")
def delete_pool(
    ctx: typer.Context,
    pool_id: Annotated[str, typer.Argument(metavar="POOL")],
    desktops: Annotated[
        DesktopsOnDelete | None, typer.Option("--desktops", help="what happens to its desktops (default: the API's)")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Remove a pool (the API refuses while desktops are in use, unless told what to do with them)."""
    rt = runtime(ctx)
    if not yes:
        typer.confirm(f"Remove pool {pool_id}?", abort=True, err=True)
    answer: dict[str, Any] = rt.client().delete_pool(pool_id, desktops.value if desktops else None)
    if rt.json:
        out.emit_json(answer)
    else:
        out.message(f"Pool {pool_id}: {answer.get('status')} ({answer.get('live_desktops', 0)} live desktops).")


@pools.command("enable")
def enable_pool(ctx: typer.Context, pool_id: Annotated[str, typer.Argument(metavar="POOL")]) -> None:
    """Let users claim desktops of the pool again."""
    rt = runtime(ctx)
    _show_pool(rt.json, rt.client().enable_pool(pool_id), f"Pool {pool_id} enabled.")


@pools.command("disable")
def disable_pool(ctx: typer.Context, pool_id: Annotated[str, typer.Argument(metavar="POOL")]) -> None:
    """Stop new claims on the pool (desktops in use are left alone)."""
    rt = runtime(ctx)
    _show_pool(rt.json, rt.client().disable_pool(pool_id), f"Pool {pool_id} disabled.")


@pools.command("increase")
def increase_pool(
    ctx: typer.Context,
    pool_id: Annotated[str, typer.Argument(metavar="POOL")],
    by: Annotated[int, typer.Option("--by", min=1, help="how many desktops to add")] = 1,
    wait: Wait = False,
    timeout: Timeout = 1800,
) -> None:
    """Add desktops to the pool; --wait shows them becoming ready."""
    rt = runtime(ctx)
    client = rt.client()
    view: dict[str, Any] = client.increase_pool(pool_id, by)
    if wait:
        view = wait_for_fill(rt, client, view, timeout)
    _show_pool(rt.json, view, f"Pool {pool_id}: {idle_count(view)} of {fill_target(view)} desktops ready.")


@pools.command("recreate")
def recreate_pool(
    ctx: typer.Context,
    pool_id: Annotated[str, typer.Argument(metavar="POOL")],
    strategy: Annotated[Strategy, typer.Option("--strategy", help="rolling: idle desktops first")] = Strategy.ROLLING,
    wait: Annotated[bool, typer.Option("--wait", help="show progress until the rollout ends")] = False,
    timeout: Timeout = 3600,
) -> None:
    """Recreate the pool's desktops from its current template version."""
    rt = runtime(ctx)
    client = rt.client()
    started: dict[str, Any] = client.recreate_pool(pool_id, strategy.value)
    if not wait:
        if rt.json:
            out.emit_json(started)
        else:
            out.message(f"Rollout {started.get('rollout_id')} started on pool {pool_id} ({strategy.value}).")
        return
    if not rt.json:
        out.note(f"Rollout {started.get('rollout_id')} started on pool {pool_id} ({strategy.value}).")
    final = wait_for_rollout(rt, client, pool_id, timeout)
    out.emit_json(final) if rt.json else out.message(f"Pool {pool_id}: {rollout_text(final)}.")


@pools.command("rollout")
def rollout_status(ctx: typer.Context, pool_id: Annotated[str, typer.Argument(metavar="POOL")]) -> None:
    """Where the pool's current or last template rollout stands."""
    rt = runtime(ctx)
    rollout: dict[str, Any] = rt.client().rollout(pool_id)
    out.emit_json(rollout) if rt.json else out.message(f"Pool {pool_id}: {rollout_text(rollout)}.")
