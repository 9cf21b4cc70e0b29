"""docs/benchmarks.md is rendered from a run's results: headlines, targets, plots, findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report

MACHINE = {
    "date": "2026-11-21T12:00:00+00:00",
    "cores": 2,
    "memory_gib": 23.4,
    "cpu": "x86_64",
    "python": "3.11.7",
    "temporalio": "1.x",
    "openstacksdk": "4.x",
    "deskpool_revision": "abc1234",
}


def results() -> dict[str, Any]:
    storm = {"claims": 3, "claims_per_s": 50.0, "p99_ms": 120.0, "errors": 0, "latencies_ms": [10.0, 20.0, 120.0]}
    return {
        "machine": MACHINE,
        "quick": False,
        "seconds": 12.5,
        "scenarios": {
            "B1": {
                "title": "login storm",
                "users": 3,
                "storm_10s": storm,
                "burst_2s": {**storm, "p99_ms": 1500.0},
                "target": "p99 <= 1 s",
                "target_met": False,
            },
            "B4": {
                "title": "recreate",
                "desktops": 10,
                "floor": 5,
                "elapsed_s": 20.0,
                "cloud_bound_s": 16.0,
                "ratio": 1.25,
                "lowest_ready": 6,
                "ready_samples": [[0.0, 10], [1.0, 6], [2.0, 10]],
                "target": "<= 1.25",
                "target_met": True,
            },
            "B2": {"title": "claim overhead", "error": "RuntimeError: no stack", "target_met": False},
        },
    }


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(report, "PLOTS", tmp_path / "benchmarks")
    return tmp_path


def test_each_scenario_gets_its_headline_target_and_verdict(out: Path) -> None:
    text = report.render(results(), "## Findings\n\nThe pool's update was the limit.")
    assert "| B1 | login storm | 3 users; 10 s: 50.0 claims/s, p99 120.0 ms" in text
    assert "2 s: 50.0 claims/s, p99 1500.0 ms, 0 errors | p99 <= 1 s | **no** |" in text
    assert "| B4 | recreate | 10 desktops in 20.0 s = 1.25 x the cloud's 16.0 s; lowest ready 6 (floor 5)" in text
    assert "| B2 | claim overhead | did not run: RuntimeError: no stack |" in text
    assert "## Findings\n\nThe pool's update was the limit." in text
    assert "2 cores, 23.4 GiB" in text and "deskpool abc1234" in text
    assert "latencies_ms" not in text  # series go to plots, not tables


def test_plots_are_written_for_the_scenarios_that_have_series(out: Path) -> None:
    text = report.render(results(), "")
    assert "![B1](benchmarks/b1_storm.png)" in text and "![B4](benchmarks/b4_recreate.png)" in text
    assert (out / "benchmarks" / "b1_storm.png").stat().st_size > 1000
    assert (out / "benchmarks" / "b4_recreate.png").read_bytes()[:4] == b"\x89PNG"
