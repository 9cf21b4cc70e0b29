"""Waits share one changes-since listing per interval instead of a GET each."""

from __future__ import annotations

from typing import Any, cast

from activities.cloud_driver import CloudDriver, ServerInfo
from activities.server_watch import SINCE_MARGIN_S, ServerWatch


class ListingCloud:
    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.gets = 0
        self.listings: list[float] = []

    def get(self, server_id: str) -> ServerInfo | None:
        self.gets += 1
        status = self.status.get(server_id)
        return None if status is None else ServerInfo(server_id, server_id, status)

    def list_changed(self, since: float) -> list[ServerInfo]:
        self.listings.append(since)
        return [ServerInfo(sid, sid, status) for sid, status in self.status.items()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_of(clock: Clock) -> ServerWatch:
    return ServerWatch(interval_s=0.5, recheck_s=15.0, clock=clock, wall_clock=lambda: clock.now + 5_000.0)


def test_thirty_waits_cost_one_listing_per_interval_not_thirty_gets() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    ids = [f"srv-{n}" for n in range(30)]
    for sid in ids:
        cloud.status[sid] = "BUILD"
        watch.note(ServerInfo(sid, sid, "BUILD"))  # what the create answered
    for _ in range(8):  # four seconds of looks, every 0.5 s, by all thirty waits
        clock.now += 0.5
        assert {watch.current(sid, driver).status for sid in ids} == {"BUILD"}  # type: ignore[union-attr]
    assert cloud.gets == 0 and len(cloud.listings) == 8
    cloud.status.update({sid: "ACTIVE" for sid in ids})
    clock.now += 0.5
    seen = [watch.current(sid, driver) for sid in ids]
    assert all(s is not None and s.status == "ACTIVE" for s in seen) and len(cloud.listings) == 9


def test_each_listing_reaches_back_before_the_previous_one_began() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    cloud.status["a"] = "BUILD"
    watch.note(ServerInfo("a", "a", "BUILD"))
    clock.now += 1
    watch.current("a", driver)
    began = clock.now + 5_000.0
    clock.now += 1
    watch.current("a", driver)
    assert cloud.listings[1] == began - SINCE_MARGIN_S


def test_a_server_first_asked_about_is_fetched_and_a_vanished_one_is_noticed_at_the_recheck() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    cloud.status["b"] = "ACTIVE"
    found = watch.current("b", driver)
    assert found is not None and found.status == "ACTIVE" and cloud.gets == 1
    del cloud.status["b"]  # deleted: it leaves the listing, which therefore cannot tell
    clock.now += 1
    assert watch.current("b", driver) is not None
    clock.now += 15
    assert watch.current("b", driver) is None and cloud.gets == 2


def test_entries_nobody_asks_about_are_dropped() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    for sid in ("c", "d"):
        cloud.status[sid] = "ACTIVE"
        watch.current(sid, driver)
    for _ in range(40):  # only "c" is still being waited on
        clock.now += 1
        watch.current("c", driver)
    entries: dict[str, Any] = watch._entries
    assert set(entries) == {"c"}


def test_after_forget_the_next_look_is_a_get() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    cloud.status["e"] = "ACTIVE"
    watch.note(ServerInfo("e", "e", "ACTIVE"))
    cloud.status["e"] = "REBOOT"  # a reboot was just asked for
    watch.forget("e")
    seen = watch.current("e", driver)
    assert seen is not None and seen.status == "REBOOT" and cloud.gets == 1
