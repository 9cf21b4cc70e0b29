"""Static checks of the production deployment files.

No Docker engine runs where these tests run, so they read docker-compose.yml,
the Dockerfile and .dockerignore and check them against the repository and the
settings classes: the kind of mistake that otherwise shows up only on a user's
first `docker compose up` (a renamed module, a missing mount source, a setting
nobody reads, a dependency that does not wait).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections import Counter
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from api.settings import ApiSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Services that run deskpool's own code, all loading their settings from DESKPOOL_*.
APP_SERVICES = ("api", "worker", "migrate")
SETTINGS_CLASSES = (ApiSettings, WorkerSettings)

# DESKPOOL_* variables the compose file already passes although no settings
# class has the field yet: the token-signing key and the directory bind password
# are planned, and deployments should be made to provide them from day one.
# When a field lands, remove its name here (test_pending_settings_are_not_yet_fields
# fails until you do), so this list only ever shrinks.
PENDING_SETTINGS = frozenset({"DESKPOOL_LDAP_BIND_PASSWORD"})

# Secrets without which compose must refuse to start: written only as ${VAR:?message}.
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "DESKPOOL_SECRET_KEY", "DESKPOOL_LDAP_BIND_PASSWORD")
SECRET_KEY_NAME = re.compile(r"PASSWORD|PASSWD|PWD|SECRET|TOKEN|(^|_)KEY$")

# Bind-mounted files that the operator creates from an example and never
# commits because they hold credentials: the repository ships the example, so
# the example is what must exist here.
OPERATOR_FILES = {"deploy/clouds.yaml": "deploy/clouds.yaml.example"}

RESTART_POLICIES = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# --- reading the files ----------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


_VARIABLE = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str) -> str:
    """Compose's variable substitution with an empty environment.

    ${VAR:-default} gives the default, a required ${VAR:?msg} gives <VAR>, an
    unset ${VAR} or $VAR gives "", $$ gives $: what compose would see on a host
    that sets only the required variables.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        if op.endswith("?"):
            return f"<{match.group('name')}>"
        return ""

    return _VARIABLE.sub(substitute, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def words(command: Any) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(word) for word in command]


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, source, target) of every volume entry, short or long syntax."""
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            found.append((entry["type"], entry.get("source", ""), entry.get("target", "")))
            continue
        source, _, rest = entry.partition(":")
        target = rest.split(":", 1)[0]
        if not rest:  # "/path" alone: an anonymous volume
            found.append(("volume", "", source))
        elif source.startswith((".", "/", "~")):
            found.append(("bind", source, target))
        else:
            found.append(("volume", source, target))
    return found


def depends_on(service: dict[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition at all
        return {name: None for name in deps}
    return deps


def host_ports(service: dict[str, Any]) -> list[str]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                ports.append(interpolate(str(entry["published"])))
            continue
        parts = interpolate(str(entry)).split("/", 1)[0].rsplit(":", 2)
        if len(parts) >= 2 and parts[-2]:  # [ip:]host:container; a lone port is ephemeral
            ports.append(parts[-2])
    return ports


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def exec_form_or_words(arguments: str) -> list[str]:
    if arguments.startswith("["):
        return [str(word) for word in json.loads(arguments)]
    return shlex.split(arguments)


def settings_env_names() -> set[str]:
    names = set()
    for cls in SETTINGS_CLASSES:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def app_env_names() -> set[str]:
    return {
        name.upper()
        for service in APP_SERVICES
        for name in environment(services()[service])
        if name.upper().startswith("DESKPOOL_")
    }


# --- the compose file ---------------------------------------------------------------


def test_compose_defines_the_app_services() -> None:
    missing = [name for name in APP_SERVICES if name not in services()]
    assert not missing, f"docker-compose.yml has no service {missing}"


def test_every_service_has_an_image_or_a_build_from_the_repo() -> None:
    problems = []
    for name, service in services().items():
        build = service.get("build")
        if build is None:
            if not service.get("image"):
                problems.append(f"{name}: neither image nor build")
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / interpolate(build.get("context", "."))
        dockerfile = context / interpolate(build.get("dockerfile", "Dockerfile"))
        if not context.is_dir():
            problems.append(f"{name}: build context {context} is not a directory")
        elif not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
    assert not problems, "\n".join(problems)


def test_third_party_images_are_pinned() -> None:
    unpinned = []
    for name, service in services().items():
        if "build" in service:
            continue
        image = interpolate(service["image"])
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            unpinned.append(f"{name}: {service['image']}")
    assert not unpinned, f"pin a version tag (not latest): {unpinned}"


def test_app_services_share_one_image() -> None:
    builds = {json.dumps(services()[name].get("build"), sort_keys=True) for name in APP_SERVICES}
    images = {services()[name].get("image") for name in APP_SERVICES}
    assert len(builds) == 1 and len(images) == 1 and None not in images, (
        f"{APP_SERVICES} should build and tag one image, got builds {builds} images {images}"
    )


_PYTHON_MODULE = re.compile(r"\bpython(?:3(?:\.\d+)?)?\s+(?:-[A-Za-z]+\s+)*-m\s+([A-Za-z_][\w.]*)")


def commanded_modules() -> dict[str, str]:
    """Every `python -m X` in the services and the Dockerfile -> where it is."""
    found = {}
    for name, service in services().items():
        for key in ("entrypoint", "command"):
            for module in _PYTHON_MODULE.findall(" ".join(words(service.get(key)))):
                found[module] = f"service {name} {key}"
    for keyword, arguments in dockerfile_instructions():
        if keyword in ("CMD", "ENTRYPOINT"):
            for module in _PYTHON_MODULE.findall(" ".join(exec_form_or_words(arguments))):
                found[module] = f"Dockerfile {keyword}"
    return found


def test_python_m_commands_refer_to_modules_in_the_repo() -> None:
    modules = commanded_modules()
    assert {"api", "worker", "activities.store.migrate"} <= set(modules), modules
    missing = []
    for module, where in modules.items():
        path = ROOT.joinpath(*module.split("."))
        if not ((path / "__main__.py").is_file() or path.with_suffix(".py").is_file()):
            missing.append(f"{where}: python -m {module} (no {module.replace('.', '/')}/__main__.py or .py)")
    assert not missing, "\n".join(missing)


def test_bind_mount_sources_exist() -> None:
    missing = []
    for name, service in services().items():
        for kind, source, _target in mounts(service):
            if kind != "bind":
                continue
            relative = Path(interpolate(source)).as_posix().removeprefix("./")
            # Operator-made secret files are checked through their shipped example.
            expected = OPERATOR_FILES.get(relative, relative)
            if not (ROOT / expected).exists():
                missing.append(f"{name}: {source} (looked for {expected})")
    assert not missing, "bind mount sources missing from the repo:\n" + "\n".join(missing)


def used_named_volumes() -> dict[str, str]:
    return {
        source: name
        for name, service in services().items()
        for kind, source, _target in mounts(service)
        if kind == "volume" and source
    }


def test_named_volumes_used_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    undeclared = {volume: service for volume, service in used_named_volumes().items() if volume not in declared}
    assert not undeclared, f"declare these under top-level volumes: {undeclared}"


def test_declared_volumes_are_used() -> None:
    unused = set(compose().get("volumes") or {}) - set(used_named_volumes())
    assert not unused, f"top-level volumes nothing mounts: {sorted(unused)}"


def test_depends_on_targets_are_services_with_a_condition() -> None:
    problems = []
    for name, service in services().items():
        for target, spec in depends_on(service).items():
            if target not in services():
                problems.append(f"{name} -> {target}: no such service")
            condition = spec.get("condition") if isinstance(spec, dict) else None
            if condition not in DEPENDS_CONDITIONS:
                problems.append(f"{name} -> {target}: condition {condition!r}, want {sorted(DEPENDS_CONDITIONS)}")
    assert not problems, "\n".join(problems)


def test_service_healthy_targets_define_a_healthcheck() -> None:
    problems = []
    for name, service in services().items():
        for target, spec in depends_on(service).items():
            if isinstance(spec, dict) and spec.get("condition") == "service_healthy":
                check = services().get(target, {}).get("healthcheck") or {}
                if not check.get("test") or check.get("disable"):
                    problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
    assert not problems, "\n".join(problems)


def test_completed_successfully_targets_are_one_shot_jobs() -> None:
    problems = []
    for name, service in services().items():
        for target, spec in depends_on(service).items():
            if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully":
                restart = services().get(target, {}).get("restart")
                if restart in ("always", "unless-stopped"):
                    problems.append(f"{name} waits for {target} to complete, but {target} restarts {restart}")
    assert not problems, "\n".join(problems)


def test_every_service_has_a_restart_policy() -> None:
    problems = []
    for name, service in services().items():
        restart = service.get("restart")
        if restart is False:
            problems.append(f'{name}: restart is the YAML boolean false; write "no" in quotes')
        elif not isinstance(restart, str) or not RESTART_POLICIES.match(restart):
            problems.append(f"{name}: restart {restart!r}")
    assert not problems, "\n".join(problems)


def test_deskpool_env_vars_are_settings_fields() -> None:
    known = settings_env_names() | PENDING_SETTINGS
    unknown = sorted(app_env_names() - known)
    assert not unknown, (
        f"{unknown} reach {APP_SERVICES} but no field of {[cls.__name__ for cls in SETTINGS_CLASSES]} reads them "
        "(a typo, a renamed field, or a planned one that belongs in PENDING_SETTINGS)"
    )


def test_pending_settings_are_not_yet_fields() -> None:
    landed = sorted(PENDING_SETTINGS & settings_env_names())
    assert not landed, f"{landed} are settings fields now: remove them from PENDING_SETTINGS"
    unused = sorted(PENDING_SETTINGS - app_env_names())
    assert not unused, f"{unused} are in PENDING_SETTINGS but docker-compose.yml does not pass them"


def test_required_secrets_use_the_required_form() -> None:
    text = COMPOSE_FILE.read_text()
    problems = []
    for secret in REQUIRED_SECRETS:
        references = re.findall(rf"\$\{{{secret}\b[^}}]*\}}|\${secret}\b", text)
        if not references:
            problems.append(f"{secret}: never used")
        required_form = f"${{{secret}:?"
        problems += [
            f"{secret}: {ref} (want {required_form}message}})"
            for ref in references
            if not ref.startswith(required_form)
        ]
    assert not problems, "\n".join(problems)


def test_app_services_receive_the_required_secrets() -> None:
    missing = [
        f"{service}: {secret}"
        for service in ("api", "worker")
        for secret in REQUIRED_SECRETS
        if secret.startswith("DESKPOOL_") and secret not in environment(services()[service])
    ]
    assert not missing, f"not passed: {missing}"


def test_secret_looking_env_values_come_from_required_variables() -> None:
    required_variable = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")
    literal = [
        f"{name}: {key}"
        for name, service in services().items()
        for key, value in environment(service).items()
        if SECRET_KEY_NAME.search(key.upper()) and not required_variable.match(value)
    ]
    assert not literal, f"secrets must be ${{VAR:?message}}, never literal or defaulted: {literal}"


def test_published_host_ports_are_unique() -> None:
    published = Counter(port for service in services().values() for port in host_ports(service))
    clashes = sorted(port for port, count in published.items() if count > 1)
    assert not clashes, f"host ports published more than once: {clashes}"


def test_scaled_services_have_no_fixed_host_port_or_container_name() -> None:
    problems = []
    for name, service in services().items():
        if "replicas" not in (service.get("deploy") or {}):
            continue
        if host_ports(service):
            problems.append(f"{name} has replicas but publishes host ports {host_ports(service)}")
        if "container_name" in service:
            problems.append(f"{name} has replicas but a fixed container_name")
    assert not problems, "\n".join(problems)


def test_setup_scripts_are_valid_posix_sh() -> None:
    scripts = sorted((ROOT / "deploy").rglob("*.sh"))
    assert scripts
    for script in scripts:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script.relative_to(ROOT)}: {result.stderr}"


# --- the Dockerfile and .dockerignore -----------------------------------------------


def dockerignore_patterns() -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def copy_sources() -> list[str]:
    sources = []
    for keyword, arguments in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        parts = [word for word in exec_form_or_words(arguments) if not word.startswith("--")]
        sources += parts[:-1]
    return sources


def test_dockerfile_copy_sources_exist_and_are_not_ignored() -> None:
    sources = copy_sources()
    assert sources
    problems = []
    for source in sources:
        relative = source.removeprefix("./").rstrip("/")
        if not (ROOT / relative).exists():
            problems.append(f"COPY {source}: not in the repo")
        ignored_by = [pattern for pattern in dockerignore_patterns() if fnmatch(relative, pattern)]
        if ignored_by:
            problems.append(f"COPY {source}: excluded from the build context by .dockerignore {ignored_by}")
    assert not problems, "\n".join(problems)


def test_dockerfile_copies_every_package_of_the_project() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {source.removeprefix("./").rstrip("/") for source in copy_sources()}
    missing = sorted(set(packages) - copied)
    assert not missing, f"packages not copied into the image: {missing}"


def test_dockerfile_installs_frozen_from_the_lock() -> None:
    instructions = dockerfile_instructions()
    runs = [(index, arguments) for index, (keyword, arguments) in enumerate(instructions) if keyword == "RUN"]
    syncs = [(index, arguments) for index, arguments in runs if re.search(r"\buv\s+sync\b", arguments)]
    assert syncs, "the Dockerfile never runs `uv sync`"
    for _index, arguments in syncs:
        assert "--frozen" in arguments.split(), f"uv sync without --frozen: {arguments}"
        assert "--no-dev" in arguments.split(), f"uv sync installs dev dependencies: {arguments}"
    pinned_uv = re.compile(r"\buv==\d+\.\d+\.\d+\b")
    assert any(pinned_uv.search(arguments) for _index, arguments in runs), "install a pinned uv==X.Y.Z"

    copies = [
        (index, arguments.split()) for index, (keyword, arguments) in enumerate(instructions) if keyword == "COPY"
    ]
    lock_copied_at = next((index for index, arguments in copies if "uv.lock" in arguments), None)
    assert lock_copied_at is not None, "uv.lock is never copied into the image"
    first_sync, first_arguments = syncs[0]
    assert lock_copied_at < first_sync, "uv.lock must be copied before the first uv sync"
    # Dependencies in their own layer, before the source is copied in.
    assert "--no-install-project" in first_arguments.split(), f"first uv sync installs the project: {first_arguments}"
    source_copied_at = min(
        index for index, arguments in copies if {"api", "worker", "./api", "./worker"} & set(arguments)
    )
    assert first_sync < source_copied_at, "install dependencies before copying the source, for layer caching"


def test_dockerfile_runs_as_non_root() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users, "the Dockerfile never switches to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"final USER is {users[-1]}"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = set(dockerignore_patterns())
    wanted = {".venv", ".git", "data", ".env", "deploy/clouds.yaml"}
    missing = sorted(wanted - patterns)
    assert not missing, f".dockerignore should exclude {missing}"


def test_namespace_job_registers_exactly_the_workflows_search_attributes() -> None:
    """The compose deployment, make run and the tests register one list: workflows.search_attributes."""
    from workflows import search_attributes

    script = (ROOT / "deploy" / "temporal" / "setup-namespace.sh").read_text()
    registered = set(re.findall(r"\b(Deskpool\w+)=(\w+)", script))
    expected = {
        (key.name, key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").title())
        for key in search_attributes.ALL
    }
    assert registered == expected
