"""The benchmark harness still drives the real processes: B2 at its quick size, end to end.

Not a performance check (figures are not asserted against targets here, only that they
were measured); it keeps `make bench` from rotting between runs.
"""

from __future__ import annotations

from pathlib import Path

from bench.scenarios import b2_overhead


def test_b2_measures_a_claim_and_a_bare_update_on_real_processes(tmp_path: Path) -> None:
    figures = b2_overhead.run(tmp_path / "b2", quick=True)
    assert figures["claims"] == 30
    assert figures["bare_update_p50_ms"] > 0 and figures["claim_p50_ms"] > 0
    assert abs(figures["ratio"] - figures["claim_p50_ms"] / figures["bare_update_p50_ms"]) < 0.05
    assert figures["target_met"] is (figures["ratio"] <= 3)
