"""`python -m bench.chaos` (make chaos): run the scenarios C1..C6 on real processes, check the
invariants after each, write bench/results/chaos.json. `--short` runs the small versions
(what tests/chaos runs inside make test); `--only C1,C3` picks scenarios."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos.common import FULL, SHORT, Scale, ScenarioResult
from bench.harness import ROOT, machine

Scenario = Callable[[Path, Scale], ScenarioResult]


def scenarios() -> dict[str, Scenario]:
    from bench.chaos.cloud_faults import c3_cloud_faults
    from bench.chaos.directory import c5_directory_down
    from bench.chaos.processes import c1_worker_kills, c2_temporal_restart, c6_api_kills
    from bench.chaos.read_model import c4_postgresql, c4_sqlite

    return {
        "C1": c1_worker_kills,
        "C2": c2_temporal_restart,
        "C3": c3_cloud_faults,
        "C4-sqlite": c4_sqlite,
        "C4-postgresql": c4_postgresql,
        "C5": c5_directory_down,
        "C6": c6_api_kills,
    }


def run(
    selected: list[str], scale: Scale, work: Path, results: dict[str, Any], written: Callable[[], None]
) -> dict[str, Any]:
    """Each scenario in turn; the report is written after each (an interrupted run keeps what it did)."""
    available = scenarios()
    for key in selected:
        began = time.monotonic()
        print(f"[chaos] {key} ({scale.name}) ...", flush=True)
        try:
            result = available[key](work / key, scale)
            outcome = result.to_json()
        except Exception as exc:  # noqa: BLE001 - a scenario that cannot run is reported, the others still run
            outcome = {"id": key, "passed": False, "error": f"{type(exc).__name__}: {exc}"}
        outcome["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        outcome["revision"] = machine()["deskpool_revision"]  # --merge may combine runs of several
        results[key] = outcome
        written()
        verdict = "PASS" if outcome.get("passed") else "FAIL"
        print(f"[chaos] {key}: {verdict} in {time.monotonic() - began:.0f} s "
              f"{outcome.get('invariants', outcome.get('error'))}", flush=True)  # fmt: skip
    return results


def table(report: dict[str, Any]) -> str:
    """The results as a markdown table (docs/reliability.md)."""
    m = report["machine"]
    lines = [
        f"{m['date']}, {report['scale']['name']} size, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Python {m['python']}, temporalio {m['temporalio']}, openstacksdk {m['openstacksdk']}, "
        f"deskpool {m['deskpool_revision']}; "
        f"{report['seconds']:.0f} s in all.",
        "",
        "| scenario | faults | claims served | 503s answered | converged after last fault | invariants broken | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in report["scenarios"].items():
        if "error" in r:
            lines.append(f"| {key} | — | — | — | — | could not run: {r['error']} | — |")
            continue
        claims = r.get("claims", {})
        broken = [name for name, held in r["invariants"].items() if not held]
        converged = _converged(r["details"])
        lines.append(
            f"| {key} | {len(r['faults'])} | {claims.get('served', 0)} of {claims.get('users', 0)} | "
            f"{claims.get('answers_503', 0)} | {converged} | "
            f"{', '.join(broken) or 'none'} ({len(r['invariants']) - len(broken)} of {len(r['invariants'])} held) | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def _converged(details: dict[str, Any]) -> str:
    after_fault = details.get("converged_after_last_fault_s")
    if after_fault is None:
        return "not within the limit"
    outlasted = details.get("storm_outlasted_faults_s") or 0
    if outlasted <= 0:
        return f"{after_fault} s"
    return f"{after_fault} s ({details.get('converged_after_faults_and_storm_s')} s after the storm's end)"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the small versions (as in make test)")
    parser.add_argument("--only", default="", help="comma-separated scenario ids, e.g. C1,C4-sqlite")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep the stacks' data and logs here")
    parser.add_argument("--merge", action="store_true", help="keep the other scenarios already in --out")
    parser.add_argument("--table", type=Path, default=None, help="print a results file as a markdown table; no run")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    names = list(scenarios())
    selected = [s.strip() for s in args.only.split(",") if s.strip()] or names
    unknown = [s for s in selected if s not in names]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {names}")
    scale = SHORT if args.short else FULL
    began = time.monotonic()
    results: dict[str, Any] = {}
    if args.merge and args.out.exists():
        earlier = json.loads(args.out.read_text())
        if earlier.get("scale", {}).get("name") == scale.name:
            results = {k: v for k, v in earlier.get("scenarios", {}).items() if k not in selected}
    report: dict[str, Any] = {}

    def written() -> None:
        report.update({
            "scale": scale.__dict__,
            "machine": machine(),
            "seconds": round(time.monotonic() - began, 1),
            "scenarios": {key: results[key] for key in scenarios() if key in results},
            "passed": all(r.get("passed") for r in results.values()),
        })  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    if args.keep:
        run(selected, scale, args.keep.resolve(), results, written)
    else:
        with tempfile.TemporaryDirectory(prefix="deskpool-chaos-") as work:
            run(selected, scale, Path(work), results, written)
    print(f"[chaos] wrote {args.out}: {'all invariants held' if report['passed'] else 'SOME INVARIANTS FAILED'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
