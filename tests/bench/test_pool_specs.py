"""The benchmark's pools are valid pools at every size a scenario asks for (B1 asked for 1,000
desktops with the seeds' 3 naming digits and was refused before it began)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from bench.harness import pool_spec
from workflows.pool_spec import PoolSpec


@pytest.mark.parametrize(("name", "size"), [("Storm", 1000), ("Growth", 5000), ("Scale 099", 100), ("Refill", 600)])
def test_a_bench_pool_of_any_size_is_a_valid_pool(name: str, size: int) -> None:
    spec = TypeAdapter(PoolSpec).validate_python(pool_spec(name, prestarted=size, max_desktops=size))
    assert spec.max_desktops == size
    assert len(spec.desktop_name(size)) <= 15  # a Windows computer name
