"""Workflow code is deterministic: no wall clock, no randomness, no I/O in workflows/.

The sandbox still blocks most of these at run time; this check also covers the
datetime module, which the worker leaves unrestricted (see worker/main.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
FORBIDDEN = {
    r"\bdatetime\.now\(|\bdatetime\.utcnow\(|\.today\(\)": "wall clock (use workflow.now())",
    r"\btime\.(time|monotonic|perf_counter|sleep)\(": "wall clock or blocking sleep (use workflow timers)",
    r"^\s*import random|\brandom\.\w+\(|\buuid\.uuid[14]\(": "randomness (use workflow.random() / workflow.uuid4())",
    r"\bopen\(|\brequests\.|\bhttpx\.|\bsqlmodel\b|\bsqlalchemy\b|\bopenstack\b|\bldap3\b": (
        "I/O (belongs in activities/)"
    ),
}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.py")), ids=lambda p: p.name)
def test_workflow_module_has_no_wall_clock_randomness_or_io(path: Path) -> None:
    source = path.read_text()
    found = [
        f"{path.name}:{number}: {why}: {line.strip()}"
        for number, line in enumerate(source.splitlines(), start=1)
        for pattern, why in FORBIDDEN.items()
        if re.search(pattern, line) and not line.strip().startswith("#")
    ]
    assert not found, "\n".join(found)


def test_the_guard_catches_what_it_forbids(tmp_path: Path) -> None:
    bad = "from datetime import datetime\nstarted = datetime.now()\n"
    assert any(re.search(p, bad.splitlines()[1]) for p in FORBIDDEN)
