"""Scheduled capacity over the API and the real engine: rules become Temporal Schedules on the dev
server (next firings honour the time zone, dates and holidays), a trigger changes the pool's sizing
and is audited, pause/unpause/edit/delete reach the schedule, bad input names the field, a sizing
the pool refuses fails its change workflow visibly, and a removed pool's rule removes itself."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.client import Client, ScheduleOverlapPolicy, ScheduleRange
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from tests.engine_api import until, who

TEMPLATE = {"image": "win11-golden", "flavor": "vdi.medium"}
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


async def make_pool(api: httpx.AsyncClient) -> str:
    body = {"template": TEMPLATE, "name": f"Capacity {uuid.uuid4().hex[:6]}", "naming_mask": "cap-",
            "prestarted": 1, "max_desktops": 3}  # fmt: skip
    made = await api.post("/pools", json=body, headers=who(api, "root"))
    assert made.status_code == 201, made.text
    pool_id: str = made.json()["id"]
    return pool_id


def times(view: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(t) for t in view["next_action_times"]]


async def audit(api: httpx.AsyncClient, pool: str, **filters: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (
        await api.get("/audit", params={"pool": pool, **filters}, headers=who(api, "root"))
    ).json()
    return events


async def schedule_gone(client: Client, schedule_id: str) -> bool:
    try:
        await client.get_schedule_handle(schedule_id).describe()
    except RPCError as err:
        assert err.status is RPCStatusCode.NOT_FOUND, err
        return True
    return False


async def test_rules_fire_on_their_calendar_skip_holidays_and_change_the_pool(
    api: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    root = who(api, "root")
    pool = await make_pool(api)
    # Half a day from now in Berlin, so which day fires first does not depend on when the test runs.
    now = datetime.now(BERLIN)
    hour = (now.hour + 12) % 24
    today = now.date()
    holidays = [today + timedelta(days=1), today + timedelta(days=3)]
    mornings = {"name": "Mornings", "calendar": {"hour": hour, "minute": 30, "time_zone": "Europe/Berlin"},
                "skip_dates": [d.isoformat() for d in holidays],
                "sizing": {"prestarted": 2, "max_desktops": 4}}  # fmt: skip
    made = await api.post(f"/pools/{pool}/schedules", json=mornings, headers=root)
    assert made.status_code == 201, made.text
    view = made.json()
    assert (view["schedule_id"], view["paused"], view["last_run"]) == (f"capacity/{pool}/mornings", False, None)

    # Every day at hour:30 Berlin time, the holidays left out: the server's next ten firings.
    expected, day = [], today
    while len(expected) < 10:
        at = datetime.combine(day, time(hour, 30), BERLIN)
        if at > now and day not in holidays:
            expected.append(at)
        day += timedelta(days=1)
    assert times(view) == expected
    assert all(t.utcoffset() == t.astimezone(BERLIN).utcoffset() for t in times(view))  # shown in Berlin time
    described = await dev_env.client.get_schedule_handle(f"capacity/{pool}/mornings").describe()
    assert described.info.next_action_times == [t.astimezone(ZoneInfo("UTC")) for t in expected]
    assert not {t.astimezone(BERLIN).date() for t in described.info.next_action_times} & set(holidays)
    assert described.schedule.spec.time_zone_name == "Europe/Berlin"
    assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert described.schedule.policy.catchup_window == timedelta(minutes=10)

    # A rule on given dates only, in another zone.
    dates = [today + timedelta(days=5), today + timedelta(days=9)]
    eve = {"name": "Christmas eve", "calendar": {"dates": [d.isoformat() for d in dates], "hour": 12,
           "time_zone": "America/New_York"}, "sizing": {"min_desktops": 1}}  # fmt: skip
    made = await api.post(f"/pools/{pool}/schedules", json=eve, headers=root)
    assert made.status_code == 201, made.text
    assert times(made.json()) == [datetime.combine(d, time(12), NEW_YORK) for d in dates]

    listed = (await api.get(f"/pools/{pool}/schedules", headers=root)).json()
    assert [(r["name"], r["recreated"]) for r in listed] == [("Christmas eve", False), ("Mornings", False)]
    clash = await api.post(f"/pools/{pool}/schedules", json={**mornings, "name": "MORNINGS"}, headers=root)
    assert clash.status_code == 409 and clash.json()["detail"].startswith("name:")

    # Paused, the rule does not fire by itself; a trigger (apply now) still applies it.
    paused = await api.post(f"/pools/{pool}/schedules/mornings/pause", headers=root)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["rule"]["paused"] is True
    assert (await dev_env.client.get_schedule_handle(f"capacity/{pool}/mornings").describe()).schedule.state.paused

    # The pool's sizing changes; the change is audited as the schedule's.
    triggered = await api.post(f"/pools/{pool}/schedules/Mornings/trigger", headers=root)
    assert triggered.status_code == 202, triggered.text
    await until(api, f"/pools/{pool}", lambda p: (p["spec"]["prestarted"], p["spec"]["max_desktops"]) == (2, 4), root)
    done = await until(api, f"/pools/{pool}/schedules/mornings", lambda r: r["last_run"]["status"] == "completed", root)
    assert done["last_run"]["workflow_id"].startswith(f"capacity/{pool}/mornings-")
    [changed] = await audit(api, pool, actor="schedule:Mornings")
    assert changed["action"] == "pool.capacity_changed"
    assert changed["detail"]["before"] == {"min_desktops": 0, "max_desktops": 3, "prestarted": 1}
    assert changed["detail"]["after"] == {"min_desktops": 0, "max_desktops": 4, "prestarted": 2}

    unpaused = await api.post(f"/pools/{pool}/schedules/mornings/unpause", headers=root)
    assert unpaused.json()["paused"] is False
    assert not (await dev_env.client.get_schedule_handle(f"capacity/{pool}/mornings").describe()).schedule.state.paused

    # An edit changes the schedule; the name stays.
    edited = {**mornings, "calendar": {**mornings["calendar"], "days_of_week": ["mon"]}, "sizing": {"prestarted": 3}}
    put = await api.put(f"/pools/{pool}/schedules/mornings", json=edited, headers=root)
    assert put.status_code == 200, put.text
    assert all(t.weekday() == 0 for t in times(put.json()))
    spec = (await dev_env.client.get_schedule_handle(f"capacity/{pool}/mornings").describe()).schedule.spec
    assert [c.day_of_week for c in spec.calendars] == [(ScheduleRange(1),)]  # Monday; Sunday is 0
    renamed = await api.put(f"/pools/{pool}/schedules/mornings", json={**edited, "name": "Evenings"}, headers=root)
    assert renamed.status_code == 422 and renamed.json()["detail"].startswith("name:")

    # Deleted: the schedule goes too.
    assert (await api.delete(f"/pools/{pool}/schedules/mornings", headers=root)).status_code == 204
    assert await schedule_gone(dev_env.client, f"capacity/{pool}/mornings")
    assert (await api.get(f"/pools/{pool}/schedules/mornings", headers=root)).status_code == 404
    assert [r["name"] for r in (await api.get(f"/pools/{pool}/schedules", headers=root)).json()] == ["Christmas eve"]
    actions = [e["action"] for e in await audit(api, pool, actor="root")]
    for action in ("created", "triggered", "paused", "unpaused", "edited", "deleted"):
        assert f"schedule.{action}" in actions, actions


async def test_refusals_and_a_sizing_the_pool_refuses(api: httpx.AsyncClient, dev_env: WorkflowEnvironment) -> None:
    root, alice = who(api, "root"), who(api, "alice")
    pool = await make_pool(api)
    evening = {"name": "Evening", "calendar": {"hour": 18, "time_zone": "Europe/Berlin"}, "sizing": {"prestarted": 5}}
    assert (await api.get(f"/pools/{pool}/schedules", headers=alice)).status_code == 403
    assert (await api.post(f"/pools/{pool}/schedules", json=evening, headers=alice)).status_code == 403
    assert (await api.post("/pools/nope/schedules", json=evening, headers=root)).status_code == 404

    bad = [
        ({**evening, "calendar": {"hour": 18, "time_zone": "Europe/Atlantis"}}, ["body", "calendar", "time_zone"]),
        ({**evening, "calendar": {"hour": 25, "time_zone": "UTC"}}, ["body", "calendar", "hour"]),
        ({**evening, "sizing": {}}, ["body", "sizing"]),
        ({**evening, "sizing": {"prestarted": 5, "max_desktops": 4}}, ["body", "sizing", "prestarted"]),
    ]
    for body, loc in bad:
        refused = await api.post(f"/pools/{pool}/schedules", json=body, headers=root)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == loc, refused.json()
    assert (await api.get(f"/pools/{pool}/schedules", headers=root)).json() == []

    # Valid alone, refused by this pool (max 3): the change workflow fails, naming the rule and field.
    assert (await api.post(f"/pools/{pool}/schedules", json=evening, headers=root)).status_code == 201
    assert (await api.post(f"/pools/{pool}/schedules/evening/trigger", headers=root)).status_code == 202
    failed = await until(api, f"/pools/{pool}/schedules/evening", lambda r: r["last_run"]["status"] == "failed", root)
    reason = f"capacity rule 'Evening' cannot apply to pool {pool}: prestarted: must not exceed max_desktops (3)"
    assert failed["last_run"]["failure"] == reason
    [event] = await audit(api, pool, actor="schedule:Evening")
    assert (event["action"], event["detail"]["error"]) == ("pool.capacity_refused", reason)
    assert (await api.get(f"/pools/{pool}", headers=root)).json()["spec"]["prestarted"] == 1

    # A schedule lost on the workflow service is made again from the stored rule.
    await dev_env.client.get_schedule_handle(f"capacity/{pool}/evening").delete()
    [again] = (await api.get(f"/pools/{pool}/schedules", headers=root)).json()
    assert again["recreated"] is True and len(again["next_action_times"]) == 10
    assert not await schedule_gone(dev_env.client, f"capacity/{pool}/evening")


async def test_removing_a_pool_removes_its_schedules(api: httpx.AsyncClient, dev_env: WorkflowEnvironment) -> None:
    """Removing a pool through the API takes its schedules at once: a new pool of the same id
    must not inherit them."""
    root = who(api, "root")
    removed = await make_pool(api)
    rule = {"name": "Nights", "calendar": {"hour": 22, "time_zone": "UTC"}, "sizing": {"prestarted": 1}}
    assert (await api.post(f"/pools/{removed}/schedules", json=rule, headers=root)).status_code == 201
    assert not await schedule_gone(dev_env.client, f"capacity/{removed}/nights")
    removing = await api.delete(f"/pools/{removed}", params={"desktops": "destroy"}, headers=root)
    assert removing.status_code == 202, removing.text
    assert await schedule_gone(dev_env.client, f"capacity/{removed}/nights"), "removal kept the schedule"
