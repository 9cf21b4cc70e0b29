"""Histories made under a storm (claims, agent connects and Releases together), with every workflow
task handled cold (no workflow cache, as after a worker restart), replay on the code that made them.
Finding 5 of docs/reliability.md; `python -m tests.workflows.replay_storm` runs longer storms."""

from __future__ import annotations

from pathlib import Path

from tests.workflows.replay_storm import main


async def test_histories_made_cold_under_a_storm_replay(tmp_path: Path) -> None:
    assert await main(rounds=4, keep=tmp_path / "failed", cached=0) == 0, sorted((tmp_path / "failed").glob("*"))
