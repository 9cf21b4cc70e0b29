#!/usr/bin/env bash
# Installs the real directory servers the directory tests run against:
# Debian's OpenLDAP (slapd, ldap-utils) and a Samba AD DC (samba, samba-ad-dc,
# samba-ad-provision), and openssl.
# Idempotent: does nothing when every package is present; runs `apt-get update`
# only when a package is missing and cannot be installed from the current lists.
# Needs root (CI is) or sudo.
set -euo pipefail

# samba-ad-provision is only Recommended by samba-ad-dc, but provisioning needs its files;
# openssl makes the test slapd's certificate.
PACKAGES=(slapd ldap-utils samba samba-ad-dc samba-ad-provision openssl)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# The tests start their own throwaway servers; the packages' own services must
# not start (slapd or samba on the machine's port 389 would take the port the
# AD fixture needs). invoke-rc.d honours policy-rc.d; add one only for this run.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi

install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

echo "installing ${missing[*]}" >&2
# Try with the package lists as they are; a fresh image has none (or stale ones,
# which apt-cache may still answer from its binary cache), so on failure update once.
if ! install 2>/dev/null; then
    $SUDO apt-get update -qq
    install
fi
