"""Bring the minicloud up, check it, take it down.

`up` is idempotent: a healthy running minicloud is returned at once. A fresh
bring-up wipes the state dir, drops and recreates its MariaDB databases and
its RabbitMQ vhost, renders the config templates of etc/, runs the db syncs,
bootstraps Keystone, registers the services, starts the APIs under uWSGI and
nova conductor/scheduler/compute, seeds what deskpool's tests use and waits
until the hypervisor is schedulable. Anything it started is stopped again if
a step fails, and the error carries the tail of the log that explains it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.minicloud import processes
from tools.minicloud.venv import VenvError, cache_root, ensure_venv, is_ready

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATES = HERE / "etc"
DEFAULT_STATE_DIR = ROOT / "data" / "minicloud"

CLOUD = "minicloud"
REGION = "RegionOne"
HOST = "127.0.0.1"
ADMIN_PASSWORD = "admin"
SERVICE_PASSWORD = "secret"
KEYSTONE_PORT = 15000
# name: (port, WSGI module, config-dir variable, config dir under etc/)
APIS: dict[str, tuple[int, str, str, str]] = {
    "keystone": (KEYSTONE_PORT, "keystone.wsgi.api:application", "OS_KEYSTONE_CONFIG_DIR", "keystone"),
    "glance": (15292, "glance.wsgi.api:application", "OS_GLANCE_CONFIG_DIR", "glance"),
    "placement": (15778, "placement.wsgi.api:application", "OS_PLACEMENT_CONFIG_DIR", "placement"),
    "neutron": (15696, "neutron.wsgi.api:application", "OS_NEUTRON_CONFIG_DIR", "neutron"),
    "nova-api": (15774, "nova.wsgi.osapi_compute:application", "OS_NOVA_CONFIG_DIR", "nova"),
}
# name: (service type, URL path) in the Keystone catalog
CATALOG = {
    "glance": ("image", ""),
    "placement": ("placement", ""),
    "neutron": ("network", ""),
    "nova-api": ("compute", "/v2.1"),
}
SERVICE_USERS = ("glance", "placement", "nova", "neutron")
NOVA_SERVICES = ("nova-conductor", "nova-scheduler", "nova-compute")

# The machine's MariaDB and RabbitMQ, with databases and a vhost of our own.
DB_PREFIX = "dpmc_"
DATABASES = ("nova_api", "nova_cell0", "nova_cell1", "placement", "neutron")
MYSQL_HOST = os.environ.get("MINICLOUD_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("MINICLOUD_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("MINICLOUD_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("MINICLOUD_MYSQL_PASSWORD", "")
RABBIT_VHOST = "dpmc"
SHARED_RABBIT_PORT = 5672
PRIVATE_RABBIT_PORT = 5673
PRIVATE_RABBIT_NODE = "dpmc@localhost"

IMAGE = "win11-golden"
FLAVORS = {"vdi.medium": (2, 4096, 20), "vdi.small": (1, 2048, 10)}  # vcpus, MiB, GB
NETWORK, SUBNET, SUBNET_CIDR = "vdi-net", "vdi-subnet", "10.250.0.0/24"
SECURITY_GROUP = "vdi-rdp"

STEP_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 240.0


class MiniCloudError(RuntimeError):
    """A bring-up step failed; `log_tail` holds the end of the log that says why."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n--- log tail ---\n{self.log_tail}" if self.log_tail else text


@dataclass
class State:
    """What a bring-up started, kept in <state-dir>/state.json for status and down."""

    venv: str
    rabbit: str  # "shared" (the machine's, own vhost) or "private" (a node of our own)
    transport_url: str
    processes: dict[str, int] = field(default_factory=dict)
    ready: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class UpResult:
    clouds_yaml: Path
    cloud: str
    started: bool  # False: an already running, healthy minicloud was reused
    timings: dict[str, float]


@dataclass
class Status:
    state_dir: Path
    running: bool
    healthy: bool
    problems: list[str]
    processes: dict[str, int]
    rss_mb: float
    pss_mb: float
    clouds_yaml: Path | None


class Paths:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir.resolve()
        self.etc = self.root / "etc"
        self.data = self.root / "data"
        self.logs = self.root / "logs"
        self.run = self.root / "run"
        self.rmq = self.root / "rmq"
        self.state = self.root / "state.json"
        self.clouds_yaml = self.root / "clouds.yaml"
        self.lock = self.root / ".lock"


# --- state ---------------------------------------------------------------------------


def _load_state(paths: Paths) -> State | None:
    try:
        return State(**json.loads(paths.state.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save_state(paths: Paths, state: State) -> None:
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(paths.state)


@contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _markers(paths: Paths, state: State) -> tuple[str, ...]:
    return tuple(m for m in (str(paths.root), state.venv) if m)


# One minicloud per machine (fixed ports and database names): which state dir has it.
ACTIVE = cache_root() / "minicloud-active"


def _claim_machine(paths: Paths, say: Callable[[str], None]) -> None:
    """Stop a minicloud of another state dir (another checkout, say) that holds the ports."""
    try:
        other = Path(ACTIVE.read_text().strip())
    except OSError:
        other = None
    elsewhere = other is not None and other != paths.root and (other / "state.json").exists()
    if other is not None and elsewhere and down(other, say=say):
        say(f"stopped the minicloud of {other}: one per machine")
    ACTIVE.parent.mkdir(parents=True, exist_ok=True)
    ACTIVE.write_text(f"{paths.root}\n")


def _release_machine(paths: Paths) -> None:
    with contextlib.suppress(OSError):
        if Path(ACTIVE.read_text().strip()) == paths.root:
            ACTIVE.unlink()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return f"{path}:\n" + "\n".join(text.splitlines()[-lines:])


# --- status ---------------------------------------------------------------------------


def _http_status(port: int, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET / (any answer means the app is loaded), None if no answer."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def status(state_dir: Path = DEFAULT_STATE_DIR) -> Status:
    paths = Paths(state_dir)
    state = _load_state(paths)
    if state is None:
        return Status(paths.root, False, False, ["not started"], {}, 0.0, 0.0, None)
    problems = []
    markers = _markers(paths, state)
    alive = {name: pid for name, pid in state.processes.items() if processes.is_ours_group(pid, markers)}
    problems += [f"{name} (pid {pid}) is not running" for name, pid in state.processes.items() if name not in alive]
    if not state.ready:
        problems.append("the last bring-up did not finish")
    for name, (port, *_) in APIS.items():
        code = _http_status(port)
        if code is None or code >= 500:
            problems.append(f"{name} does not answer on port {port} ({code})")
    rss, pss = processes.memory_kb(state.processes.values())
    return Status(
        state_dir=paths.root,
        running=bool(alive),
        healthy=not problems,
        problems=problems,
        processes=state.processes,
        rss_mb=rss / 1024,
        pss_mb=pss / 1024,
        clouds_yaml=paths.clouds_yaml if paths.clouds_yaml.exists() else None,
    )


# --- fault injection ---------------------------------------------------------------------


@contextmanager
def paused(service: str, state_dir: Path = DEFAULT_STATE_DIR) -> Iterator[int]:
    """Freeze one service (SIGSTOP to its process group) for the block, e.g. nova-compute:
    the API still answers and records the request, but nothing carries it out until the block ends."""
    paths = Paths(state_dir)
    state = _load_state(paths)
    pid = state.processes.get(service) if state else None
    if state is None or pid is None or not processes.is_ours_group(pid, _markers(paths, state)):
        raise MiniCloudError(f"{service} is not running in {paths.root}")
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.killpg(pid, signal.SIGCONT)


# --- down ----------------------------------------------------------------------------


def down(state_dir: Path = DEFAULT_STATE_DIR, purge: bool = False, say: Callable[[str], None] = print) -> bool:
    """Stop everything the last bring-up started; True if anything was running."""
    paths = Paths(state_dir)
    with _locked(paths):
        return _down(paths, purge, say)


def _down(paths: Paths, purge: bool, say: Callable[[str], None]) -> bool:
    state = _load_state(paths)
    if state is None:
        return False
    markers = _markers(paths, state)
    # Compute first (it ignores SIGTERM; the grace is short), the APIs, the broker last.
    order = sorted(state.processes, key=lambda n: (n != "nova-compute", n.startswith("rabbitmq")))
    leaders = {name: state.processes[name] for name in order}
    was_running = any(processes.is_ours_group(pid, markers) for pid in leaders.values())
    if state.rabbit == "private" and "rabbitmq" in leaders and processes.alive_of([leaders["rabbitmq"]]):
        _private_rabbitmqctl(paths, ["stop"], check=False)
    killed = processes.stop_groups(leaders, markers, grace_s=3.0)
    left = [pid for pid in processes.alive_tree(leaders.values()) if processes.names_marker(pid, markers)]
    if left:
        raise MiniCloudError(f"processes left behind after down: {left}")
    if was_running:
        say(f"minicloud stopped ({', '.join(leaders)}){f'; SIGKILL for {killed}' if killed else ''}")
    state.ready = False
    state.processes = {}
    _save_state(paths, state)
    _release_machine(paths)
    if purge:
        venv = Path(state.venv)
        if is_ready(venv):
            _drop_databases(venv, recreate=False)
        if state.rabbit == "shared":
            _rabbitmqctl(["delete_vhost", RABBIT_VHOST], check=False)
        shutil.rmtree(paths.root, ignore_errors=True)
        say(f"purged {paths.root}, the {DB_PREFIX}* databases and the {RABBIT_VHOST} vhost")
    return was_running


# --- up ------------------------------------------------------------------------------


def up(state_dir: Path = DEFAULT_STATE_DIR, say: Callable[[str], None] = print) -> UpResult:
    paths = Paths(state_dir)
    with _locked(paths):
        current = status(paths.root)
        if current.healthy:
            say(f"minicloud already up and healthy: {paths.clouds_yaml} (cloud {CLOUD!r})")
            state = _load_state(paths)
            return UpResult(paths.clouds_yaml, CLOUD, False, state.timings if state else {})
        if current.running:
            say(f"minicloud unhealthy ({'; '.join(current.problems)}): restarting it")
        _down(paths, purge=False, say=say)
        bring_up = _BringUp(paths, say)
        try:
            bring_up.run()
        except BaseException:
            try:
                _down(paths, purge=False, say=say)
            except MiniCloudError as exc:
                say(str(exc))
            raise
        return UpResult(paths.clouds_yaml, CLOUD, True, bring_up.state.timings)


class _BringUp:
    def __init__(self, paths: Paths, say: Callable[[str], None]) -> None:
        self.paths = paths
        self.say = say
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.state = State(venv="", rabbit="shared", transport_url="")
        # Set once Keystone's catalog has every service (nova's services wait for it).
        self.registered = threading.Event()
        self.venv = Path()

    # -- helpers --

    def mark(self, what: str) -> None:
        elapsed = time.monotonic() - self.t0
        with self.lock:
            self.state.timings[what] = round(elapsed, 1)
        self.say(f"[{elapsed:6.1f}s] {what}")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            VIRTUAL_ENV=str(self.venv),
            PYTHONWARNINGS="ignore",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self) -> None:
        self._prepare()
        self._start_all()
        self.state.ready = True
        self.save()
        self.mark("ready")
        timings = ", ".join(f"{k} {v}s" for k, v in self.state.timings.items())
        self.say(f"minicloud up: {self.paths.clouds_yaml} (cloud {CLOUD!r}); {timings}")

    def save(self) -> None:
        with self.lock:
            _save_state(self.paths, self.state)

    def step(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = STEP_TIMEOUT_S
    ) -> str:
        log = self.paths.logs / "setup" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            try:
                result = subprocess.run(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env or self.env(),
                    cwd=self.paths.root,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise MiniCloudError(f"{name} took longer than {timeout:.0f}s", tail(log)) from None
        if result.returncode != 0:
            raise MiniCloudError(f"{name} failed (exit {result.returncode})", tail(log))
        return log.read_text(errors="replace")

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        out = self.paths.logs / f"{name}.out"
        with open(out, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env or self.env(),
                cwd=self.paths.root,
                start_new_session=True,  # its own process group, stopped by id
            )
        with self.lock:
            self.state.processes[name] = process.pid
        self.save()
        return process.pid

    def log_of(self, name: str) -> Path:
        own = {
            "keystone": "keystone.log",
            "glance": "glance-api.log",
            "placement": "placement.log",
            "neutron": "neutron.log",
        }
        if name in own and (self.paths.logs / own[name]).exists():
            return self.paths.logs / own[name]
        if name.startswith("nova-") and name != "nova-api":
            return self.paths.logs / f"{name}.log"
        return self.paths.logs / f"{name}.out"

    def check_alive(self, *names: str) -> None:
        for name in names:
            pid = self.state.processes.get(name)
            if pid is not None and not processes.is_alive(pid):
                raise MiniCloudError(f"{name} (pid {pid}) exited during bring-up", tail(self.log_of(name)))

    def wait_http(self, name: str, deadline_s: float = 120.0) -> None:
        port = APIS[name][0]
        deadline = time.monotonic() + deadline_s
        while True:
            code = _http_status(port, timeout=5.0)
            if code is not None and code < 500:
                return
            self.check_alive(name)
            if time.monotonic() > deadline:
                raise MiniCloudError(
                    f"{name} did not answer on port {port} within {deadline_s:.0f}s", tail(self.log_of(name))
                )
            time.sleep(0.2)

    def wait_log(self, name: str, text: str, deadline_s: float = 120.0) -> None:
        log = self.log_of(name)
        deadline = time.monotonic() + deadline_s
        while not (log.exists() and text in log.read_text(errors="replace")):
            self.check_alive(name)
            if time.monotonic() > deadline:
                raise MiniCloudError(f"{name} did not log {text!r} within {deadline_s:.0f}s", tail(log))
            time.sleep(0.2)

    # -- phases --

    def _prepare(self) -> None:
        _claim_machine(self.paths, self.say)
        busy = [f"{name}:{port}" for name, (port, *_) in APIS.items() if _port_in_use(port)]
        if busy:
            raise MiniCloudError(
                f"ports in use by something else: {', '.join(busy)} (another minicloud with a different state dir?)"
            )
        try:
            self.venv, built = ensure_venv(self.say)
        except VenvError as exc:
            raise MiniCloudError(str(exc), tail(exc.log)) from None
        self.state.venv = str(self.venv)
        if built is not None:
            self.mark(f"venv built in {built:.0f}s")
        else:
            self.mark("venv cached")
        for sub in ("etc", "data", "logs", "run", "rmq"):
            shutil.rmtree(self.paths.root / sub, ignore_errors=True)
        for sub in (
            "data/images",
            "data/images-staging",
            "data/images-tasks",
            "data/nova/instances",
            "data/nova/locks",
        ):
            (self.paths.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("data/neutron/locks", "logs/setup", "run"):
            (self.paths.root / sub).mkdir(parents=True, exist_ok=True)
        self.paths.clouds_yaml.unlink(missing_ok=True)

    def _start_all(self) -> None:
        with ThreadPoolExecutor(max_workers=6, thread_name_prefix="minicloud") as pool:
            rabbit = pool.submit(self._rabbit)
            databases = pool.submit(_drop_databases, self.venv, True)
            # Keystone on SQLite needs neither: it starts at once.
            self._render(transport_url=f"rabbit://guest:guest@{HOST}:{SHARED_RABBIT_PORT}/{RABBIT_VHOST}")
            keystone = pool.submit(self._keystone)
            databases.result()
            self.mark("databases recreated")
            # The transport URL depends on which RabbitMQ we got (keystone does not use it).
            transport = rabbit.result()
            if self.state.rabbit == "private":
                self._render(transport_url=transport, only_with="@TRANSPORT_URL@")
            self.state.transport_url = transport
            self.save()
            self.mark(f"rabbitmq vhost ready ({self.state.rabbit})")
            synced: dict[str, Future[None]] = {
                "glance": pool.submit(self._glance),
                "placement": pool.submit(self._placement),
                "neutron": pool.submit(self._neutron),
                "nova": pool.submit(self._nova),
            }
            keystone.result()
            self._register()
            for future in synced.values():
                future.result()
            self.mark("all db synced, all APIs started")
            # nova-compute started before the conductor consumes waits 10 s for it: start it after.
            self.wait_log("nova-conductor", "Starting conductor node")
            self._start_nova_service("nova-compute")
            self.mark("nova-compute started")
            for name in ("glance", "placement", "neutron", "nova-api"):
                self.wait_http(name)
            self.mark("all APIs answer")
            self._seed_and_wait_compute()

    def _render(self, transport_url: str, only_with: str = "") -> None:
        """etc/ templates into <state>/etc; `only_with`: just the templates containing that placeholder."""
        auth = f"{MYSQL_USER}:{MYSQL_PASSWORD}" if MYSQL_PASSWORD else MYSQL_USER
        values = {
            "@MINICLOUD@": str(self.paths.root),
            "@TRANSPORT_URL@": transport_url,
            "@MYSQL@": f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}",
            "@DB_PREFIX@": DB_PREFIX,
            "@KEYSTONE_URL@": f"http://{HOST}:{KEYSTONE_PORT}",
            "@GLANCE_PORT@": str(APIS["glance"][0]),
        }
        for template in TEMPLATES.rglob("*"):
            if not template.is_file():
                continue
            text = template.read_text()
            if only_with not in text:
                continue
            for key, value in values.items():
                text = text.replace(key, value)
            target = self.paths.etc / template.relative_to(TEMPLATES)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(target)  # atomic: a service reading it never sees half a file

    # RabbitMQ

    def _rabbit(self) -> str:
        forced_private = os.environ.get("MINICLOUD_RABBIT") == "private"
        if not forced_private and shutil.which("rabbitmqctl"):
            try:
                _rabbitmqctl(["delete_vhost", RABBIT_VHOST], check=False)
                _rabbitmqctl(["add_vhost", RABBIT_VHOST])
                _rabbitmqctl(["set_permissions", "-p", RABBIT_VHOST, "guest", ".*", ".*", ".*"])
                self.state.rabbit = "shared"
                return f"rabbit://guest:guest@{HOST}:{SHARED_RABBIT_PORT}/{RABBIT_VHOST}"
            except MiniCloudError as exc:
                self.say(f"the machine's RabbitMQ is not usable ({exc}); starting a private node")
        self.state.rabbit = "private"
        self._start_private_rabbit()
        return f"rabbit://guest:guest@{HOST}:{PRIVATE_RABBIT_PORT}/"

    def _start_private_rabbit(self) -> None:
        # The server script itself, as the current user: Debian's /usr/sbin wrapper switches to
        # the rabbitmq user (with `su`, in a session of its own), and that user must then own
        # every directory the node uses.
        inner = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        server = str(inner) if inner.exists() else shutil.which("rabbitmq-server")
        if server is None:
            raise MiniCloudError("no usable RabbitMQ: rabbitmqctl failed and rabbitmq-server is not installed")
        rmq = self.paths.rmq
        for sub in ("mnesia", "log"):
            (rmq / sub).mkdir(parents=True, exist_ok=True)
        (rmq / "enabled_plugins").write_text("[].\n")
        (rmq / "rabbitmq.conf").write_text(f"listeners.tcp.default = {HOST}:{PRIVATE_RABBIT_PORT}\n")
        if server != str(inner):
            with contextlib.suppress(KeyError, PermissionError):
                user = pwd.getpwnam("rabbitmq")
                for path in [rmq, *rmq.rglob("*")]:
                    os.chown(path, user.pw_uid, user.pw_gid)
        self.start("rabbitmq", [server], env=_private_rabbit_env(self.paths, self.env()))
        deadline = time.monotonic() + 90
        while not _port_in_use(PRIVATE_RABBIT_PORT):
            self.check_alive("rabbitmq")
            if time.monotonic() > deadline:
                raise MiniCloudError(
                    "the private RabbitMQ node did not listen within 90s", tail(self.paths.logs / "rabbitmq.out")
                )
            time.sleep(0.3)

    # Keystone

    def _keystone(self) -> None:
        conf = ["--config-file", str(self.paths.etc / "keystone" / "keystone.conf")]
        manage = self.bin("keystone-manage")
        self.step("keystone-db-sync", [manage, *conf, "db_sync"])
        # What `keystone-manage fernet_setup` and `credential_setup` write, without two more
        # interpreter starts: a staged key "0" and a primary key "1", each a Fernet key.
        for repo in ("fernet-keys", "credential-keys"):
            _write_fernet_keys(self.paths.etc / "keystone" / repo)
        url = f"http://{HOST}:{KEYSTONE_PORT}/v3"
        self.step(
            "keystone-bootstrap",
            [manage, *conf, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION]
            + [arg for kind in ("admin", "internal", "public") for arg in (f"--bootstrap-{kind}-url", url)],
        )
        self.mark("keystone bootstrapped")
        self._start_api("keystone")
        self.wait_http("keystone")
        self.mark("keystone answers")

    def _start_api(self, name: str) -> None:
        port, module, config_var, config_dir = APIS[name]
        argv = [
            self.bin("uwsgi"),
            "--http-socket", f"{HOST}:{port}",
            "--module", module,
            "--virtualenv", str(self.venv),
            "--master", "--processes", "1", "--threads", "4",
            "--die-on-term", "--need-app", "--lazy-apps",
            "--buffer-size", "65535",
            # uWSGI's --http-socket breaks openstacksdk's keep-alive connections.
            "--add-header", "Connection: close",
            "--pidfile", str(self.paths.run / f"{name}.pid"),
        ]  # fmt: skip
        self.start(name, argv, env=self.env(**{config_var: str(self.paths.etc / config_dir)}))

    # The other services' databases, then their APIs

    def _glance(self) -> None:
        self.step(
            "glance-db-sync",
            [self.bin("glance-manage"), "--config-file", str(self.paths.etc / "glance" / "glance-api.conf"), "db_sync"],
        )
        self._start_api("glance")

    def _placement(self) -> None:
        conf = str(self.paths.etc / "placement" / "placement.conf")
        self.step("placement-db-sync", [self.bin("placement-manage"), "--config-file", conf, "db", "sync"])
        self._start_api("placement")

    def _neutron(self) -> None:
        conf = self.paths.etc / "neutron"
        self.step(
            "neutron-db-manage",
            [
                self.bin("neutron-db-manage"),
                "--config-file",
                str(conf / "neutron.conf"),
                "--config-file",
                str(conf / "plugins" / "ml2" / "ml2_conf.ini"),
                "upgrade",
                "heads",
            ],
        )
        self.mark("neutron db synced")
        self._start_api("neutron")

    def _nova(self) -> None:
        manage = [self.bin("nova-manage"), "--config-file", str(self.paths.etc / "nova" / "nova.conf")]
        auth = f"{MYSQL_USER}:{MYSQL_PASSWORD}" if MYSQL_PASSWORD else MYSQL_USER
        cell0 = f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{DB_PREFIX}nova_cell0?charset=utf8"
        # api_db sync, map_cell0, create_cell cell1, db sync: one process (see nova_cells.py).
        self.step("nova-db-setup", [self.bin("python"), str(HERE / "nova_cells.py"), manage[-1], cell0])
        self.mark("nova db synced")
        # The conductor and scheduler look Placement up in the catalog once, at start: started
        # before it is registered they keep "placement disabled" for their whole life (every
        # build then fails with ServiceDisabledException).
        if not self.registered.wait(timeout=180):
            raise MiniCloudError("keystone registrations not done within 180 s")
        self._start_api("nova-api")
        self._start_nova_service("nova-conductor")
        self._start_nova_service("nova-scheduler")

    def _start_nova_service(self, name: str) -> None:
        conf = str(self.paths.etc / "nova" / "nova.conf")
        self.start(name, [self.bin(name), "--config-file", conf, "--log-file", str(self.paths.logs / f"{name}.log")])

    # Keystone registrations and seeding, through openstacksdk in this process

    def _write_clouds_yaml(self) -> None:
        clouds = {
            "clouds": {
                CLOUD: {
                    "auth": {
                        "auth_url": f"http://{HOST}:{KEYSTONE_PORT}/v3",
                        "username": "admin",
                        "password": ADMIN_PASSWORD,
                        "project_name": "admin",
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    "region_name": REGION,
                    "interface": "public",
                    "identity_api_version": 3,
                }
            }
        }
        self.paths.clouds_yaml.write_text(yaml.safe_dump(clouds, sort_keys=False))

    def _connect(self) -> Any:
        import openstack
        from openstack.config import loader

        config = loader.OpenStackConfig(config_files=[str(self.paths.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=CLOUD, region_name=REGION))

    def _register(self) -> None:
        self._write_clouds_yaml()
        identity = self._connect().identity
        project = identity.create_project(name="service", domain_id="default")
        roles = [identity.find_role("admin", ignore_missing=False)]
        roles.append(identity.find_role("service") or identity.create_role(name="service"))
        for name in SERVICE_USERS:
            user = identity.create_user(name=name, password=SERVICE_PASSWORD, domain_id="default")
            for role in roles:
                identity.assign_project_role_to_user(project, user, role)
        for name, (service_type, path) in CATALOG.items():
            service = identity.create_service(name=name.removesuffix("-api"), type=service_type)
            url = f"http://{HOST}:{APIS[name][0]}{path}"
            for interface in ("public", "internal", "admin"):
                identity.create_endpoint(service_id=service.id, interface=interface, url=url, region_id=REGION)
        self.registered.set()
        self.mark("keystone registrations done")

    def _seed_and_wait_compute(self) -> None:
        conn = self._connect()  # a new token: its catalog has the endpoints
        conn.image.create_image(
            name=IMAGE, disk_format="raw", container_format="bare", visibility="public", data=b"\0" * 1024
        )
        for name, (vcpus, ram, disk) in FLAVORS.items():
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk)
        network = conn.network.create_network(
            name=NETWORK, shared=True, provider_network_type="flat", provider_physical_network="physnet1"
        )
        conn.network.create_subnet(
            network_id=network.id, cidr=SUBNET_CIDR, ip_version=4, enable_dhcp=False, name=SUBNET
        )
        group = conn.network.create_security_group(name=SECURITY_GROUP, description="RDP from anywhere")
        conn.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", protocol="tcp", port_range_min=3389, port_range_max=3389
        )
        self.mark(f"seeded {IMAGE}, {', '.join(FLAVORS)}, {NETWORK}, {SECURITY_GROUP}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        self._wait_until(conn, self._compute_reported, deadline, "nova-compute did not report its resource provider")
        self.mark("nova-compute reported its resources")
        # The hypervisor is listed (and schedulable) once its host is mapped to cell1; the
        # scheduler does that every 10 s, nova-manage at once.
        manage = [self.bin("nova-manage"), "--config-file", str(self.paths.etc / "nova" / "nova.conf")]
        self.step("nova-discover-hosts", [*manage, "cell_v2", "discover_hosts", "--verbose"])
        self._wait_until(conn, lambda c: bool(list(c.compute.hypervisors())), deadline, "no hypervisor listed")
        self.mark("compute host mapped, hypervisor listed")

    def _wait_until(self, conn: Any, check: Callable[[Any], bool], deadline: float, failure: str) -> None:
        while not check(conn):
            self.check_alive(*NOVA_SERVICES)
            if time.monotonic() > deadline:
                raise MiniCloudError(f"{failure} within {READY_TIMEOUT_S:.0f}s", tail(self.log_of("nova-compute")))
            time.sleep(0.3)

    @staticmethod
    def _compute_reported(conn: Any) -> bool:
        """nova-compute is up and its resource provider has inventory in Placement."""
        if not any(s.binary == "nova-compute" and s.state == "up" for s in conn.compute.services()):
            return False
        for provider in conn.placement.resource_providers():
            if any(inv.resource_class == "VCPU" for inv in conn.placement.resource_provider_inventories(provider)):
                return True
        return False


def _write_fernet_keys(repo: Path) -> None:
    repo.mkdir(mode=0o700, parents=True, exist_ok=True)
    for index in (0, 1):
        key = repo / str(index)
        key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        key.chmod(0o600)


# --- shared services --------------------------------------------------------------------


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _rabbitmqctl(args: list[str], check: bool = True) -> None:
    try:
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise MiniCloudError(f"rabbitmqctl {' '.join(args)}: {exc}") from None
        return
    if check and result.returncode != 0:
        raise MiniCloudError(f"rabbitmqctl {' '.join(args)} failed", (result.stdout + result.stderr)[-2000:])


def _private_rabbit_env(paths: Paths, base: dict[str, str]) -> dict[str, str]:
    rmq = paths.rmq
    return {
        **base,
        "RABBITMQ_MNESIA_BASE": str(rmq / "mnesia"),
        "RABBITMQ_LOG_BASE": str(rmq / "log"),
        "RABBITMQ_NODENAME": PRIVATE_RABBIT_NODE,
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(PRIVATE_RABBIT_PORT),
        "RABBITMQ_DIST_PORT": "25673",
        "RABBITMQ_PID_FILE": str(rmq / "rmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(rmq / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(rmq / "rabbitmq"),
        "HOME": str(rmq),
        "ERL_EPMD_ADDRESS": HOST,
    }


def _private_rabbitmqctl(paths: Paths, args: list[str], check: bool = True) -> None:
    env = _private_rabbit_env(paths, dict(os.environ))
    result = subprocess.run(
        ["rabbitmqctl", "-n", PRIVATE_RABBIT_NODE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise MiniCloudError(f"rabbitmqctl {' '.join(args)} failed", result.stderr[-2000:])


DROP_SQL = """
import os, sys, pymysql
conn = pymysql.connect(host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]), user=os.environ["DB_USER"],
                       password=os.environ["DB_PASSWORD"], autocommit=True, connect_timeout=10)
with conn.cursor() as cur:
    for name in sys.argv[3:]:
        cur.execute(f"DROP DATABASE IF EXISTS `{sys.argv[1]}{name}`")
        if sys.argv[2] == "1":
            charset = "utf8mb4" if name == "neutron" else "utf8"
            cur.execute(f"CREATE DATABASE `{sys.argv[1]}{name}` CHARACTER SET {charset}")
"""


def _drop_databases(venv: Path, recreate: bool) -> None:
    """Drop (and recreate) the minicloud's databases on the machine's MariaDB, with the venv's PyMySQL."""
    env = {
        **os.environ,
        "DB_HOST": MYSQL_HOST,
        "DB_PORT": str(MYSQL_PORT),
        "DB_USER": MYSQL_USER,
        "DB_PASSWORD": MYSQL_PASSWORD,
        "PYTHONWARNINGS": "ignore",
    }
    argv = [str(venv / "bin" / "python"), "-c", DROP_SQL, DB_PREFIX, "1" if recreate else "0", *DATABASES]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    if result.returncode != 0:
        raise MiniCloudError(
            f"cannot (re)create the {DB_PREFIX}* databases on MariaDB {MYSQL_HOST}:{MYSQL_PORT} as {MYSQL_USER}",
            result.stderr[-2000:],
        )
