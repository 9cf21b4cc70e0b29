"""The short version of each chaos scenario (bench/chaos, `make chaos` runs the full ones): a few
faults on small pools, on real processes, every invariant checked against the cloud, the
workflows and the read model. A failing invariant prints the scenario's whole result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos.__main__ import scenarios
from bench.chaos.common import SHORT

# Found by C3 and C4, not fixed here (docs/reliability.md, "Findings"). Strict: once one holds, its line must go.
# - While the cloud is down, provisioning retries inside its activity and the pool never hears a
#   failure, so it does not show "restrained" during an outage (the pool workflow's business).
# - The limit is on each HTTP request the worker sends (activities/cloud_rate.py), yet the cloud,
#   counting per second of its own clock, still sees peaks above it (14 for 10/s; 27 to 30 when the
#   limit counted operations). Not explained yet: a thread held between its token and its request
#   reaching the cloud is one candidate, a request path around the session another.
KNOWN_GAPS = {
    ("C3", "restrained_with_reason_during_outage"),
    ("C3", "cloud_rate_within_limit"),
}


@pytest.mark.parametrize("scenario", list(scenarios()))
def test_short_scenario_keeps_every_invariant(scenario: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if scenario == "C4-postgresql" and not request.getfixturevalue("postgres_available"):
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432: C4 on PostgreSQL not run")
    result = scenarios()[scenario](tmp_path, SHORT)
    report = json.dumps(result.to_json(), indent=1, default=str)
    assert result.invariants, report
    failed = {name for name, held in result.invariants.items() if not held}
    gaps = {name for (sid, name) in KNOWN_GAPS if sid == result.id}
    assert not failed - gaps, report
    assert not gaps - failed, f"known gap {sorted(gaps - failed)} holds now: remove it from KNOWN_GAPS\n{report}"
