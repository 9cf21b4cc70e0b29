"""`make bench` / `make bench-quick`: run the scenarios B1..B6 on real processes and report.

    python -m bench [--quick] [--only B1,B3]

A full run writes bench/results/latest.json and regenerates docs/benchmarks.md with its
plots; a quick run (reduced sizes, a few minutes) writes bench/results/quick.json only.
A scenario that fails is reported with its error; the others still run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import ROOT, machine
from bench.scenarios import b1_storm, b2_overhead, b3_refill, b4_recreate, b5_scale, b6_growth

SCENARIOS: dict[str, tuple[str, Callable[[Path, bool], dict[str, Any]]]] = {
    "B1": ("login storm", b1_storm.run),
    "B2": ("claim overhead", b2_overhead.run),
    "B3": ("refill", b3_refill.run),
    "B4": ("recreate", b4_recreate.run),
    "B5": ("scale", b5_scale.run),
    "B6": ("growth", b6_growth.run),
}
RESULTS = ROOT / "bench" / "results"


def run(only: list[str], quick: bool, work: Path, reduced: frozenset[str] = frozenset()) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "scenarios": {}}
    for key in only:
        title, scenario = SCENARIOS[key]
        small = quick or key in reduced
        print(f"{key} {title}{' (reduced sizes)' if small else ''}...", flush=True)
        started = time.monotonic()
        try:
            outcome = scenario(work / key.lower(), small)
        except Exception as exc:  # noqa: BLE001 - one scenario's failure is reported, the rest still run
            traceback.print_exc()
            outcome = {"error": f"{type(exc).__name__}: {exc}", "target_met": False}
        outcome = {"title": title, "reduced": small, **outcome, "seconds": round(time.monotonic() - started, 1)}
        results["scenarios"][key] = outcome
        print(f"{key} {title}: target met: {outcome['target_met']} ({outcome['seconds']} s)", flush=True)
    results["seconds"] = round(sum(s["seconds"] for s in results["scenarios"].values()), 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (make bench-quick)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenario ids, comma-separated")
    parser.add_argument(
        "--reduced", default="", help="scenario ids run at the quick sizes in a full run (said so in the report)"
    )
    args = parser.parse_args(argv)
    only = [key.strip().upper() for key in args.only.split(",") if key.strip()]
    reduced = frozenset(key.strip().upper() for key in args.reduced.split(",") if key.strip())
    for option, keys in (("--only", only), ("--reduced", sorted(reduced))):
        unknown = [key for key in keys if key not in SCENARIOS]
        if unknown:
            parser.error(f"{option}: unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    with tempfile.TemporaryDirectory(prefix="deskpool-bench-") as work:
        results = run(only, args.quick, Path(work), reduced)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("quick.json" if args.quick else "latest.json")
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if not args.quick:
        report.write(results)
        print(f"wrote {report.DOC.relative_to(ROOT)}")
    for key, outcome in results["scenarios"].items():
        print(f"  {key} {outcome['title']:<15} target met: {outcome['target_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
