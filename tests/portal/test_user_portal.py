"""A user's Connect in the browser, end to end on the real processes: sign in, a card per pool,
Connect -> Ready -> the .rdp and .vv files; a full pool puts the next users in line ("number N in
line"), their cards update by themselves when a desktop frees, Disconnect and Release."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from activities.agent_secret import agent_secret
from tests.portal.conftest import Portal, api_as, shot
from tools.run import Stack

LINE_POOL = {
    "name": "Portal line",
    "description": "One desktop: the second user waits",
    "naming_mask": "pline-",
    "max_desktops": 1,
    "prestarted": 1,
    "timers": {"disconnected_retention_s": 600},
    "entitlement": {"groups": ["callcentre"]},
    "template": {"image": "win11-golden", "flavor": "vdi.small", "networks": ["vdi-net"]},
}


def _until(fetch: Any, accept: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not accept(value) and time.monotonic() < deadline:
        time.sleep(0.3)
        value = fetch()
    return value


def _status(page: Page, pool_id: str) -> Any:
    return page.locator(f"#card-{pool_id} [data-testid=status]")


def _download(page: Page, pool_id: str, extension: str) -> str:
    """Click the card's download link for `.rdp` or `.vv`; the saved file's text."""
    with page.expect_download() as info:
        page.locator(f"#card-{pool_id}").get_by_role("link", name=re.compile(rf"Download \{extension}\b")).click()
    assert info.value.suggested_filename.endswith(extension)
    return info.value.path().read_text()


def test_connect_wait_in_line_and_release(portal: Portal, base_url: str, stack: Stack) -> None:
    admin = api_as(base_url, "admin")
    created = admin.post("/pools", json=LINE_POOL)
    assert created.status_code == 201, created.text
    pool_id = created.json()["id"]
    filled = _until(lambda: admin.get(f"/pools/{pool_id}").json(), lambda p: p["counts"]["ready"] == 1)
    assert filled["counts"]["ready"] == 1

    alice = portal.sign_in("alice")
    expect(_status(alice, pool_id)).to_have_text("Unassigned")
    alice.locator(f"#card-{pool_id}").get_by_role("button", name="Connect").click()
    expect(_status(alice, pool_id)).to_have_text("Ready")
    desktop = admin.get("/desktops", params={"pool": pool_id, "user": "alice"}).json()
    assert len(desktop) == 1 and desktop[0]["state"] == "assigned"
    rdp = _download(alice, pool_id, ".rdp")
    assert f"full address:s:{desktop[0]['address']}" in rdp and "username:s:alice" in rdp
    vv = _download(alice, pool_id, ".vv")
    assert "[virt-viewer]" in vv and f"host={desktop[0]['address']}" in vv
    shot(alice, "user-ready")

    # The pool is full: bob and carol wait in line, in order.
    bob = portal.sign_in("bob")
    bob.locator(f"#card-{pool_id}").get_by_role("button", name="Connect").click()
    expect(_status(bob, pool_id)).to_have_text("Pool full \u2013 you are number 1 in line")
    carol = portal.sign_in("carol", width=390, height=844)  # a phone
    carol.locator(f"#card-{pool_id}").get_by_role("button", name="Connect").click()
    expect(_status(carol, pool_id)).to_have_text("Pool full \u2013 you are number 2 in line")
    shot(carol, "user-waiting-phone")

    # alice releases; her desktop is destroyed and a new one built for bob, whose card updates by itself.
    alice.locator(f"#card-{pool_id}").get_by_role("button", name="Release").click()
    expect(_status(alice, pool_id)).to_have_text("Unassigned")
    expect(_status(bob, pool_id)).to_have_text("Ready")
    expect(_status(carol, pool_id)).to_have_text("Pool full \u2013 you are number 1 in line")
    held = admin.get("/desktops", params={"pool": pool_id, "user": "bob"}).json()
    assert [d["state"] for d in held] == ["assigned"]
    assert f"full address:s:{held[0]['address']}" in _download(bob, pool_id, ".rdp")

    # bob's client connects (the in-guest agent says so), he disconnects: the retention buffer keeps
    # the desktop his; then he releases it: carol's turn.
    secret = agent_secret(stack.secret_key.encode(), held[0]["id"])
    event = admin.post(
        f"/desktops/{held[0]['id']}/events", json={"kind": "connect"}, headers={"X-Desktop-Secret": secret}
    )
    assert event.status_code == 202, event.text
    expect(_status(bob, pool_id)).to_have_text("Connected")
    bob.locator(f"#card-{pool_id}").get_by_role("button", name="Disconnect").click()
    expect(_status(bob, pool_id)).to_have_text("Disconnected")
    bob.locator(f"#card-{pool_id}").get_by_role("button", name="Release").click()
    expect(_status(bob, pool_id)).to_have_text("Unassigned")
    expect(_status(carol, pool_id)).to_have_text("Ready")
    shot(carol, "user-ready-phone")
    mine = api_as(base_url, "carol").get("/me/desktops").json()
    assert [c["state"] for c in mine if c["pool_id"] == pool_id] == ["ready"]

    # The administrator's view of the same minutes: the pool's counts over time.
    page = portal.sign_in("admin")
    page.goto(f"/portal/pools/{pool_id}")
    chart = page.locator("#chart svg")
    expect(chart).to_have_attribute("aria-label", re.compile(r"now 0 ready, 1 assigned, 0 waiting"))
    shot(page, "admin-pool-chart")


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map(e => e.outerHTML)"""


def test_keyboard_only_sign_in_and_connect(portal: Portal, base_url: str) -> None:
    """No mouse: Tab to each control, Enter to use it; every control has a label."""
    admin = api_as(base_url, "admin")
    made = admin.post("/pools", json={**LINE_POOL, "name": "Portal keys", "naming_mask": "pkey-", "max_desktops": 2})
    assert made.status_code == 201, made.text
    pool_id = made.json()["id"]
    page = portal.page(width=390, height=844)
    page.goto("/portal/login")
    expect(page.get_by_label("User name")).to_be_focused()  # autofocus
    page.keyboard.type("dave")  # a teacher: his pools are not the call centre's
    page.keyboard.press("Tab")
    page.keyboard.type("wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Sign-in failed: invalid username or password")
    assert page.evaluate(UNLABELLED) == []
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("demo-alice")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My desktops")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    connect = page.locator(f"#card-{pool_id}").get_by_role("button", name="Connect")
    for _ in range(40):  # the skip link, the header, other pools' cards, then this one
        page.keyboard.press("Tab")
        if connect.evaluate("e => e === document.activeElement"):
            break
    expect(connect).to_be_focused()
    page.keyboard.press("Enter")
    expect(_status(page, pool_id)).to_have_text("Ready")
    mine = api_as(base_url, "alice").get("/me/desktops").json()
    assert [c["state"] for c in mine if c["pool_id"] == pool_id] == ["ready"]
