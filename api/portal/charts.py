"""A pool's ready / assigned / waiting counts over time, drawn on the server as inline SVG.

The samples come from the pool_sample table (the pool projection writes one row per pool per
time bucket, activities/projection.py). Counts are step functions: each sample holds until the
next one, and the last until now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from markupsafe import Markup, escape
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from activities.store.models import PoolSample

SERIES = (("ready", "Ready", "#1b7f3b"), ("assigned", "Assigned", "#1f5fbf"), ("waiting", "Waiting", "#a35a00"))
# Equal counts would hide one line behind another: each series sits a little apart, waiting dashed.
NUDGE = {"ready": -2.0, "assigned": 0.0, "waiting": 2.0}
DASHES = {"waiting": ' stroke-dasharray="6 3"'}
WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "3d": timedelta(days=3)}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 200, 36, 8, 10, 24


@dataclass(frozen=True)
class Point:
    at: datetime
    ready: int
    assigned: int
    waiting: int


def load_points(engine: Engine, pool_id: str, start: datetime) -> list[Point]:
    """The pool's samples since `start`, and the last one before it (the counts at the start)."""
    with Session(engine) as session:
        before = session.exec(
            select(PoolSample)
            .where(PoolSample.pool_id == pool_id, col(PoolSample.at) < start)
            .order_by(col(PoolSample.at).desc())
            .limit(1)
        ).all()
        rows = session.exec(
            select(PoolSample)
            .where(PoolSample.pool_id == pool_id, col(PoolSample.at) >= start)
            .order_by(col(PoolSample.at))
        ).all()
    return [Point(_naive(r.at), r.ready, r.assigned, r.waiting) for r in [*before, *rows]]


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None) if at.tzinfo else at


def line_chart(points: list[Point], start: datetime, end: datetime, title: str) -> Markup:
    """Step lines of the three series between `start` and `end` (naive UTC), with axes and a label
    that says the latest counts in words (for screen readers)."""
    start, end = _naive(start), _naive(end)
    if points and points[0].at > start:
        start = points[0].at  # a pool younger than the window: its life fills the width
    span = max((end - start).total_seconds(), 1.0)
    top = max([1, *(max(p.ready, p.assigned, p.waiting) for p in points)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        offset = min(max((at - start).total_seconds(), 0.0), span)
        return round(LEFT + plot_w * offset / span, 1)

    def y(value: int) -> float:
        return round(TOP + plot_h * (1 - value / top), 1)

    parts = [f'<line x1="{LEFT}" y1="{y(0)}" x2="{WIDTH - RIGHT}" y2="{y(0)}" stroke="#9aa4b2"/>']
    for tick in sorted({0, top // 2, top}):
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4}" text-anchor="end" font-size="11">{tick}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y(tick)}" x2="{WIDTH - RIGHT}" y2="{y(tick)}" stroke="#e3e8ef"/>')
    clock = "%H:%M:%S" if span < 600 else "%H:%M"  # a young pool: its seconds
    for label, at, anchor in ((start.strftime(clock), start, "start"), (end.strftime(f"{clock} UTC"), end, "end")):
        parts.append(f'<text x="{x(at)}" y="{HEIGHT - 6}" text-anchor="{anchor}" font-size="11">{label}</text>')
    for key, _, colour in SERIES:
        path = step_path([(x(p.at), round(y(getattr(p, key)) + NUDGE[key], 1)) for p in points], x(end))
        if path:
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{DASHES.get(key, "")} '
                         f'data-series="{key}"/>')  # fmt: skip
    latest = points[-1] if points else Point(end, 0, 0, 0)
    summary = ", ".join(f"{getattr(latest, key)} {name.lower()}" for key, name, _ in SERIES)
    label = f"{title}: now {summary}" if points else f"{title}: no samples yet"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )


def step_path(points: list[tuple[float, float]], end_x: float) -> str:
    """An SVG path holding each value until the next point, the last until end_x."""
    if not points:
        return ""
    commands = [f"M{points[0][0]},{points[0][1]}"]
    for (_, prev_y), (px, py) in pairwise(points):
        commands.append(f"H{px}")
        if py != prev_y:
            commands.append(f"V{py}")
    commands.append(f"H{end_x}")
    return " ".join(commands)
