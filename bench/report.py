"""docs/benchmarks.md and its plots, regenerated from a run's results.

The measured part (tables, plots) comes from the results; what limited each figure and
what was changed is written by hand in bench/findings.md and copied in as it is.
"""

from __future__ import annotations

import json
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt

from bench.harness import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"
FINDINGS = ROOT / "bench" / "findings.md"
# Per-point series are for the plots; the tables leave them out.
SERIES = {"latencies_ms", "ready_samples", "series", "curve", "cloud_requests", "held"}


def headline(key: str, s: dict[str, Any]) -> str:
    """The one line a reader wants from each scenario."""
    if "error" in s:
        return f"did not run: {s['error']}"
    if key == "B1":
        a, b = s["storm_10s"], s["burst_2s"]
        return (
            f"{s['users']} users; 10 s: {a['claims_per_s']} claims/s, p99 {a['p99_ms']} ms, {a['errors']} errors; "
            f"2 s: {b['claims_per_s']} claims/s, p99 {b['p99_ms']} ms, {b['errors']} errors"
        )
    if key == "B2":
        return f"claim p50 {s['claim_p50_ms']} ms / bare Update p50 {s['bare_update_p50_ms']} ms = {s['ratio']}"
    if key == "B3":
        return f"reaction p99 {s['reaction_p99_ms']} ms; {s['creates_per_s']} creates/s = {s['ratio']} of 7.5/s"
    if key == "B4":
        return (
            f"{s['desktops']} desktops in {s['elapsed_s']} s = {s['ratio']} x the cloud's {s['cloud_bound_s']} s; "
            f"lowest ready {s['lowest_ready']} (floor {s['floor']})"
        )
    if key == "B5":
        rss = s["peak_rss_mib"]
        return (
            f"{s['desktops']} desktops ({s['pools']} pools) converged in {s['converged_s']} s; "
            f"peak RSS worker {rss.get('worker')} MiB, server {rss.get('temporal')} MiB; "
            f"longest history {max(s['longest_history'].values())} events"
        )
    if key == "B6":
        points = ", ".join(f"{p['desktops']}: {p['engine_cpu_ms_per_claim']} ms" for p in s["curve"])
        return f"engine CPU per claim by pool size: {points}; growth {s['cpu_per_claim_growth']}x"
    return ""


def figures_table(s: dict[str, Any]) -> list[str]:
    rows = ["| figure | value |", "|---|---|"]
    for name, value in s.items():
        if name in SERIES or name in ("title", "target", "target_met"):
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in SERIES}
        shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        rows.append(f"| {name} | {shown} |")
    return rows


def plot_b1(s: dict[str, Any]) -> str | None:
    if "storm_10s" not in s:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, key in (("10 s Poisson storm", "storm_10s"), ("2 s burst", "burst_2s")):
        ax.plot(s[key].get("latencies_ms", []), ".", markersize=2, label=label)
    ax.set(xlabel="claim (in arrival order)", ylabel="time to desktop (ms)", yscale="log", title="B1 login storm")
    ax.legend()
    return save(fig, "b1_storm.png")


def plot_b4(s: dict[str, Any]) -> str | None:
    samples = s.get("ready_samples") or []
    if not samples:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t for t, _ in samples], [r for _, r in samples], label="ready")
    ax.axhline(s["floor"], color="red", linestyle="--", label="floor")
    ax.set(xlabel="seconds since Recreate", ylabel="ready desktops", title="B4 recreate")
    ax.legend()
    return save(fig, "b4_recreate.png")


def plot_b5(s: dict[str, Any]) -> str | None:
    series = s.get("series") or []
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name in ("worker", "temporal", "api"):
        points = [(row["t"], row[name]["rss_mib"]) for row in series if name in row]
        ax.plot([t for t, _ in points], [v for _, v in points], label=f"{name} RSS")
    ax.set(xlabel="seconds", ylabel="MiB", title=f"B5 scale: {s['desktops']} desktops on one worker")
    ax.legend()
    return save(fig, "b5_scale.png")


def plot_b6(s: dict[str, Any]) -> str | None:
    curve = s.get("curve") or []
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sizes = [p["desktops"] for p in curve]
    ax.plot(sizes, [p["engine_cpu_ms_per_claim"] for p in curve], "o-", label="engine CPU per claim (ms)")
    ax.plot(sizes, [p["p99_ms"] for p in curve], "s-", label="p99 time to desktop (ms)")
    ax.set(xscale="log", xlabel="desktops in the pool", title="B6 growth")
    ax.legend()
    return save(fig, "b6_growth.png")


def save(fig: Any, name: str) -> str:
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOTS / name, dpi=100)
    plt.close(fig)
    return f"benchmarks/{name}"


PLOTTERS = {"B1": plot_b1, "B4": plot_b4, "B5": plot_b5, "B6": plot_b6}


def render(results: dict[str, Any], findings: str) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`, bench/report.py) from bench/results/latest.json;",
        "the analysis under *Findings* is bench/findings.md. Do not edit this file by hand.",
        "",
        f"Measured {m['date']} on {m['cores']} cores, {m['memory_gib']} GiB ({m['cpu']}), Python {m['python']},",
        f"temporalio {m['temporalio']}, openstacksdk {m['openstacksdk']}, deskpool {m['deskpool_revision']};",
        f"{'reduced sizes (--quick)' if results.get('quick') else 'full sizes'}; {results['seconds']} s in all.",
        "",
        "| id | scenario | result | target | met |",
        "|---|---|---|---|---|",
    ]
    for key, s in results["scenarios"].items():
        met = "yes" if s.get("target_met") else "**no**"
        title = f"{s['title']} (reduced sizes)" if s.get("reduced") and not results.get("quick") else s["title"]
        lines.append(f"| {key} | {title} | {headline(key, s)} | {s.get('target', '')} | {met} |")
    lines += ["", findings.strip(), ""]
    for key, s in results["scenarios"].items():
        lines += [f"## {key} {s['title']}", "", *figures_table(s), ""]
        plotter = PLOTTERS.get(key)
        image = plotter(s) if plotter and "error" not in s else None
        if image:
            lines += [f"![{key}]({image})", ""]
    return "\n".join(lines)


def write(results: dict[str, Any]) -> None:
    findings = FINDINGS.read_text() if FINDINGS.exists() else ""
    DOC.write_text(render(results, findings))
