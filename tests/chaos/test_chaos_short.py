"""The short version of each chaos scenario (bench/chaos, `make chaos` runs the full ones): a few
faults on small pools, on real processes, every invariant checked against the cloud, the
workflows and the read model. A failing invariant prints the scenario's whole result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos.__main__ import scenarios
from bench.chaos.common import SHORT

# Found by the scenarios, not fixed (docs/reliability.md, "Findings"). Strict: once one holds, its
# line must go. None at present (finding 2, the pool not restrained during an outage, holds since
# the provisioning desktop reports a sick cloud to its pool).
KNOWN_GAPS: set[tuple[str, str]] = set()
# Seen both ways, so allowed either way (and reported). None at present: C3's request rate
# (finding 3) holds since the chaos judge's own listings are told apart from deskpool's and
# tokens go at 90 % of the limit (activities/cloud_rate.py).
INTERMITTENT_GAPS: set[tuple[str, str]] = set()


@pytest.mark.parametrize("scenario", list(scenarios()))
def test_short_scenario_keeps_every_invariant(scenario: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if scenario == "C4-postgresql" and not request.getfixturevalue("postgres_available"):
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432: C4 on PostgreSQL not run")
    result = scenarios()[scenario](tmp_path, SHORT)
    report = json.dumps(result.to_json(), indent=1, default=str)
    assert result.invariants, report
    failed = {name for name, held in result.invariants.items() if not held}
    gaps = {name for (sid, name) in KNOWN_GAPS if sid == result.id}
    intermittent = {name for (sid, name) in INTERMITTENT_GAPS if sid == result.id}
    assert not failed - gaps - intermittent, report
    assert not gaps - failed, f"known gap {sorted(gaps - failed)} holds now: remove it from KNOWN_GAPS\n{report}"
