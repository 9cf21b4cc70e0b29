"""Connection files a user downloads to reach a desktop: .rdp (mstsc, FreeRDP) and .vv (virt-viewer).

Pure functions, no web framework: the endpoint that serves them decides the
address, the one-time SPICE ticket and the file name; this module only turns
a pool's peripherals and a user's console options into file text.

Every value written comes from outside (user names, desktop names, addresses,
tickets), and both formats are line based: a value with a newline or another
control character could add keys of its own (say, a drive to redirect), so it
is refused with ValueError rather than escaped.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from workflows.pool_spec import Peripherals, _is_proxy_address

# virt-viewer's hotkeys (spice hotkey format), the ones oVirt writes too.
SECURE_ATTENTION = "ctrl+alt+end"
RELEASE_CURSOR = "shift+f12"
TOGGLE_FULLSCREEN = "shift+f11"

_HOST_RE = re.compile(r"[A-Za-z0-9.:%_\[\]-]{1,255}")


class ConsoleOptions(BaseModel):
    """One user's console preferences for one pool (oVirt: options a user sets for a VM
    taken from a pool become that user's default for the pool).

    The peripheral fields may only narrow what the pool allows: None keeps the
    pool's setting, False switches a device class off, True asks for it but
    never overrides a pool that forbids it (see effective_peripherals).
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    protocol: Literal["rdp", "spice"] = "rdp"
    full_screen: bool = True
    # The window size when not full screen; both or neither.
    width: int | None = Field(default=None, ge=640, le=7680)
    height: int | None = Field(default=None, ge=480, le=4320)
    multi_monitor: bool = False
    usb: bool | None = None
    clipboard: bool | None = None
    audio: bool | None = None
    printers: bool | None = None
    drives: bool | None = None
    smart_cards: bool | None = None

    @field_validator("height")
    @classmethod
    def _size_pair(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "width" in info.data and (info.data["width"] is None) != (value is None):
            raise ValueError("width and height go together: set both or neither")
        return value


def effective_peripherals(pool: Peripherals, options: ConsoleOptions) -> Peripherals:
    """What this user's session may redirect: the pool's allowance, minus what the user switched off."""
    allowed = {}
    for field in dataclasses.fields(pool):
        override: bool | None = getattr(options, field.name)
        allowed[field.name] = bool(getattr(pool, field.name)) and override is not False
    return Peripherals(**allowed)


def _check(name: str, value: str) -> str:
    """Refuse what could end a line or steer a client: control characters and line separators."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"{name}: control characters and line breaks are not allowed")
    return value


def _check_host(name: str, value: str) -> str:
    _check(name, value)
    if not _HOST_RE.fullmatch(value):
        raise ValueError(f"{name}: not a host name or IP address")
    return value


def _check_port(name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{name}: must be from 1 to 65535")
    return value


def _flag(value: bool) -> int:
    return 1 if value else 0


def rdp_file(
    *,
    address: str,
    port: int = 3389,
    username: str | None,
    desktop_name: str,
    peripherals: Peripherals,
    options: ConsoleOptions,
    gateway: str | None = None,
) -> str:
    """A .rdp file: `key:type:value` lines with CRLF endings, as mstsc and FreeRDP read them.

    `peripherals` is the pool's allowance; the user's narrowing is applied here.
    No password is ever written (the client prompts). The format has no window
    title key, so `desktop_name` is only checked (callers name the file after it).
    The text is returned as str; mstsc reads it as UTF-8 as well as UTF-16.
    """
    _check_host("address", address)
    _check_port("port", port)
    _check("desktop_name", desktop_name)
    if username is not None:
        _check("username", username)
    if gateway is not None:
        _check_host("gateway", gateway)
    allowed = effective_peripherals(peripherals, options)
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    lines: list[tuple[str, str, str | int]] = [("full address", "s", f"{host}:{port}")]
    if username is not None:
        lines.append(("username", "s", username))
    lines.append(("screen mode id", "i", 2 if options.full_screen else 1))
    if not options.full_screen and options.width is not None and options.height is not None:
        lines += [("desktopwidth", "i", options.width), ("desktopheight", "i", options.height)]
    lines += [
        ("use multimon", "i", _flag(options.multi_monitor)),
        ("redirectclipboard", "i", _flag(allowed.clipboard)),
        # 0: play on this computer, 2: do not play. Audio also covers the microphone.
        ("audiomode", "i", 0 if allowed.audio else 2),
        ("audiocapturemode", "i", _flag(allowed.audio)),
        ("redirectprinters", "i", _flag(allowed.printers)),
        ("drivestoredirect", "s", "*" if allowed.drives else ""),
        ("redirectsmartcards", "i", _flag(allowed.smart_cards)),
        ("usbdevicestoredirect", "s", "*" if allowed.usb else ""),
        # Plug-and-play devices (phones, cameras): USB devices too, as far as the pool is concerned.
        ("devicestoredirect", "s", "*" if allowed.usb else ""),
        ("autoreconnection enabled", "i", 1),
        ("prompt for credentials", "i", 1),
    ]
    if gateway is not None:
        # 1: always through this gateway; the profile method 1 makes the client use these settings.
        lines += [
            ("gatewayhostname", "s", gateway),
            ("gatewayusagemethod", "i", 1),
            ("gatewayprofileusagemethod", "i", 1),
        ]
    return "".join(f"{key}:{kind}:{value}\r\n" for key, kind, value in lines)


def _keyfile_value(name: str, value: str) -> str:
    """A GKeyFile string value (virt-viewer reads .vv with GLib): backslash and leading blanks escaped."""
    _check(name, value)
    escaped = value.replace("\\", "\\\\")
    if escaped.startswith(" "):
        escaped = "\\s" + escaped[1:]
    return escaped


def vv_file(
    *,
    host: str,
    port: int,
    password: str | None,
    title: str,
    spice_proxy: str | None,
    peripherals: Peripherals,
    options: ConsoleOptions,
    ttl_s: int = 120,
) -> str:
    """A virt-viewer (.vv) file for a SPICE console; remote-viewer deletes it once opened.

    `password` is the console ticket, valid for `ttl_s` seconds; `spice_proxy`
    is the pool's override (protocol://[host]:[port]). The window size and
    multi-monitor options have no .vv keys and are left to the viewer.
    """
    _check_host("host", host)
    _check_port("port", port)
    if ttl_s < 1:
        raise ValueError("ttl_s: must be at least 1")
    if spice_proxy is not None:
        _check("spice_proxy", spice_proxy)
        if not _is_proxy_address(spice_proxy):
            raise ValueError("spice_proxy: must have the form protocol://[host]:[port]")
    allowed = effective_peripherals(peripherals, options)
    disabled = []
    if not allowed.audio:
        disabled += ["playback", "record"]
    if not allowed.drives:
        disabled.append("webdav")  # SPICE folder sharing
    lines = [
        # Clipboard: .vv has no standard key for it (SPICE copy and paste runs
        # through the guest agent on the main channel), so none is written; a pool
        # that forbids the clipboard must switch it off in the guest's spice-vdagent.
        # Printers: SPICE has no printer channel; nothing to write either.
        "# Clipboard: no standard .vv key; enforced in the guest's spice-vdagent.",
        f"# The password is a one-time console ticket, valid for {ttl_s} s.",
        "[virt-viewer]",
        "type=spice",
        f"host={_keyfile_value('host', host)}",
        f"port={port}",
    ]
    if password is not None:
        lines.append(f"password={_keyfile_value('password', password)}")
    lines += [
        f"title={_keyfile_value('title', title)}",
        f"fullscreen={_flag(options.full_screen)}",
        f"enable-usbredir={_flag(allowed.usb)}",
        f"enable-usb-autoshare={_flag(allowed.usb)}",
        f"enable-smartcard={_flag(allowed.smart_cards)}",
    ]
    if disabled:
        # A GKeyFile string list: each item ends with ';'.
        lines.append("disable-channels=" + "".join(f"{channel};" for channel in disabled))
    if spice_proxy is not None:
        lines.append(f"proxy={spice_proxy}")
    lines += [
        "delete-this-file=1",
        f"secure-attention={SECURE_ATTENTION}",
        f"release-cursor={RELEASE_CURSOR}",
        f"toggle-fullscreen={TOGGLE_FULLSCREEN}",
    ]
    return "\n".join(lines) + "\n"


def connection_file_name(desktop_name: str, protocol: Literal["rdp", "spice"]) -> str:
    """A safe download name: the desktop's name (pool naming rules keep it plain) and the extension."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", desktop_name).strip("._") or "desktop"
    return f"{stem[:64]}.{'rdp' if protocol == 'rdp' else 'vv'}"
