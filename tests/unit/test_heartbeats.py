"""Keep-alive heartbeats repeat an attempt's last details, and only in activities that opted in."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities import heartbeats
from activities.heartbeats import beat, keep_alive, kept_alive


def recording(env: ActivityEnvironment) -> list[tuple[Any, ...]]:
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return beats


@activity.defn
@kept_alive
def asks_then_waits() -> str:
    keep_alive()  # before its own first beat: the details the attempt before it left
    beat("reboot requested")
    heartbeats._attempt.last_s = float("-inf")  # as if a second had passed
    keep_alive()
    keep_alive()  # within the second: not sent again
    return "done"


def test_keep_alive_repeats_the_last_details_of_this_attempt_or_the_one_before() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=["earlier marker"])
    beats = recording(env)
    assert env.run(asks_then_waits) == "done"
    assert beats == [("earlier marker",), ("reboot requested",), ("reboot requested",)]


@activity.defn
def not_opted_in() -> None:
    keep_alive()


def test_keep_alive_is_silent_in_an_activity_that_did_not_opt_in() -> None:
    env = ActivityEnvironment()
    beats = recording(env)
    env.run(not_opted_in)
    assert beats == []


def test_keep_alive_is_silent_on_another_thread_and_after_the_activity() -> None:
    seen: list[tuple[Any, ...]] = []

    @activity.defn
    @kept_alive
    def hands_work_to_a_thread() -> None:
        worker = threading.Thread(target=keep_alive)  # no attempt registered on that thread
        worker.start()
        worker.join()

    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: seen.append(details)
    env.run(hands_work_to_a_thread)
    keep_alive()  # outside any activity: nothing, no error
    assert seen == []
