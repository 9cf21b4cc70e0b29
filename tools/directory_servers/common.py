"""What both server helpers need: installing, free ports, readiness and teardown by pid."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path

import ldap3

INSTALL_SCRIPT = Path(__file__).with_name("install.sh")
REQUIRED_PROGRAMS = (
    "/usr/sbin/slapd",
    "/usr/sbin/slapadd",
    "/usr/sbin/samba",
    "/usr/bin/samba-tool",
    # From samba-ad-provision, which samba-ad-dc only recommends.
    "/usr/share/samba/setup/provision.ldif",
    "/usr/bin/openssl",
)


class ServerStartError(RuntimeError):
    """A directory server could not be installed, configured or started; says why."""


def ensure_installed() -> None:
    """Run install.sh when any server program is missing (it is idempotent anyway)."""
    if all(Path(p).exists() for p in REQUIRED_PROGRAMS):
        return
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise ServerStartError(f"{INSTALL_SCRIPT} failed ({result.returncode}):\n{tail(result.stderr + result.stdout)}")
    missing = [p for p in REQUIRED_PROGRAMS if not Path(p).exists()]
    if missing:
        raise ServerStartError(f"{INSTALL_SCRIPT} ran but these are still missing: {missing}")


def run(args: list[str], what: str, timeout: float = 120) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ServerStartError(
            f"{what} failed ({result.returncode}): {' '.join(args)}\n{tail(result.stderr + result.stdout)}"
        )
    return result.stdout


def start_server_process(args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, logging to `log_file`. It gets SIGTERM when
    the process that started it dies, so a killed test run leaves no server behind."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )


def _die_with_parent() -> None:
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until_ldap_answers(
    process: subprocess.Popen[bytes], url: str, log_file: Path, timeout: float, what: str
) -> None:
    """Poll the root DSE anonymously until it answers; fail with the log tail if the
    server exits or stays silent."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"{what} exited with {process.returncode}:\n{tail_file(log_file)}")
        server = ldap3.Server(url, connect_timeout=1, get_info=ldap3.NONE)
        try:
            conn = ldap3.Connection(server, receive_timeout=2, auto_referrals=False, raise_exceptions=True)
            conn.open()
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["namingContexts"])
            conn.unbind()
            return
        except ldap3.core.exceptions.LDAPException as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)
    raise ServerStartError(f"{what} did not answer LDAP within {timeout:.0f}s ({last_error}):\n{tail_file(log_file)}")


def stop_process(process: subprocess.Popen[bytes], grace: float = 5) -> None:
    """Stop the server we started, by its pid only."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def tail_file(path: Path, lines: int = 40) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except FileNotFoundError:
        return f"(no log at {path})"
