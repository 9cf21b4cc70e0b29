# Two commands do all the set-up on a fresh machine with only python3:
#   make run    the whole product on embedded defaults
#   make test   the whole suite (lint, types, tests), non-zero on any failure
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# uv uses this machine's python3 and never downloads an interpreter.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1

.PHONY: install run test lint format typecheck clean directory-servers bench bench-quick browser chaos

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

# Exactly what uv.lock pins, so a fresh machine installs what CI tested.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m tools.run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The tests start real servers: Debian's slapd and Samba AD DC (installed here with apt);
# the portal's tests drive Debian's Chromium (apt too; Playwright never downloads a browser).
test: lint directory-servers browser
	$(PY) -m pytest

# Chaos scenarios C1..C6 on real processes, invariants checked after each (docs/reliability.md);
# writes bench/results/chaos.json. The short versions run inside make test (tests/chaos).
chaos: install directory-servers
	$(PY) -m bench.chaos

# The performance suite on real processes (docs/benchmarks.md): writes bench/results/latest.json
# and regenerates docs/benchmarks.md. bench-quick: reduced sizes, bench/results/quick.json only.
bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

clean:
	rm -rf .venv .uv data .pytest_cache .mypy_cache .ruff_cache

directory-servers:
	bash tools/directory_servers/install.sh

browser:
	bash tools/browser/install.sh

minicloud: install
	$(PY) -m tools.minicloud up
