"""The portal's plain code, without a server or a browser: the user's card, the wizard's form and
its validation mapped onto fields, the cloud's catalog rules, the chart, small helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.portal.cards import DASH, LINE_POLL_S, card_view
from api.portal.catalog import Catalog, Image, cloud_errors
from api.portal.charts import Point, line_chart, step_path
from api.portal.common import age, split_names
from api.portal.wizard_form import (
    FIELDS,
    STEP_OF,
    edited_spec,
    errors_of_step,
    field_of,
    first_step_with_errors,
    initial_values,
    validate,
    validate_data,
    values_from_spec,
    values_of,
)
from api.routers.me import CardState, DesktopCard
from workflows.messages import ClaimOutcome, ClaimStatus
from workflows.pool_spec import spec_to_json


def _card(state: CardState = CardState.UNASSIGNED, **more: object) -> DesktopCard:
    return DesktopCard(pool_id="p", pool_name="P", pool_description="", enabled=True, state=state, **more)  # type: ignore[arg-type]


def test_unassigned_card_offers_connect_only_while_the_pool_is_enabled() -> None:
    view = card_view(_card())
    assert (view.title, view.can_connect, view.can_download) == ("Unassigned", True, False)
    disabled = card_view(_card().model_copy(update={"enabled": False}))
    assert not disabled.can_connect and "disabled" in disabled.detail


def test_waiting_card_says_the_place_in_line_and_keeps_polling() -> None:
    view = card_view(_card(CardState.WAITING, position=3, request_id="r1"))
    assert view.title == f"Pool full {DASH} you are number 3 in line"
    assert (view.request_id, view.poll_s, view.can_connect) == ("r1", LINE_POLL_S, False)


def test_a_claim_answer_overrides_a_read_model_that_lags() -> None:
    waiting = ClaimOutcome(request_id="r", user="bob", status=ClaimStatus.WAITING, position=2)
    assert card_view(_card(), waiting).title.endswith("number 2 in line")
    building = ClaimOutcome(request_id="r", user="bob", status=ClaimStatus.WAITING, position=1, preparing=True)
    assert (card_view(_card(), building).title, card_view(_card(), building).progress) == ("Preparing", 33)
    given = ClaimOutcome(request_id="r", user="bob", status=ClaimStatus.ASSIGNED, desktop_id="p.1", desktop_name="d1")
    view = card_view(_card(), given)
    assert (view.state, view.can_download, view.request_id) == ("preparing", False, "r")
    refused = ClaimOutcome(request_id="r", user="bob", status=ClaimStatus.REJECTED, reason="pool is disabled")
    assert card_view(_card(), refused).detail == "Refused: pool is disabled"
    # Once the read model shows the desktop, the card says so whatever the claim said.
    assert card_view(_card(CardState.READY, desktop_id="p.1", desktop_name="d1"), given).title == "Ready"


def test_held_cards_offer_what_each_state_allows() -> None:
    ready = card_view(_card(CardState.READY, desktop_id="p.1", desktop_name="d1"))
    assert (ready.can_download, ready.can_disconnect, ready.can_release) == (True, False, True)
    connected = card_view(_card(CardState.CONNECTED, desktop_id="p.1", desktop_name="d1"))
    assert (connected.can_download, connected.can_disconnect, connected.can_release) == (True, True, True)
    gone = card_view(_card(CardState.DISCONNECTED, desktop_id="p.1", desktop_name="d1"))
    assert (gone.title, gone.can_disconnect, gone.can_release) == ("Disconnected", False, True)
    starting = card_view(_card(CardState.PREPARING, desktop_id="p.1", desktop_name="d1"))
    assert (starting.progress, starting.detail) == (66, "Starting d1")


def test_an_action_in_flight_shows_until_the_read_model_agrees() -> None:
    still = _card(CardState.READY, desktop_id="p.1", desktop_name="d1")
    assert card_view(still, pending="released:p.1").title == "Releasing your desktop"
    assert card_view(_card(), pending="released:p.1").title == "Unassigned"
    connected = _card(CardState.CONNECTED, desktop_id="p.1", desktop_name="d1")
    assert card_view(connected, pending="disconnected:p.1").state == "disconnecting"
    disconnected = _card(CardState.DISCONNECTED, desktop_id="p.1", desktop_name="d1")
    assert card_view(disconnected, pending="disconnected:p.1").title == "Disconnected"


def _values(**changes: object) -> dict[str, object]:
    values = initial_values() | {"name": "Call centre", "naming_mask": "cc-", "image": "img", "flavor": "small"}
    return values | changes


def test_a_good_form_is_a_pool_definition() -> None:
    spec, errors = validate(_values(user_group="callcentre", disk_size_gb="80", security_groups=["a", "b"]))
    assert errors == {} and spec is not None
    assert (spec.entitlement.user_group, spec.template.disk_size_gb, spec.template.security_groups) == (
        "callcentre", 80, ["a", "b"])  # fmt: skip
    assert (spec.max_desktops, spec.prestarted, spec.peripherals.audio, spec.peripherals.usb) == (10, 1, True, False)


def test_each_broken_rule_is_mapped_onto_its_field() -> None:
    _, errors = validate(_values(name="x", naming_mask="Bad_", user_group="ab", min_desktops="7", max_desktops="5",
                                 prestarted="0", description="d" * 251, disk_type="ssd", image=""))  # fmt: skip
    assert errors["name"].startswith("must be 3-128 characters")
    assert errors["naming_mask"].startswith("must be 3-15 characters")
    assert errors["user_group"].startswith("must be 3-100 characters")
    assert errors["max_desktops"] == "must not be below min_desktops (7)"
    assert errors["prestarted"] == "must be at least 1 for a pool whose desktops are destroyed after use"
    assert "250" in errors["description"]
    assert errors["disk_type"].startswith("needs disk_size_gb")
    assert errors["image"] == "required"
    assert set(errors) <= set(FIELDS), errors
    assert first_step_with_errors(errors) == 1
    assert set(errors_of_step(errors, 2)) == {"disk_type", "image"}


def test_seed_sizing_rules() -> None:
    assert validate(_values(naming_digits="1", max_desktops="10"))[1]["max_desktops"] == (
        "1 naming digits allow at most 9")  # fmt: skip
    personal = validate(_values(assignment="personal", release="revert", prestarted="1"))[1]
    assert personal["prestarted"] == "must be 0: a hot reserve is for floating pools only"
    equal = validate(_values(release="revert", min_desktops="3", max_desktops="3", prestarted="1"))[1]
    assert equal["prestarted"].startswith("must be 0 when min_desktops equals max_desktops")
    assert "integer" in validate(_values(max_desktops="many"))[1]["max_desktops"]
    assert "spice_proxy" in validate(_values(spice_proxy="nope"))[1]


def test_step_one_is_checked_alone() -> None:
    _, errors = validate(_values(image="", flavor=""), upto_step=1)
    assert errors == {}


def test_form_values_travel_between_steps() -> None:
    form = {"name": [" Pool A "], "security_groups": ["vdi-rdp", "a, b"], "peripherals_shown": ["1"], "usb": ["on"]}
    values = values_of(form)
    assert (values["name"], values["security_groups"]) == ("Pool A", ["vdi-rdp", "a", "b"])
    assert (values["usb"], values["audio"]) == (True, False)  # shown and unticked: off
    assert values_of({})["audio"] is True  # not shown yet: the default


def test_error_locations_name_form_fields() -> None:
    assert field_of(("template", "image")) == "image"
    assert field_of(("timers", "inactivity_timeout_s")) == "inactivity_timeout_s"
    assert field_of(("entitlement", "user_group")) == "user_group"
    assert field_of(("weird", 0)) == "weird.0"
    assert STEP_OF["flavor"] == 2 and STEP_OF["usb"] == 3


def test_cloud_rules_from_the_catalog() -> None:
    catalog = Catalog(flavors=["small"], images={"img": Image("img", 64, "active"), "new": Image("new", 0, "queued")},
                      security_groups=["vdi-rdp"])  # fmt: skip
    errors = cloud_errors(catalog, {"flavor": "huge", "image": "img", "disk_size_gb": "20", "security_groups": ["x"]})
    assert errors == {
        "flavor": "no instance type 'huge' in this project",
        "disk_size_gb": "must be at least 64 GB, the minimum disk of image img",
        "security_groups": "no security group x in this project",
    }
    assert "upload is complete" in cloud_errors(catalog, {"image": "new"})["image"]
    assert cloud_errors(None, {"flavor": "anything"}) == {}  # an unreachable cloud decides nothing


def test_chart_steps_and_labels() -> None:
    assert step_path([(0, 10), (5, 10), (8, 4)], 12) == "M0,10 H5 H8 V4 H12"
    assert step_path([], 12) == ""
    start = datetime(2026, 1, 1, 10, 0)
    points = [Point(start + timedelta(minutes=10), 2, 0, 0), Point(start + timedelta(minutes=20), 0, 2, 3)]
    svg = str(line_chart(points, start, start + timedelta(hours=1), "Desktops of P"))
    assert 'aria-label="Desktops of P: now 0 ready, 2 assigned, 3 waiting"' in svg
    assert svg.count("<path") == 3 and "<script" not in svg
    assert "no samples yet" in str(line_chart([], start, start + timedelta(hours=1), "P"))
    hostile = str(line_chart([], start, start + timedelta(hours=1), '<script>"'))
    assert "<script>" not in hostile


def test_small_helpers() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert [age(now - timedelta(seconds=s), now) for s in (5, 600, 7200, 200000)] == ["5 s", "10 min", "2 h", "2 d"]
    assert age(datetime(2026, 1, 1, 11, 0), now) == "1 h"  # SQLite's naive UTC
    assert split_names(["alice, bob", "bob\ncarol", " "]) == ["alice", "bob", "carol"]


def test_editing_keeps_what_the_wizard_does_not_show() -> None:
    spec, _ = validate(_values(user_group="callcentre", disk_size_gb="80", disk_type="ssd", networks=["n1"]))
    assert spec is not None
    stored = spec_to_json(spec) | {"comment": "kept", "max_desktops_ceiling": 50}
    stored["entitlement"]["groups"] = ["teachers"]
    values = values_from_spec(stored)
    assert (values["name"], values["disk_size_gb"], values["networks"], values["audio"]) == (
        "Call centre",
        "80",
        ["n1"],
        True,
    )
    # Unchanged values give back the stored definition.
    same, errors = validate_data(edited_spec(stored, values))
    assert errors == {} and same is not None and spec_to_json(same) == stored
    changed = edited_spec(stored, values | {"flavor": "large", "disk_size_gb": "", "disk_type": "", "user_group": ""})
    assert changed["template"]["flavor"] == "large" and changed["template"]["disk_size_gb"] is None
    assert changed["entitlement"] == stored["entitlement"] | {"user_group": None}
    assert (changed["comment"], changed["max_desktops_ceiling"]) == ("kept", 50)
    # A rule on a field the wizard keeps but does not show is still checked, and named.
    _, errors = validate_data(edited_spec(stored, values | {"max_desktops": "60"}))
    assert errors == {"max_desktops": "must not exceed the pool ceiling of 50"}


def test_project_fields() -> None:
    spec, errors = validate(_values(region="r1", cloud_project="vdi", auto_create_project=""))
    assert errors == {} and spec is not None and (spec.region, spec.cloud_project, spec.auto_create_project) == (
        "r1", "vdi", False)  # fmt: skip
    _, errors = validate(_values(cloud_project="vdi", auto_create_project="yes"))
    assert errors == {"auto_create_project": "must be false when cloud_project names an existing project"}
    created, _ = validate(_values(auto_create_project="yes"))
    assert created is not None and created.auto_create_project and created.cloud_project is None
    assert values_from_spec(spec_to_json(created))["auto_create_project"] == "yes"
    assert STEP_OF["auto_create_project"] == 2
