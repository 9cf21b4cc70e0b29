#!/usr/bin/env bash
# Installs the browser the portal's tests drive: Debian's Chromium (Playwright for Python
# launches /usr/bin/chromium; it never downloads a browser of its own).
# Idempotent: does nothing when /usr/bin/chromium is present; runs `apt-get update`
# only when the package cannot be installed from the current lists.
# Needs root (CI is) or sudo.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

echo "installing chromium" >&2
# A fresh image has no package lists (or stale ones): on failure update once and try again.
if ! install 2>/dev/null; then
    $SUDO apt-get update -qq
    install
fi
