"""Administrators in the browser, on the real processes: the three-step wizard (every rule shown
next to its field, then a pool created), the pool list's live fill, a desktop's power buttons,
console and log, and Recreate with its progress after a template change."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.portal.conftest import Portal, api_as, shot
from tests.portal.test_user_portal import UNLABELLED

FITS = "() => document.documentElement.scrollWidth <= window.innerWidth"


def _until(fetch: Any, accept: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not accept(value) and time.monotonic() < deadline:
        time.sleep(0.3)
        value = fetch()
    return value


def _error(page: Page, field: str) -> Any:
    return page.locator(f"#err-{field}")


def test_wizard_shows_each_rule_at_its_field_then_creates_the_pool(portal: Portal, base_url: str) -> None:
    page = portal.sign_in("admin")
    page.get_by_role("link", name="Pools").click()
    page.get_by_role("link", name="Add a pool").click()
    expect(page.get_by_role("heading", name="Step 1 of 3: Pool configuration")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    # The seed's rules are written next to their fields before anything is typed.
    expect(page.locator("#rule-naming_mask")).to_contain_text("3 to 15 characters: lowercase Latin letters")
    expect(page.locator("#rule-prestarted")).to_contain_text("Sessional pools only")

    # A rule broken while typing shows as soon as the field is left.
    page.get_by_label("User group").fill("ab")
    page.get_by_label("User group").press("Tab")
    expect(_error(page, "user_group")).to_have_text("must be 3-100 characters: Latin letters, digits, '-', '_', '.'")

    page.get_by_label("Pool name").fill("x")
    page.get_by_label("Naming mask").fill("Bad_Mask")
    page.get_by_label("Min number of desktops").fill("7")
    page.get_by_label("Max number of desktops").fill("5")
    page.get_by_label("Hot reserve").fill("0")
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct the")
    expect(_error(page, "name")).to_contain_text("must be 3-128 characters")
    expect(_error(page, "naming_mask")).to_contain_text("lowercase Latin letters")
    expect(_error(page, "max_desktops")).to_have_text("must not be below min_desktops (7)")
    expect(_error(page, "prestarted")).to_contain_text("at least 1 for a pool whose desktops are destroyed")
    expect(page.get_by_label("Pool name")).to_have_attribute("aria-invalid", "true")
    shot(page, "wizard-errors")

    page.get_by_label("Pool name").fill("Portal wizard")
    page.get_by_label("Naming mask").fill("pwiz-")
    page.get_by_label("User group").fill("callcentre")
    page.get_by_label("Min number of desktops").fill("0")
    page.get_by_label("Max number of desktops").fill("3")
    page.get_by_label("Hot reserve").fill("1")
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_role("heading", name="Step 2 of 3: Virtual machines")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []

    # The cloud's own rules: the image's minimum disk.
    page.get_by_label("Instance type").select_option("vdi.small")
    page.get_by_label("Image").select_option("win11-golden")
    page.get_by_label("Disk size (GB)").fill("10")
    page.get_by_label("Networks").fill("vdi-net")
    page.get_by_label("vdi-rdp").check()
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_role("alert")).to_have_text("Please correct the 1 field marked below.")  # the step's answer
    expect(_error(page, "disk_size_gb")).to_have_text("must be at least 64 GB, the minimum disk of image win11-golden")
    page.get_by_label("Disk size (GB)").fill("80")
    page.get_by_role("button", name="Next step").click()

    expect(page.get_by_role("heading", name="Step 3 of 3: Peripherals")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    page.get_by_label("USB redirection").check()
    page.get_by_label("Audio").uncheck()
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_label("Disk size (GB)")).to_have_value("80")  # nothing typed is lost going back
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_label("USB redirection")).to_be_checked()
    page.get_by_role("button", name="Create the pool").click()

    expect(page).to_have_url(re.compile(r"/portal/pools\?created=portal-wizard$"))
    row = page.locator("tr[data-pool=portal-wizard]")
    expect(row.get_by_test_id("fill")).to_have_text("1 of 1 desktops ready")  # the list updates by itself
    spec = api_as(base_url, "admin").get("/pools/portal-wizard").json()["spec"]
    assert spec["entitlement"]["user_group"] == "callcentre"
    assert spec["template"] | {"disk_size_gb": spec["template"]["disk_size_gb"]} == spec["template"]
    assert (spec["template"]["disk_size_gb"], spec["template"]["security_groups"]) == (80, ["vdi-rdp"])
    assert (spec["peripherals"]["usb"], spec["peripherals"]["audio"], spec["max_desktops"]) == (True, False, 3)
    shot(page, "admin-pools")

    # The same name again: refused at the name field, on step 1.
    page.goto("/portal/pools/new")
    page.get_by_label("Pool name").fill("Portal wizard")
    page.get_by_label("Naming mask").fill("pwiz-")
    page.get_by_role("button", name="Next step").click()
    expect(_error(page, "name")).to_have_text("a pool named 'Portal wizard' exists in this project")


POWER_POOL = {
    "name": "Portal ops",
    "naming_mask": "pops-",
    "max_desktops": 3,
    "prestarted": 2,
    "entitlement": {"groups": ["callcentre"]},
    "template": {"image": "win11-golden", "flavor": "vdi.small", "networks": ["vdi-net"]},
}


def test_power_console_log_and_recreate(portal: Portal, base_url: str) -> None:
    admin = api_as(base_url, "admin")
    created = admin.post("/pools", json=POWER_POOL)
    assert created.status_code == 201, created.text
    pool_id = created.json()["id"]
    page = portal.sign_in("admin")
    page.goto(f"/portal/pools/{pool_id}")
    expect(page.get_by_test_id("fill")).to_have_text("2 of 2 desktops ready")
    expect(page.get_by_role("link", name="pool workflow in the Temporal UI")).to_have_attribute(
        "href", re.compile(rf"/namespaces/default/workflows/pool%2F{pool_id}$")
    )
    expect(page.locator("#chart svg")).to_have_attribute("aria-label", re.compile(r"now \d+ ready"))
    assert page.evaluate(UNLABELLED) == []
    shot(page, "admin-pool-detail")

    # One desktop's page: a restart, its events as they come; the console log and a console link.
    first = page.locator("tr[data-desktop]").first
    first.get_by_role("link").first.click()
    expect(page.get_by_test_id("desktop-state")).to_have_text("ready")
    page.get_by_role("button", name="Restart", exact=True).click()
    expect(page.locator("#flash")).to_contain_text("restarting")
    expect(page.get_by_role("cell", name="desktop.restarted", exact=True)).to_be_visible()
    expect(page.get_by_test_id("desktop-state")).to_have_text("ready")
    page.get_by_role("button", name="Show the last 200 lines").click()
    expect(page.get_by_label(re.compile("Console log"))).to_be_visible()
    page.get_by_role("button", name="Get a console link").click()
    expect(page.get_by_role("link", name=re.compile("Open the console"))).to_have_attribute("href", re.compile("^http"))
    shot(page, "admin-desktop")

    # A desktop in use is never powered off under its user: the refusal names the rule.
    alice = api_as(base_url, "alice")
    claimed = alice.post(f"/pools/{pool_id}/claims", headers={"Idempotency-Key": "portal-ops-alice"})
    assert claimed.status_code == 200, claimed.text
    held = claimed.json()["desktop_id"]
    page.goto(f"/portal/admin/desktops/{held}")
    expect(page.get_by_test_id("desktop-state")).to_have_text("assigned")
    page.get_by_role("button", name="Power off").click()
    expect(page.locator("#flash")).to_contain_text("powering it off would strand them; release it first")
    assert alice.post(f"/desktops/{held}/release").status_code == 200
    settled = _until(lambda: admin.get(f"/pools/{pool_id}").json()["counts"],
                     lambda c: c["ready"] == 2 and c["provisioning"] == 0 and c["releasing"] == 0)  # fmt: skip
    assert settled["ready"] == 2, settled

    # A new template (version 2) through the wizard, then Recreate: its progress until done.
    page.goto(f"/portal/pools/{pool_id}")
    page.get_by_role("link", name="Edit the pool").click()
    expect(page.get_by_role("heading", name="Edit pool Portal ops")).to_be_visible()
    expect(page.get_by_label("Pool name")).to_have_value("Portal ops")
    page.get_by_role("button", name="Next step").click()
    expect(page.get_by_label("Instance type")).to_have_value("vdi.small")
    page.get_by_label("Instance type").select_option("vdi.medium")
    page.get_by_role("button", name="Next step").click()
    page.get_by_role("button", name="Save the pool").click()
    expect(page).to_have_url(re.compile(rf"/portal/pools/{pool_id}$"))
    expect(page.locator("#pool-live")).to_contain_text("Template version: 2")
    after = admin.get(f"/pools/{pool_id}").json()
    assert (after["template_version"], after["spec"]["template"]["flavor"]) == (2, "vdi.medium")
    assert after["spec"]["entitlement"]["groups"] == ["callcentre"]  # what the wizard does not show is kept
    page.get_by_label("Recreate strategy").select_option("rolling")
    page.get_by_role("button", name="Recreate").click()
    expect(page.locator("#flash")).to_contain_text(re.compile(r"Recreate started: \d+ desktops to move to template v2"))
    expect(page.get_by_test_id("rollout-status")).to_have_text("completed", timeout=90_000)
    expect(page.get_by_test_id("rollout")).to_contain_text(re.compile(r"(\d+) of \1 desktops on template v2"))
    rows = page.locator("tr[data-desktop]")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="v1")).to_have_count(0)
    shot(page, "admin-recreate")
    desktops = admin.get("/desktops", params={"pool": pool_id}).json()
    assert {d["template_version"] for d in desktops} == {2}

    # The size: a bad number is refused naming the field; then one more desktop at most.
    page.get_by_label(re.compile("Change the maximum")).fill("many")
    page.get_by_role("button", name="Increase").click()
    expect(page.locator("#flash")).to_contain_text("by: Input should be a valid integer")
    page.get_by_label(re.compile("Change the maximum")).fill("1")
    page.get_by_role("button", name="Increase").click()
    expect(page.locator("#flash")).to_have_text("The maximum is now 4 desktops.")
    expect(page.locator("#pool-live")).to_contain_text("Maximum: 4")

    # At phone width the page still fits: no sideways scrolling (wide tables scroll inside their box).
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_test_id("rollout-status")).to_have_text("completed")
    assert page.evaluate(FITS), "the pool page scrolls sideways at phone width"
    page.goto("/portal/pools/new")
    assert page.evaluate(FITS), "the wizard scrolls sideways at phone width"
    shot(page, "wizard-phone")

    # Removal, its desktops destroyed: back to the list, and the pool is gone once they are.
    page.goto(f"/portal/pools/{pool_id}")
    page.get_by_text("Remove the pool").click()
    page.get_by_label("Its desktops").select_option("destroy")
    page.get_by_role("button", name="Remove", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/portal/pools\?removed={pool_id}$"))
    expect(page.locator(f"tr[data-pool={pool_id}]")).to_have_count(0, timeout=60_000)
    assert admin.get(f"/pools/{pool_id}").status_code == 404
    assert admin.get("/desktops", params={"pool": pool_id}).json() == []
