"""The pool wizard's form, as plain code: its three steps and their fields with each seed rule, the
form turned into a pool definition, and the definition's validation errors (the API's own PoolSpec
model) mapped back onto the fields that caused them. Unit-tested without a server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from workflows.pool_spec import DiskType, PoolSpec

_SPEC = TypeAdapter(PoolSpec)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    rule: str
    kind: str = "text"  # text, number, textarea, select, radio, checks, checkbox
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""


STEPS: tuple[tuple[str, tuple[Field, ...]], ...] = (
    ("Pool configuration", (
        Field("name", "Pool name", "Unique within the project. 3 to 128 characters: Latin letters, digits, spaces, "
              "'-' and '_'."),
        Field("assignment", "Pool type", "Sessional: a user gets a desktop on Connect, from a hot reserve. "
              "Personalized: the administrator assigns desktops to users.", "radio",
              (("floating", "Sessional"), ("personal", "Personalized")), "floating"),
        Field("description", "Description", "Up to 250 characters.", "textarea"),
        Field("user_group", "User group", "The directory (AD or LDAP) group whose users get desktops. 3 to 100 "
              "characters: Latin letters, digits, '-', '_' and '.'."),
        Field("naming_mask", "Naming mask", "How desktop names begin. 3 to 15 characters: lowercase Latin letters, "
              "optionally ending in '-'."),
        Field("naming_digits", "Increment (digits of the number)", "1 to 6 digits; it limits the maximum: 3 digits "
              "allow at most 999 desktops.", "number", default="3"),
        Field("min_desktops", "Min number of desktops", "Deployed right after the pool is created. Default 0; it "
              "cannot exceed the maximum.", "number", default="0"),
        Field("max_desktops", "Max number of desktops", "How many desktops the pool may have at the same time: at "
              "least 1, at least the minimum, within the increment's limit and the pool ceiling (1000).", "number",
              default="10"),
        Field("prestarted", "Hot reserve", "Idle desktops kept ready. Sessional pools only (0 for personalized); 0 "
              "when min equals max; at least 1 when desktops are destroyed after use; not above the maximum.",
              "number", default="1"),
        Field("release", "After use", "Destroy: deleted, every trace wiped. Revert: rebuilt from the template. "
              "Manual: kept until an administrator returns it.", "select",
              (("destroy", "Destroy"), ("revert", "Revert"), ("manual", "Manual return")), "destroy"),
        Field("disconnected_retention_s", "Disconnected retention (seconds)", "How long a disconnected desktop stays "
              "the user's before it is released; 0 to 31622400 (366 days).", "number", default="1800"),
        Field("inactivity_timeout_s", "User inactivity timeout (seconds)", "A user idle this long is disconnected "
              "(RDP); 0: never. 0 to 31622400.", "number", default="0"),
    )),
    ("Virtual machines", (
        Field("cloud", "Cloud", "The clouds.yaml entry the desktops run on.", default="embedded"),
        Field("region", "Region", "Optional: the cloud's region; empty: the clouds.yaml entry's own."),
        Field("cloud_project", "Project", "Optional: an existing project (name or id, up to 64 characters) for the "
              "desktops; empty: the clouds.yaml entry's own project."),
        Field("auto_create_project", "Create a project", "Yes: a project '<pool name>-<8 random characters>' is "
              "created for the pool (never deleted); not together with an existing project.", "select",
              (("", "No"), ("yes", "Yes")), ""),
        Field("flavor", "Instance type", "One of the instance types available in the project.", "select"),
        Field("disk_size_gb", "Disk size (GB)", "1 to 65536, and not less than the image's minimum disk. Empty: the "
              "instance type's own disk.", "number"),
        Field("disk_type", "Disk type", "HDD, SSD or High-IOPS SSD: a volume of the disk size (set a size).", "select",
              (("", "The instance type's disk"), (DiskType.HDD.value, "HDD"), (DiskType.SSD.value, "SSD"),
               (DiskType.HIGH_IOPS_SSD.value, "High-IOPS SSD"))),
        Field("image", "Image", "One of the available images; an image still uploading cannot be used yet.",
              "select"),
        Field("networks", "Networks", "Names or ids, comma-separated; every desktop joins them."),
        Field("security_groups", "Security groups", "Names or ids; none: no group is assigned.", "checks"),
    )),
    ("Peripherals", (
        Field("usb", "USB redirection", "Devices plugged into the client reach the desktop.", "checkbox"),
        Field("clipboard", "Clipboard", "Copy and paste between client and desktop.", "checkbox", default="on"),
        Field("audio", "Audio", "Sound and microphone.", "checkbox", default="on"),
        Field("printers", "Printers", "The client's printers.", "checkbox"),
        Field("drives", "Drives", "The client's drives.", "checkbox"),
        Field("smart_cards", "Smart cards", "Smart-card readers.", "checkbox"),
        Field("spice_proxy", "SPICE proxy", "Optional: protocol://host:port (port 1 to 65535) for SPICE clients.")
    )),
)  # fmt: skip
FIELDS = {f.name: f for _, fields in STEPS for f in fields}
STEP_OF = {f.name: n for n, (_, fields) in enumerate(STEPS, start=1) for f in fields}
PERIPHERALS = ("usb", "clipboard", "audio", "printers", "drives", "smart_cards")
LISTS = ("networks", "security_groups")
# Where a PoolSpec error's location points in the form.
NESTED = {"template": "", "timers": "", "entitlement": "", "peripherals": ""}
# Stands in for a step not filled in yet, so one step's fields are checked alone.
PLACEHOLDER_TEMPLATE = {"image": "-", "flavor": "-"}


def initial_values() -> dict[str, Any]:
    values: dict[str, Any] = {f.name: f.default for f in FIELDS.values()}
    for name in LISTS:
        values[name] = []
    for name in PERIPHERALS:
        values[name] = FIELDS[name].default == "on"
    return values


def values_of(form: dict[str, list[str]]) -> dict[str, Any]:
    """The wizard's values from a submitted form (every step's fields travel along, hidden)."""
    values = initial_values()
    for name, field in FIELDS.items():
        if name in form and field.kind not in ("checkbox", "checks"):
            values[name] = form[name][-1].strip() if field.kind != "textarea" else form[name][-1]
    for name in LISTS:
        values[name] = [v for raw in form.get(name, []) for v in (p.strip() for p in raw.split(",")) if v]
    values["editing"] = (form.get("editing") or [""])[-1]
    values["peripherals_shown"] = bool(form.get("peripherals_shown"))
    if values["peripherals_shown"]:
        for name in PERIPHERALS:
            values[name] = form.get(name, [""])[-1] == "on"
    return values


SCALARS = ("name", "assignment", "description", "naming_mask", "naming_digits", "min_desktops", "max_desktops",
           "prestarted", "release", "cloud", "region", "cloud_project", "spice_proxy")  # fmt: skip
TEMPLATE_FIELDS = ("image", "flavor", "disk_size_gb", "disk_type")
TIMER_FIELDS = ("disconnected_retention_s", "inactivity_timeout_s")


def values_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A pool's stored definition as the wizard's values, to edit it."""
    values = initial_values()
    template, timers = spec.get("template", {}), spec.get("timers", {})
    for key in SCALARS:
        values[key] = "" if spec.get(key) is None else str(spec[key])
    for key in TEMPLATE_FIELDS:
        values[key] = "" if template.get(key) is None else str(template[key])
    for key in LISTS:
        values[key] = [str(v) for v in template.get(key, [])]
    for key in TIMER_FIELDS:
        values[key] = str(timers.get(key, values[key]))
    values["user_group"] = spec.get("entitlement", {}).get("user_group") or ""
    values["auto_create_project"] = "yes" if spec.get("auto_create_project") else ""
    for key in PERIPHERALS:
        values[key] = bool(spec.get("peripherals", {}).get(key, values[key]))
    values["peripherals_shown"] = True
    return values


def edited_spec(current: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The stored definition with the wizard's fields as the form has them; everything the wizard does
    not show (the entitlement's users and groups, template metadata, the ceiling...) is kept."""
    data = spec_data(values)
    merged = {**current, **{k: v for k, v in data.items() if k not in NESTED}}
    for key in NESTED:
        merged[key] = {**current.get(key, {}), **data.get(key, {})}
    # A field emptied in the form is cleared, not kept from before.
    for key in ("disk_size_gb", "disk_type"):
        if values.get(key, "") == "":
            merged["template"][key] = None
    if values.get("user_group", "") == "":
        merged["entitlement"]["user_group"] = None
    for key in ("spice_proxy", "region", "cloud_project"):
        if values.get(key, "") == "":
            merged[key] = None
    if values.get("description", "") == "":
        merged["description"] = ""
    return merged


def spec_data(values: dict[str, Any], upto_step: int = 3) -> dict[str, Any]:
    """The API's pool definition (POST /pools body) from the wizard's values."""

    def given(name: str) -> Any:
        value = values.get(name, "")
        return None if value == "" else value

    data: dict[str, Any] = {key: given(key) for key in SCALARS if given(key) is not None}
    data.setdefault("name", "")
    data.setdefault("naming_mask", "")
    data["auto_create_project"] = values.get("auto_create_project") == "yes"
    timers = {k: given(k) for k in ("disconnected_retention_s", "inactivity_timeout_s") if given(k) is not None}
    data["timers"] = timers
    data["entitlement"] = {"user_group": given("user_group")} if given("user_group") is not None else {}
    if upto_step >= 2:
        template = {"image": values.get("image", ""), "flavor": values.get("flavor", "")}
        template |= {k: given(k) for k in ("disk_size_gb", "disk_type") if given(k) is not None}
        template |= {k: values.get(k, []) for k in LISTS}
        data["template"] = template
    else:
        data["template"] = dict(PLACEHOLDER_TEMPLATE)
    data["peripherals"] = {k: bool(values.get(k)) for k in PERIPHERALS}
    return data


def field_of(loc: tuple[int | str, ...]) -> str:
    """The form field a PoolSpec error location names: ("template", "image") -> "image"."""
    parts = [str(p) for p in loc]
    while parts and parts[0] in NESTED:
        parts = parts[1:]
    return parts[0] if parts and parts[0] in FIELDS else ".".join(str(p) for p in loc)


def message_of(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "string_too_short" and error.get("input") == "":
        return "required"
    return message.removeprefix("Value error, ")


def validate(values: dict[str, Any], upto_step: int = 3) -> tuple[PoolSpec | None, dict[str, str]]:
    """The pool definition, or the errors by field (the first error of each field)."""
    spec, errors = validate_data(spec_data(values, upto_step))
    if upto_step < 2:
        errors = {k: v for k, v in errors.items() if STEP_OF.get(k, 0) != 2}
    return spec, errors


def validate_data(data: dict[str, Any]) -> tuple[PoolSpec | None, dict[str, str]]:
    """PoolSpec's own validation of a definition, its errors mapped onto the wizard's fields."""
    try:
        return _SPEC.validate_python(data), {}
    except ValidationError as err:
        errors: dict[str, str] = {}
        for error in err.errors():
            errors.setdefault(field_of(tuple(error["loc"])), message_of(dict(error)))
        return None, errors


def errors_of_step(errors: dict[str, str], step: int) -> dict[str, str]:
    return {k: v for k, v in errors.items() if STEP_OF.get(k) == step}


def first_step_with_errors(errors: dict[str, str]) -> int | None:
    steps = [STEP_OF.get(k, 1) for k in errors]
    return min(steps) if steps else None
