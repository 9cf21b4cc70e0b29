"""Image, flavor and network ids are looked up once per name, not at every create."""

from __future__ import annotations

import time

from activities.cloud_driver import NameCache


def test_a_name_is_looked_up_once_and_kept() -> None:
    names, lookups = NameCache(), []

    def lookup() -> str:
        lookups.append(1)
        return "id-1"

    assert [names.resolve("image", "win11", lookup) for _ in range(3)] == ["id-1"] * 3
    assert len(lookups) == 1
    assert names.resolve("flavor", "win11", lambda: "id-2") == "id-2"  # kinds do not mix


def test_ids_expire_and_can_be_forgotten() -> None:
    names = NameCache(ttl_s=0.05)
    assert names.resolve("image", "a", lambda: "old") == "old"
    time.sleep(0.1)
    assert names.resolve("image", "a", lambda: "new") == "new"
    names.forget()
    assert names.resolve("image", "a", lambda: "newer") == "newer"
