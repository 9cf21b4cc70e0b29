"""Debian's slapd from a throwaway config on a free loopback port.

The tree is loaded with `slapadd` before the start (1,000+ entries in well
under a second). Nested membership comes from the `dynlist` overlay, which
gives users and groups a transitive `memberOf` (as OpenLDAP 2.5 recommends
instead of the memberof overlay). The size limit is 1,000 for everyone but
the rootdn, as in Active Directory, so only paged searches see more; the
service account is an ordinary entry so that limit applies to it.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ldap3.utils.dn import escape_rdn

from tools.directory_servers.common import (
    ServerStartError,
    ensure_installed,
    free_loopback_port,
    run,
    start_server_process,
    stop_process,
    wait_until_ldap_answers,
)
from tools.directory_servers.tree import DirectoryTree, UnitPath

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
OPENSSL = "/usr/bin/openssl"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "dyngroup")
SIZE_LIMIT = 1000
_SAFE_LDIF_VALUE = re.compile(r"[\x01-\x09\x0b-\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b-\x0c\x0e-\x7f]*")

_CONFIG = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload dynlist
{tls}
pidfile {workdir}/slapd.pid
argsfile {workdir}/slapd.args
# Like Active Directory's MaxPageSize: 1,000 per answer, any number when paged.
sizelimit size.soft={size_limit} size.hard={size_limit} size.prtotal=unlimited
database mdb
suffix "{base_dn}"
rootdn "{root_dn}"
rootpw {root_password}
directory {workdir}/db
maxsize 268435456
index objectClass eq
index uid,cn,mail,displayName eq,sub
index ou,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
{overlay}
"""
_DYNLIST = """\
overlay dynlist
dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames*
"""


@dataclass
class OpenLdapServer:
    """One slapd; `start` loads the tree and waits until it answers."""

    tree: DirectoryTree
    base_dn: str = "dc=deskpool,dc=test"
    root_password: str = "root-secret"
    # False: no overlay, so no memberOf at all (a server that does not maintain it).
    member_of: bool = True
    # True: a self-signed certificate for 127.0.0.1 (`ca_file`), StartTLS on `url`
    # and LDAPS on `ldaps_url`.
    tls: bool = False
    ldaps_port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="deskpool-slapd-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "cert.pem"

    @property
    def root_dn(self) -> str:
        return f"cn=admin,{self.base_dn}"

    @property
    def service_dn(self) -> str:
        return self.user_dn(self.tree.service_user.name, self.tree.service_user.unit)

    @property
    def log_file(self) -> Path:
        return self.workdir / "slapd.log"

    def unit_dn(self, path: UnitPath) -> str:
        return ",".join([*(f"ou={escape_rdn(name)}" for name in reversed(path)), self.base_dn])

    def user_dn(self, name: str, unit: UnitPath = ()) -> str:
        parent = self.unit_dn(unit) if unit else f"ou=people,{self.base_dn}"
        return f"uid={escape_rdn(name)},{parent}"

    def group_dn(self, name: str, unit: UnitPath = ()) -> str:
        parent = self.unit_dn(unit) if unit else f"ou=groups,{self.base_dn}"
        return f"cn={escape_rdn(name)},{parent}"

    def start(self, timeout: float = 20) -> None:
        ensure_installed()
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "slapd.conf"
        tls = ""
        if self.tls:
            self._make_certificate()
            cert, key = self.ca_file, self.workdir / "key.pem"
            tls = f"TLSCACertificateFile {cert}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}"
        includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
        config.write_text(
            _CONFIG.format(
                includes=includes,
                workdir=self.workdir,
                size_limit=SIZE_LIMIT,
                base_dn=self.base_dn,
                root_dn=self.root_dn,
                root_password=self.root_password,
                overlay=_DYNLIST if self.member_of else "",
                tls=tls,
            )
        )
        ldif = self.workdir / "tree.ldif"
        ldif.write_text(self.tree_ldif())
        run([SLAPADD, "-q", "-f", str(config), "-l", str(ldif)], "slapadd")
        self.port = self.port or free_loopback_port()
        self._run_slapd(timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def restart(self, timeout: float = 20) -> None:
        """Start again on the same port and data (after `stop`)."""
        if self.process is None or self.process.poll() is None:
            raise ServerStartError("restart needs a stopped server")
        self._run_slapd(timeout)

    def _run_slapd(self, timeout: float) -> None:
        # -d none: stay in the foreground (so the pid is ours), log only errors, to stderr.
        if self.tls:
            self.ldaps_port = self.ldaps_port or free_loopback_port()
        listen = f"{self.url}/ {self.ldaps_url}/" if self.tls else f"{self.url}/"
        args = [SLAPD, "-f", str(self.workdir / "slapd.conf"), "-h", listen, "-d", "none"]
        self.process = start_server_process(args, self.log_file)
        wait_until_ldap_answers(self.process, self.url, self.log_file, timeout, "slapd")

    def _make_certificate(self) -> None:
        key = self.workdir / "key.pem"
        run(
            [
                OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(key), "-out", str(self.ca_file),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            "openssl req",
        )  # fmt: skip
        key.chmod(0o600)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def tree_ldif(self) -> str:
        tree = self.tree
        dc = self.base_dn.split(",")[0].split("=", 1)[1]
        entries: list[tuple[str, list[tuple[str, str]]]] = [
            (self.base_dn, [("objectClass", "dcObject"), ("objectClass", "organization"), ("o", dc), ("dc", dc)]),
            (f"ou=people,{self.base_dn}", [("objectClass", "organizationalUnit"), ("ou", "people")]),
            (f"ou=groups,{self.base_dn}", [("objectClass", "organizationalUnit"), ("ou", "groups")]),
        ]
        for path in tree.all_units():
            entries.append((self.unit_dn(path), [("objectClass", "organizationalUnit"), ("ou", path[-1])]))
        user_dns = {}
        for user in tree.all_users():
            dn = user_dns[user.name] = self.user_dn(user.name, user.unit)
            attrs = [("objectClass", "inetOrgPerson"), ("uid", user.name)]
            attrs += [("cn", user.display_name or user.name), ("sn", user.name)]
            attrs += [("displayName", user.display_name)] if user.display_name else []
            attrs += [("mail", user.email)] if user.email else []
            attrs += [("userPassword", user.password)] if user.password else []
            entries.append((dn, attrs))
        group_dns = {g.name: self.group_dn(g.name, g.unit) for g in tree.groups}
        for group in tree.groups:
            members = [user_dns[name] for name in group.users] + [group_dns[name] for name in group.groups]
            if not members:
                raise ServerStartError(f"group {group.name!r}: groupOfNames needs at least one member")
            attrs = [("objectClass", "groupOfNames"), ("cn", group.name)] + [("member", m) for m in members]
            entries.append((group_dns[group.name], attrs))
        return "\n".join(_ldif_entry(dn, attrs) for dn, attrs in entries)


def _ldif_entry(dn: str, attrs: list[tuple[str, str]]) -> str:
    return "".join(_ldif_line(name, value) for name, value in [("dn", dn), *attrs]) + "\n"


def _ldif_line(name: str, value: str) -> str:
    if _SAFE_LDIF_VALUE.fullmatch(value):
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}\n"
