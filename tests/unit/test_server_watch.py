"""Waits share one changes-since listing per interval instead of a GET each."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from temporalio.exceptions import ApplicationError

from activities.cloud_driver import CloudDriver, ServerInfo
from activities.server_watch import SINCE_MARGIN_S, WAKE_AFTER_DUE_S, ServerWatch


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


def test_waits_sleep_until_the_next_listing_falls_due() -> None:
    cloud, clock = ListingCloud(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    cloud.status["a"] = "BUILD"
    watch.note(ServerInfo("a", "a", "BUILD"))
    clock.now += 1
    watch.current("a", driver)  # lists now
    clock.now += 0.2
    assert abs(watch.next_look_in() - (0.3 + WAKE_AFTER_DUE_S)) < 1e-9
    clock.now += 0.4
    assert watch.next_look_in() == WAKE_AFTER_DUE_S  # overdue: look at once


class BlockingListing(ListingCloud):
    """The first listing answers only when `answer` is set; later ones at once."""

    def __init__(self) -> None:
        super().__init__()
        self.listing_began, self.answer = threading.Event(), threading.Event()

    def list_changed(self, since: float) -> list[ServerInfo]:
        self.listing_began.set()
        self.answer.wait(5)
        return super().list_changed(since)


def test_a_look_while_another_wait_lists_takes_in_that_listing_instead_of_the_one_before() -> None:
    cloud, clock = BlockingListing(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    cloud.status["a"] = cloud.status["b"] = "BUILD"
    watch.note(ServerInfo("a", "a", "BUILD"))
    watch.note(ServerInfo("b", "b", "BUILD"))
    clock.now += 1
    seen: dict[str, Any] = {}
    lister = threading.Thread(target=lambda: seen.update(a=watch.current("a", driver)))
    lister.start()
    assert cloud.listing_began.wait(5)
    cloud.status["b"] = "ACTIVE"  # changed while the listing is under way
    looker = threading.Thread(target=lambda: seen.update(b=watch.current("b", driver)))
    looker.start()
    looker.join(0.2)
    assert looker.is_alive()  # waiting for the listing, not answering from the one before
    cloud.answer.set()
    lister.join(5)
    looker.join(5)
    assert seen["b"].status == "ACTIVE" and len(cloud.listings) == 1


class FailingListing(ListingCloud):
    def list_changed(self, since: float) -> list[ServerInfo]:
        self.listings.append(since)
        raise ApplicationError("cloud unavailable")


def test_a_failed_listing_is_tried_again_once_an_interval_not_by_every_wait() -> None:
    cloud, clock = FailingListing(), Clock()
    watch, driver = watch_of(clock), cast(CloudDriver, cloud)
    for sid in ("a", "b", "c"):
        watch.note(ServerInfo(sid, sid, "BUILD"))
    clock.now += 1
    with pytest.raises(ApplicationError):
        watch.current("a", driver)
    assert [watch.current(sid, driver).status for sid in ("b", "c")] == ["BUILD", "BUILD"]  # type: ignore[union-attr]
    assert len(cloud.listings) == 1
    clock.now += 0.5
    with pytest.raises(ApplicationError):
        watch.current("b", driver)
    assert len(cloud.listings) == 2
