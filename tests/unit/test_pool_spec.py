"""Every seed validation rule of the pool definition, each with a test that fails when the rule is broken.

Rules come from the three seeds (cloud wizard, dynamic pools, oVirt pools) and issue 3.
Invalid input must give a pydantic error whose `loc` names the field and whose message
names the rule; valid boundary values must be accepted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from temporalio.converter import DataConverter

from workflows.pool_spec import (
    Assignment,
    DiskType,
    Entitlement,
    Peripherals,
    PoolSpec,
    ReleasePolicy,
    Template,
    Timers,
)

TEMPLATE = Template(image="astra-orel-2.12", flavor="m1.desktop")


def spec(**overrides: Any) -> PoolSpec:
    """A valid floating destroy pool unless `overrides` break a rule."""
    fields: dict[str, Any] = {"name": "Call centre", "template": TEMPLATE, "naming_mask": "desk-"}
    fields.update(overrides)
    return PoolSpec(**fields)


def only_error(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, Any]:
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


def assert_names_rule(error: dict[str, Any], *fragments: str) -> None:
    message = error["msg"].lower()
    for fragment in fragments:
        assert fragment.lower() in message, (fragment, error["msg"])


# --- accepted values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "abc"},
        {"name": "a" * 128},
        {"name": "Call centre_2-night shift"},
        {"name": "123"},
        {"description": "d" * 250},
        {"naming_mask": "abc"},
        {"naming_mask": "ab-"},  # 3 characters in all, the '-' included
        {"naming_mask": "a" * 15},
        {"naming_mask": "a" * 14 + "-"},
        {"entitlement": Entitlement(user_group="abc")},
        {"entitlement": Entitlement(user_group="g" * 100)},
        {"entitlement": Entitlement(user_group="corp.vdi_users-1")},
        {"min_desktops": 5, "max_desktops": 6, "prestarted": 1},
        {"max_desktops": 999},  # 3 digits allow 999
        {"naming_digits": 4, "max_desktops": 1000},  # the default ceiling
        {"naming_digits": 2, "max_desktops": 99},
        {"max_desktops_ceiling": 50, "max_desktops": 50},
        {"max_desktops": 5, "prestarted": 5},  # prestarted may equal max
        {"release": ReleasePolicy.REVERT, "prestarted": 0},
        {"release": ReleasePolicy.MANUAL, "prestarted": 0},
        {"release": ReleasePolicy.REVERT, "min_desktops": 4, "max_desktops": 4, "prestarted": 0},
        {"assignment": Assignment.PERSONAL, "prestarted": 0},
        {"assignment": Assignment.PERSONAL, "prestarted": 0, "min_desktops": 3, "max_desktops": 3},
        {"max_desktops_per_user": 1},
        {"max_desktops_per_user": 32767},
        {"spice_proxy": "http://proxy.example.com:3128"},
        {"spice_proxy": "https://10.0.0.1:443"},
        {"spice_proxy": "http://[2001:db8::1]:3128"},
    ],
    ids=repr,
)
def test_valid_values_are_accepted(overrides: dict[str, Any]) -> None:
    built = spec(**overrides)
    for field, value in overrides.items():
        assert getattr(built, field) == value


def test_defaults_follow_the_seeds() -> None:
    built = spec()
    assert built.min_desktops == 0  # cloud seed: min defaults to 0
    assert built.max_desktops_per_user == 1  # dynamic seed: one and only one desktop per user
    assert built.max_desktops_ceiling == 1000  # oVirt seed: MaxVmsInPool default
    assert built.prestarted >= 1  # the default pool destroys after use, so it needs a reserve


# --- rejected values: one row per rule ------------------------------------------------------

INVALID = [
    # Pool name: 3-128 characters, Latin letters, digits, '-', '_', spaces.
    pytest.param({"name": "ab"}, ("name",), ("128",), id="name-too-short"),
    pytest.param({"name": "a" * 129}, ("name",), ("128",), id="name-too-long"),
    pytest.param({"name": "pool.one"}, ("name",), ("128",), id="name-dot"),
    pytest.param({"name": "pool!"}, ("name",), ("128",), id="name-punctuation"),
    pytest.param({"name": "пул-один"}, ("name",), ("latin",), id="name-cyrillic"),
    pytest.param({"name": "poolé"}, ("name",), ("latin",), id="name-accented"),
    pytest.param({"name": "pool\tone"}, ("name",), ("128",), id="name-tab"),
    pytest.param({"name": "pool\n"}, ("name",), ("128",), id="name-trailing-newline"),
    # Description: up to 250 characters.
    pytest.param({"description": "d" * 251}, ("description",), ("250",), id="description-too-long"),
    # Naming mask: 3-15 characters in all, lowercase Latin letters, optionally ending in '-'.
    pytest.param({"naming_mask": "ab"}, ("naming_mask",), ("15",), id="mask-too-short"),
    pytest.param({"naming_mask": "a-"}, ("naming_mask",), ("15",), id="mask-two-with-dash"),
    pytest.param({"naming_mask": "a" * 16}, ("naming_mask",), ("15",), id="mask-too-long"),
    pytest.param({"naming_mask": "a" * 15 + "-"}, ("naming_mask",), ("15",), id="mask-16-with-dash"),
    pytest.param({"naming_mask": "Desk"}, ("naming_mask",), ("lowercase",), id="mask-uppercase"),
    pytest.param({"naming_mask": "desk1"}, ("naming_mask",), ("lowercase",), id="mask-digit"),
    pytest.param({"naming_mask": "de-sk"}, ("naming_mask",), ("-",), id="mask-inner-dash"),
    pytest.param({"naming_mask": "-desk"}, ("naming_mask",), ("-",), id="mask-leading-dash"),
    pytest.param({"naming_mask": "desk--"}, ("naming_mask",), ("-",), id="mask-double-dash"),
    pytest.param({"naming_mask": "desk_"}, ("naming_mask",), ("lowercase",), id="mask-underscore"),
    pytest.param({"naming_mask": "дескт"}, ("naming_mask",), ("latin",), id="mask-cyrillic"),
    pytest.param({"naming_mask": "desk\n"}, ("naming_mask",), ("15",), id="mask-trailing-newline"),
    # Min never above max.
    pytest.param({"min_desktops": 6, "max_desktops": 5}, ("max_desktops",), ("min",), id="min-above-max"),
    pytest.param({"min_desktops": -1}, ("min_desktops",), ("0",), id="min-negative"),
    # Max: at most the per-pool ceiling (default 1000) and what the mask's digits allow.
    pytest.param({"naming_digits": 4, "max_desktops": 1001}, ("max_desktops",), ("1000",), id="max-over-ceiling"),
    pytest.param(
        {"max_desktops_ceiling": 50, "max_desktops": 51}, ("max_desktops",), ("50",), id="max-over-configured-ceiling"
    ),
    pytest.param({"max_desktops": 1000}, ("max_desktops",), ("999",), id="max-over-3-digits"),
    pytest.param({"naming_digits": 2, "max_desktops": 100}, ("max_desktops",), ("99",), id="max-over-2-digits"),
    pytest.param({"naming_digits": 1, "max_desktops": 10}, ("max_desktops",), ("9",), id="max-over-1-digit"),
    pytest.param({"max_desktops": 0}, ("max_desktops",), ("1",), id="max-zero"),
    # Prestarted (hot reserve): 0..max.
    pytest.param({"max_desktops": 5, "prestarted": 6}, ("prestarted",), ("max",), id="prestarted-above-max"),
    pytest.param(
        {"release": ReleasePolicy.REVERT, "prestarted": -1}, ("prestarted",), ("0",), id="prestarted-negative"
    ),
    # ... at least 1 for destroy (dynamic) pools.
    pytest.param({"release": ReleasePolicy.DESTROY, "prestarted": 0}, ("prestarted",), ("1",), id="destroy-needs-one"),
    # ... floating pools only.
    pytest.param(
        {"assignment": Assignment.PERSONAL, "prestarted": 1}, ("prestarted",), ("floating",), id="personal-reserve"
    ),
    # ... none when min == max (cloud seed).
    pytest.param(
        {"release": ReleasePolicy.REVERT, "min_desktops": 4, "max_desktops": 4, "prestarted": 1},
        ("prestarted",),
        ("min", "max"),
        id="reserve-when-min-equals-max",
    ),
    pytest.param(
        {"release": ReleasePolicy.DESTROY, "min_desktops": 4, "max_desktops": 4, "prestarted": 1},
        ("prestarted",),
        ("min", "max"),
        id="destroy-pool-min-equals-max",
    ),
    # Max desktops per user: 1..32767.
    pytest.param({"max_desktops_per_user": 0}, ("max_desktops_per_user",), ("1",), id="per-user-zero"),
    pytest.param({"max_desktops_per_user": 32768}, ("max_desktops_per_user",), ("32767",), id="per-user-too-many"),
    # Overridden SPICE proxy: protocol://[host]:[port].
    pytest.param({"spice_proxy": "proxy.example.com:3128"}, ("spice_proxy",), ("protocol",), id="spice-no-protocol"),
    pytest.param({"spice_proxy": "http://proxy.example.com"}, ("spice_proxy",), ("port",), id="spice-no-port"),
    pytest.param({"spice_proxy": "http://:3128"}, ("spice_proxy",), ("host",), id="spice-no-host"),
    pytest.param({"spice_proxy": "http://proxy:port"}, ("spice_proxy",), ("port",), id="spice-port-not-number"),
    pytest.param({"spice_proxy": "http://proxy:65536"}, ("spice_proxy",), ("port",), id="spice-port-65536"),
    pytest.param({"spice_proxy": "http://proxy:99999"}, ("spice_proxy",), ("port",), id="spice-port-99999"),
    pytest.param(
        {"spice_proxy": "http://[proxy.example.com:3128"}, ("spice_proxy",), ("host",), id="spice-unbalanced-bracket"
    ),
    pytest.param({"spice_proxy": "http://proxy:3128\n"}, ("spice_proxy",), ("port",), id="spice-trailing-newline"),
    pytest.param({"spice_proxy": ""}, ("spice_proxy",), ("protocol",), id="spice-empty"),
]


@pytest.mark.parametrize(("overrides", "loc", "fragments"), INVALID)
def test_each_rule_is_enforced_on_its_field(
    overrides: dict[str, Any], loc: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as exc:
        spec(**overrides)
    error = only_error(exc)
    assert error["loc"] == loc
    assert_names_rule(error, *fragments)


# --- user group (Entitlement.user_group): 3-100 chars, Latin letters, digits, '-', '_', '.' ----------

BAD_USER_GROUPS = [
    pytest.param("ab", id="too-short"),
    pytest.param("g" * 101, id="too-long"),
    pytest.param("vdi users", id="space"),
    pytest.param("vdi@corp", id="at-sign"),
    pytest.param("corp\\vdi", id="backslash"),
    pytest.param("пользователи", id="cyrillic"),
    pytest.param("vdi-users\n", id="trailing-newline"),
]


@pytest.mark.parametrize("group", BAD_USER_GROUPS)
def test_user_group_rule_names_the_field(group: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Entitlement(user_group=group)
    error = only_error(exc)
    assert error["loc"] == ("user_group",)
    assert_names_rule(error, "100")


@pytest.mark.parametrize("group", BAD_USER_GROUPS)
def test_user_group_rule_inside_a_submitted_pool(group: str) -> None:
    """The API submits JSON: the error must point into the pool's entitlement."""
    with pytest.raises(ValidationError) as exc:
        spec(entitlement={"user_group": group})
    error = only_error(exc)
    assert error["loc"] == ("entitlement", "user_group")


def test_user_group_is_optional() -> None:
    assert Entitlement().user_group is None


# --- template: disk type needs a disk size; the three disk types of the cloud seed -------------------


@pytest.mark.parametrize("disk_type", ["hdd", "ssd", "high-iops-ssd"])
def test_disk_type_requires_a_disk_size(disk_type: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Template(image="img", flavor="flv", disk_type=disk_type)  # type: ignore[arg-type]
    assert_names_rule(only_error(exc), "disk_size_gb", "disk_type")


@pytest.mark.parametrize("disk_type", ["hdd", "ssd", "high-iops-ssd"])
def test_disk_type_without_size_names_disk_size_field(disk_type: str) -> None:
    """A field-level error (issue 3): the loc must name the disk field, not the whole template."""
    with pytest.raises(ValidationError) as exc:
        Template(image="img", flavor="flv", disk_type=disk_type)  # type: ignore[arg-type]
    error = only_error(exc)
    assert error["loc"] and error["loc"][-1] in ("disk_size_gb", "disk_type"), error
    assert_names_rule(error, "disk_size_gb")


def test_disk_type_without_size_inside_a_submitted_pool() -> None:
    with pytest.raises(ValidationError) as exc:
        spec(template={"image": "img", "flavor": "flv", "disk_type": "ssd"})
    error = only_error(exc)
    assert error["loc"][0] == "template"
    assert error["loc"][-1] in ("disk_size_gb", "disk_type"), error


@pytest.mark.parametrize("disk_type", list(DiskType))
def test_each_disk_type_with_a_size_is_accepted(disk_type: DiskType) -> None:
    template = Template(image="img", flavor="flv", disk_type=disk_type, disk_size_gb=40)
    assert template.disk_type is disk_type


def test_disk_size_without_type_is_accepted() -> None:
    assert Template(image="img", flavor="flv", disk_size_gb=40).disk_type is None


def test_unknown_disk_type_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Template(image="img", flavor="flv", disk_type="nvme", disk_size_gb=40)  # type: ignore[arg-type]
    assert only_error(exc)["loc"] == ("disk_type",)


def test_disk_types_are_the_three_of_the_cloud_seed() -> None:
    assert len(DiskType) == 3


@pytest.mark.parametrize("size", [0, -5])
def test_disk_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValidationError) as exc:
        Template(image="img", flavor="flv", disk_size_gb=size)
    assert only_error(exc)["loc"] == ("disk_size_gb",)


# --- rules that depend on other fields, submitted as JSON (strings for enums) --------------------


def test_rules_apply_to_json_input_with_string_enums() -> None:
    adapter = TypeAdapter(PoolSpec)
    base = {"name": "Call centre", "template": {"image": "i", "flavor": "f"}, "naming_mask": "desk-"}
    with pytest.raises(ValidationError) as exc:
        adapter.validate_python({**base, "assignment": "personal", "prestarted": 2})
    assert only_error(exc)["loc"] == ("prestarted",)
    with pytest.raises(ValidationError) as exc:
        adapter.validate_python({**base, "release": "destroy", "prestarted": 0})
    assert only_error(exc)["loc"] == ("prestarted",)
    ok = adapter.validate_python({**base, "release": "revert", "prestarted": 0})
    assert ok.release is ReleasePolicy.REVERT


def test_defaulted_max_is_checked_against_min() -> None:
    """validate_default: a min above the defaulted max must still be caught."""
    default_max = spec().max_desktops
    with pytest.raises(ValidationError) as exc:
        spec(min_desktops=default_max + 1)
    assert only_error(exc)["loc"] == ("max_desktops",)


def test_prestarted_may_not_exceed_max_in_any_pool_type() -> None:
    for release in ReleasePolicy:
        with pytest.raises(ValidationError) as exc:
            spec(release=release, max_desktops=3, prestarted=4)
        assert only_error(exc)["loc"] == ("prestarted",)


@pytest.mark.parametrize("seconds", [-1])
@pytest.mark.parametrize(
    "timer",
    [
        "disconnected_retention_s",
        "inactivity_timeout_s",
        "max_session_s",
        "claim_wait_timeout_s",
        "first_connect_timeout_s",
    ],
)
def test_timers_are_never_negative(timer: str, seconds: int) -> None:
    with pytest.raises(ValidationError) as exc:
        Timers(**{timer: seconds})
    assert only_error(exc)["loc"] == (timer,)


def test_zero_timers_are_allowed() -> None:
    """0 means 'at once' for retention and 'never' for inactivity (seeds)."""
    timers = Timers(disconnected_retention_s=0, inactivity_timeout_s=0)
    assert (timers.disconnected_retention_s, timers.inactivity_timeout_s) == (0, 0)


# --- desktop names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "digits", "number", "expected"),
    [
        ("desk-", 3, 7, "desk-007"),
        ("desk-", 3, 42, "desk-042"),
        ("desk-", 3, 999, "desk-999"),
        ("vdi", 5, 12, "vdi00012"),
        ("callcentre-", 1, 9, "callcentre-9"),
        ("abc", 6, 1, "abc000001"),
    ],
)
def test_desktop_name_is_mask_plus_zero_padded_number(mask: str, digits: int, number: int, expected: str) -> None:
    assert spec(naming_mask=mask, naming_digits=digits, max_desktops=9).desktop_name(number) == expected


def test_every_allowed_number_gives_a_distinct_name_of_fixed_width() -> None:
    built = spec(max_desktops=999)
    names = [built.desktop_name(n) for n in range(1, built.max_desktops + 1)]
    assert len(set(names)) == len(names)
    assert {len(name) for name in names} == {len("desk-") + 3}


# --- crossing the Temporal boundary ------------------------------------------------------------


def rich_spec() -> PoolSpec:
    """Every nested type and enum set away from its default."""
    return spec(
        naming_mask="ops-",
        naming_digits=4,
        project="finance",
        description="Night shift desktops",
        comment="owned by the service desk",
        assignment=Assignment.FLOATING,
        release=ReleasePolicy.MANUAL,
        max_desktops_ceiling=2000,
        min_desktops=2,
        max_desktops=1500,
        prestarted=3,
        max_desktops_per_user=2,
        template=Template(
            image="win11",
            flavor="m1.large",
            disk_size_gb=80,
            disk_type=DiskType.HIGH_IOPS_SSD,
            networks=["net-a", "net-b"],
            security_groups=["rdp"],
            metadata={"cost-centre": "42"},
            user_data="#cloud-config\n",
            availability_zone="az1",
            server_group="sg1",
            scheduler_hints={"group": "g1"},
        ),
        timers=Timers(
            disconnected_retention_s=0,
            inactivity_timeout_s=600,
            max_session_s=28800,
            claim_wait_timeout_s=120,
            first_connect_timeout_s=300,
        ),
        entitlement=Entitlement(users=["alice"], groups=["vdi"], org_units=["ou=call"], user_group="corp.vdi"),
        peripherals=Peripherals(usb=True, clipboard=False, audio=False, printers=True, drives=True, smart_cards=True),
        spice_proxy="http://proxy.example.com:3128",
        delete_protection=True,
        enabled=False,
        max_concurrent_creations=7,
        cloud="openstack-eu",
        region="RegionOne",
        cloud_project="vdi",
    )


@pytest.mark.parametrize("make", [spec, rich_spec], ids=["defaults", "rich"])
def test_asdict_round_trip(make: Any) -> None:
    original = make()
    rebuilt = PoolSpec(**dataclasses.asdict(original))
    assert rebuilt == original
    assert isinstance(rebuilt.template, Template)
    assert isinstance(rebuilt.timers, Timers)
    assert rebuilt.release is original.release
    assert rebuilt.template.disk_type is original.template.disk_type


@pytest.mark.parametrize("make", [spec, rich_spec], ids=["defaults", "rich"])
async def test_temporal_default_converter_round_trip(make: Any) -> None:
    original = make()
    converter = DataConverter.default
    payloads = await converter.encode([original])
    (decoded,) = await converter.decode(payloads, type_hints=[PoolSpec])
    assert isinstance(decoded, PoolSpec)
    assert decoded == original
    assert decoded.assignment is original.assignment
    assert decoded.release is original.release


async def test_decoding_an_invalid_spec_fails() -> None:
    """A decoded history obeys the same rules: the converter must not bypass validation."""
    converter = DataConverter.default
    valid = spec(release=ReleasePolicy.REVERT, prestarted=0)
    raw = dataclasses.asdict(valid)
    raw["naming_mask"] = "BAD MASK"
    payloads = converter.payload_converter.to_payloads([raw])
    with pytest.raises(ValidationError) as exc:
        converter.payload_converter.from_payloads(payloads, [PoolSpec])
    assert only_error(exc)["loc"] == ("naming_mask",)
