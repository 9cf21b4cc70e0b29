"""A Samba AD DC provisioned into a temp dir and run on 127.0.0.1:389.

Samba's LDAP server has no port setting, so it takes 389 and only one instance
runs per machine. Provisioning uses `--dns-backend=NONE` (no DNS server needed
on loopback), `--use-rfc2307` and its own smb.conf that runs only the LDAP
service, and allows simple binds over plain LDAP (`ldap server require strong
auth = no`): the tests bind with passwords on loopback, without TLS.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ldap3

from tools.directory_servers.common import (
    ServerStartError,
    ensure_installed,
    port_is_open,
    run,
    start_server_process,
    stop_process,
    wait_until_ldap_answers,
)
from tools.directory_servers.tree import DirectoryTree

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
# Debian's own interpreter: the samba Python bindings are installed for it.
SYSTEM_PYTHON = "/usr/bin/python3"
POPULATE_SCRIPT = Path(__file__).with_name("samba_populate.py")
LDAP_PORT = 389
BAD_BINDS_TO_LOCK = 3  # the lockoutThreshold samba_populate.py sets

_SMB_CONF = """\
[global]
	netbios name = DC1
	realm = {realm}
	workgroup = {domain}
	server role = active directory domain controller
	server services = ldap
	interfaces = 127.0.0.1
	bind interfaces only = yes
	ldap server require strong auth = no
	tls enabled = no
	private dir = {target}/private
	state directory = {target}/state
	cache directory = {target}/cache
	lock directory = {target}
	pid directory = {target}
	binddns dir = {target}/bind-dns
	ncalrpc dir = {target}/ncalrpc
	log file = {target}/log.samba
	idmap_ldb:use rfc2307 = yes
"""


@dataclass
class SambaAdServer:
    tree: DirectoryTree
    realm: str = "DESKPOOL.TEST"
    domain: str = "DESKPOOL"
    admin_password: str = "Deskpool-Admin-2024"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="deskpool-samba-")))
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    url = f"ldap://127.0.0.1:{LDAP_PORT}"

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.realm.lower().split("."))

    @property
    def service_dn(self) -> str:
        return f"CN={self.tree.service_user.name},CN=Users,{self.base_dn}"

    @property
    def target(self) -> Path:
        return self.workdir / "target"

    @property
    def config(self) -> Path:
        return self.target / "etc" / "smb.conf"

    @property
    def log_file(self) -> Path:
        return self.workdir / "samba.log"

    def start(self, timeout: float = 60) -> None:
        ensure_installed()
        if port_is_open(LDAP_PORT):
            raise ServerStartError(
                f"127.0.0.1:{LDAP_PORT} is already taken (another Samba AD test run, or a system LDAP "
                "server): Samba AD's LDAP service can only listen on 389"
            )
        began = time.monotonic()
        self._provision()
        self.timings["provision_s"] = time.monotonic() - began
        began = time.monotonic()
        tree_json = self.workdir / "tree.json"
        tree_json.write_text(self.tree.to_json())
        sam_ldb = str(self.target / "private" / "sam.ldb")
        run([SYSTEM_PYTHON, str(POPULATE_SCRIPT), str(self.config), sam_ldb, str(tree_json)], "loading the tree")
        self.timings["load_s"] = time.monotonic() - began
        began = time.monotonic()
        # -i: no daemon, so the pid is ours; -M single: one process to stop.
        self.process = start_server_process([SAMBA, "-i", "-M", "single", "-s", str(self.config)], self.log_file)
        wait_until_ldap_answers(self.process, self.url, self.log_file, timeout, "samba")
        self.timings["start_s"] = time.monotonic() - began
        self._lock_users()

    def _provision(self) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        run(
            [
                SAMBA_TOOL, "domain", "provision",
                f"--realm={self.realm}", f"--domain={self.domain}",
                "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
                f"--adminpass={self.admin_password}", f"--targetdir={self.target}",
                "--host-name=dc1", "--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes",
            ],
            "samba-tool domain provision",
            timeout=180,
        )  # fmt: skip
        # Replace the provisioned smb.conf: only the LDAP service, all paths in here.
        self.config.write_text(_SMB_CONF.format(realm=self.realm, domain=self.domain, target=self.target))

    def _lock_users(self) -> None:
        """Lock the tree's locked users the way it happens: failed binds past the threshold."""
        server = ldap3.Server(self.url, connect_timeout=2, get_info=ldap3.NONE)
        for user in self.tree.users:
            if not user.locked:
                continue
            for _ in range(BAD_BINDS_TO_LOCK):
                conn = ldap3.Connection(server, f"{user.name}@{self.realm.lower()}", "not-the-password")
                if conn.bind():
                    raise ServerStartError(f"locking {user.name}: a wrong password was accepted")
                conn.unbind()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
