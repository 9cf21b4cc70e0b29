"""Connection files: every peripheral reaches the right keys, users narrow but never widen, no injection.

Each test parses the generated text (configparser for .vv, `key:type:value`
lines for .rdp) instead of comparing whole files.
"""

from __future__ import annotations

import configparser
import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from api.connection_files import (
    ConsoleOptions,
    connection_file_name,
    effective_peripherals,
    rdp_file,
    vv_file,
)
from workflows.pool_spec import Peripherals

ALL_ON = Peripherals(usb=True, clipboard=True, audio=True, printers=True, drives=True, smart_cards=True)
ALL_OFF = Peripherals(usb=False, clipboard=False, audio=False, printers=False, drives=False, smart_cards=False)
PERIPHERALS = [f.name for f in dataclasses.fields(Peripherals)]


def make_rdp(peripherals: Peripherals = ALL_ON, options: ConsoleOptions | None = None, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "address": "10.0.0.5",
        "username": "CORP\\alice",
        "desktop_name": "lab-007",
        "peripherals": peripherals,
        "options": options or ConsoleOptions(),
    }
    return rdp_file(**(args | kwargs))


def parse_rdp(text: str) -> dict[str, tuple[str, str]]:
    assert text.endswith("\r\n")
    lines = text.split("\r\n")[:-1]
    result: dict[str, tuple[str, str]] = {}
    for line in lines:
        assert "\n" not in line and "\r" not in line
        key, kind, value = line.split(":", 2)
        assert kind in ("s", "i")
        assert key not in result, f"duplicate key {key}"
        result[key] = (kind, value)
    return result


def rdp_values(text: str) -> dict[str, str]:
    return {key: value for key, (_, value) in parse_rdp(text).items()}


def make_vv(peripherals: Peripherals = ALL_ON, options: ConsoleOptions | None = None, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "host": "10.0.0.5",
        "port": 5900,
        "password": "ticket-123",
        "title": "lab-007",
        "spice_proxy": None,
        "peripherals": peripherals,
        "options": options or ConsoleOptions(protocol="spice"),
    }
    return vv_file(**(args | kwargs))


def parse_vv(text: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert parser.sections() == ["virt-viewer"]
    return parser["virt-viewer"]


# --- options -----------------------------------------------------------------


def test_console_options_defaults() -> None:
    options = ConsoleOptions()
    assert options.protocol == "rdp"
    assert options.full_screen is True
    assert options.width is None and options.height is None
    assert options.multi_monitor is False
    assert all(getattr(options, name) is None for name in PERIPHERALS)


def test_every_pool_peripheral_has_a_user_override() -> None:
    assert set(PERIPHERALS) <= set(ConsoleOptions.model_fields)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("protocol", "vnc"),
        ("width", 639),
        ("width", 7681),
        ("height", 479),
        ("height", 4321),
        ("usb", "maybe"),
        ("colour", "blue"),
    ],
)
def test_console_option_errors_name_the_field(field: str, value: Any) -> None:
    data: dict[str, Any] = {"width": 1024, "height": 768, field: value}
    with pytest.raises(ValidationError) as caught:
        ConsoleOptions.model_validate(data)
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (7680, 4320)])
def test_console_option_size_bounds_accepted(width: int, height: int) -> None:
    assert ConsoleOptions(full_screen=False, width=width, height=height).width == width


@pytest.mark.parametrize("data", [{"width": 1024}, {"height": 768}])
def test_width_and_height_go_together(data: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="set both or neither") as caught:
        ConsoleOptions.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("height",)


# --- narrowing -----------------------------------------------------------------


@pytest.mark.parametrize("name", PERIPHERALS)
def test_user_can_switch_off_what_the_pool_allows(name: str) -> None:
    result = effective_peripherals(ALL_ON, ConsoleOptions.model_validate({name: False}))
    assert getattr(result, name) is False
    assert all(getattr(result, other) is True for other in PERIPHERALS if other != name)


@pytest.mark.parametrize("name", PERIPHERALS)
def test_user_cannot_switch_on_what_the_pool_forbids(name: str) -> None:
    result = effective_peripherals(ALL_OFF, ConsoleOptions.model_validate({name: True}))
    assert getattr(result, name) is False


@pytest.mark.parametrize("pool", [ALL_ON, ALL_OFF, Peripherals()])
def test_no_override_keeps_the_pool_setting(pool: Peripherals) -> None:
    assert effective_peripherals(pool, ConsoleOptions()) == pool
    assert effective_peripherals(pool, ConsoleOptions.model_validate(dict.fromkeys(PERIPHERALS, True))) == pool


# --- .rdp ---------------------------------------------------------------------

RDP_KEYS = {
    # peripheral: (key, value when allowed, value when not)
    "usb": [("usbdevicestoredirect", "*", ""), ("devicestoredirect", "*", "")],
    "clipboard": [("redirectclipboard", "1", "0")],
    "audio": [("audiomode", "0", "2"), ("audiocapturemode", "1", "0")],
    "printers": [("redirectprinters", "1", "0")],
    "drives": [("drivestoredirect", "*", "")],
    "smart_cards": [("redirectsmartcards", "1", "0")],
}


def test_rdp_covers_every_peripheral() -> None:
    assert set(RDP_KEYS) == set(PERIPHERALS)


@pytest.mark.parametrize("name", PERIPHERALS)
def test_rdp_peripheral_keys(name: str) -> None:
    on = rdp_values(make_rdp(Peripherals(**{**dataclasses.asdict(ALL_OFF), name: True})))
    off = rdp_values(make_rdp(ALL_ON, ConsoleOptions.model_validate({name: False})))
    widened = rdp_values(make_rdp(ALL_OFF, ConsoleOptions.model_validate({name: True})))
    for key, allowed, forbidden in RDP_KEYS[name]:
        assert on[key] == allowed
        assert off[key] == forbidden
        assert widened[key] == forbidden
    # The other peripherals stay as they were.
    for other, keys in RDP_KEYS.items():
        if other != name:
            for key, _, forbidden in keys:
                assert on[key] == forbidden


def test_rdp_basics_and_crlf() -> None:
    text = make_rdp()
    assert "\n" not in text.replace("\r\n", "")
    parsed = parse_rdp(text)
    assert parsed["full address"] == ("s", "10.0.0.5:3389")
    assert parsed["username"] == ("s", "CORP\\alice")
    assert parsed["screen mode id"] == ("i", "2")
    assert parsed["use multimon"] == ("i", "0")
    assert parsed["autoreconnection enabled"] == ("i", "1")
    assert parsed["prompt for credentials"] == ("i", "1")
    assert "password" not in parsed and "password 51" not in parsed
    assert not any(key.startswith("gateway") for key in parsed)


def test_rdp_address_port_ipv6_username_gateway_multimon() -> None:
    values = rdp_values(
        make_rdp(
            address="fd00::5",
            port=3390,
            username=None,
            gateway="rdgw.example.org",
            options=ConsoleOptions(multi_monitor=True),
        )
    )
    assert values["full address"] == "[fd00::5]:3390"
    assert "username" not in values
    assert values["gatewayhostname"] == "rdgw.example.org"
    assert values["gatewayusagemethod"] == "1"
    assert values["gatewayprofileusagemethod"] == "1"
    assert values["use multimon"] == "1"


def test_rdp_window_size_only_when_not_full_screen() -> None:
    full = rdp_values(make_rdp(options=ConsoleOptions(full_screen=True, width=1280, height=800)))
    assert full["screen mode id"] == "2"
    assert "desktopwidth" not in full and "desktopheight" not in full
    window = rdp_values(make_rdp(options=ConsoleOptions(full_screen=False, width=1280, height=800)))
    assert window["screen mode id"] == "1"
    assert (window["desktopwidth"], window["desktopheight"]) == ("1280", "800")
    unsized = rdp_values(make_rdp(options=ConsoleOptions(full_screen=False)))
    assert unsized["screen mode id"] == "1"
    assert "desktopwidth" not in unsized


BAD_VALUES = [
    "x\r\ndrivestoredirect:s:*",
    "x\nusbdevicestoredirect:s:*",
    "x\rb",
    "x\x00y",
    "x\x1by",
    "x\u2028y",
    "x\x85y",
]


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("field", ["address", "username", "desktop_name", "gateway"])
def test_rdp_rejects_injection(field: str, bad: str) -> None:
    kwargs: dict[str, Any] = {field: bad}
    with pytest.raises(ValueError, match=field):
        make_rdp(**kwargs)


@pytest.mark.parametrize("address", ["", "host name", "host/path", "a" * 256])
def test_rdp_rejects_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        make_rdp(address=address)


@pytest.mark.parametrize("port", [0, 65536])
def test_rdp_rejects_bad_ports(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        make_rdp(port=port)


# --- .vv ------------------------------------------------------------------------

VV_KEYS = {
    "usb": [("enable-usbredir", "1", "0"), ("enable-usb-autoshare", "1", "0")],
    "smart_cards": [("enable-smartcard", "1", "0")],
}
# Channels switched off (disable-channels) when the peripheral is not allowed.
VV_CHANNELS = {"audio": {"playback", "record"}, "drives": {"webdav"}}
# No standard .vv key exists: the file must be the same either way.
VV_NO_KEY = {"clipboard", "printers"}


def disabled_channels(section: configparser.SectionProxy) -> set[str]:
    return {item for item in section.get("disable-channels", "").split(";") if item}


def test_vv_covers_every_peripheral() -> None:
    assert set(VV_KEYS) | set(VV_CHANNELS) | VV_NO_KEY == set(PERIPHERALS)


@pytest.mark.parametrize("name", PERIPHERALS)
def test_vv_peripheral_keys(name: str) -> None:
    on = parse_vv(make_vv(Peripherals(**{**dataclasses.asdict(ALL_OFF), name: True})))
    off = parse_vv(make_vv(ALL_ON, ConsoleOptions.model_validate({"protocol": "spice", name: False})))
    widened = parse_vv(make_vv(ALL_OFF, ConsoleOptions.model_validate({"protocol": "spice", name: True})))
    for key, allowed, forbidden in VV_KEYS.get(name, []):
        assert on[key] == allowed
        assert off[key] == forbidden
        assert widened[key] == forbidden
    for channel in VV_CHANNELS.get(name, set()):
        assert channel not in disabled_channels(on)
        assert channel in disabled_channels(off)
        assert channel in disabled_channels(widened)
    if name in VV_NO_KEY:
        assert dict(on) == dict(parse_vv(make_vv(ALL_OFF)))


def test_vv_all_allowed_disables_no_channel() -> None:
    assert "disable-channels" not in parse_vv(make_vv(ALL_ON))


def test_vv_basics() -> None:
    text = make_vv()
    section = parse_vv(text)
    assert section["type"] == "spice"
    assert section["host"] == "10.0.0.5"
    assert section["port"] == "5900"
    assert section["password"] == "ticket-123"
    assert section["title"] == "lab-007"
    assert section["fullscreen"] == "1"
    assert section["delete-this-file"] == "1"
    assert section["secure-attention"] == "ctrl+alt+end"
    assert section["release-cursor"] == "shift+f12"
    assert section["toggle-fullscreen"] == "shift+f11"
    assert "clipboard" not in " ".join(section)
    assert "valid for 120 s" in text


def test_vv_windowed_and_no_password() -> None:
    options = ConsoleOptions(protocol="spice", full_screen=False, width=1280, height=800)
    section = parse_vv(make_vv(options=options, password=None, ttl_s=30))
    assert section["fullscreen"] == "0"
    assert "password" not in section


def test_vv_proxy_only_when_set() -> None:
    assert "proxy" not in parse_vv(make_vv())
    assert parse_vv(make_vv(spice_proxy="http://[fd00::1]:3128"))["proxy"] == "http://[fd00::1]:3128"
    assert parse_vv(make_vv(spice_proxy="http://proxy.example.org:3128"))["proxy"] == "http://proxy.example.org:3128"


@pytest.mark.parametrize("proxy", ["proxy.example.org:3128", "http://proxy:0", "http://proxy:3128/path", " http://p:1"])
def test_vv_rejects_malformed_proxy(proxy: str) -> None:
    with pytest.raises(ValueError, match="spice_proxy"):
        make_vv(spice_proxy=proxy)


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("field", ["host", "password", "title", "spice_proxy"])
def test_vv_rejects_injection(field: str, bad: str) -> None:
    kwargs: dict[str, Any] = {field: f"http://p:3128{bad}" if field == "spice_proxy" else bad}
    with pytest.raises(ValueError, match=field):
        make_vv(**kwargs)


def test_vv_escapes_backslashes_and_leading_blanks() -> None:
    section = parse_vv(make_vv(title=" a\\nb", password="p\\w"))
    # GKeyFile escapes: "\\" is one backslash, "\s" a leading space; no real newline sneaks in.
    assert section["title"] == "\\sa\\\\nb"
    assert section["password"] == "p\\\\w"


@pytest.mark.parametrize("ttl_s", [0, -5])
def test_vv_rejects_bad_ttl(ttl_s: int) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        make_vv(ttl_s=ttl_s)


def test_connection_file_name() -> None:
    assert connection_file_name("lab-007", "rdp") == "lab-007.rdp"
    assert connection_file_name("lab-007", "spice") == "lab-007.vv"
    assert connection_file_name("../../etc/passwd\r\n", "rdp") == "etc_passwd.rdp"
    assert connection_file_name("\x00", "spice") == "desktop.vv"
