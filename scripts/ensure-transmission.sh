#!/usr/bin/env bash
# Make sure `transmission-remote` is on this machine, for the RPC tests with a real client.
#
# tests/test_rpc_clients.py drives `putio-mirror serve` with Debian's transmission-remote
# (package transmission-cli). When it is missing this installs that package, as root,
# without starting any daemon. A machine that has the program is left alone.
set -euo pipefail

POLICY=/usr/sbin/policy-rc.d

if program=$(command -v transmission-remote); then
    echo "ensure-transmission: found $program ($("$program" --version 2>&1 | head -n 1))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-transmission: transmission-remote is missing; run this as root" \
        "to install Debian's transmission-cli package" >&2
    exit 1
fi
echo "ensure-transmission: installing Debian's transmission-cli package"
# No service start during the install (a container-style policy, removed afterwards).
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends transmission-cli
program=$(command -v transmission-remote) || {
    echo "ensure-transmission: transmission-cli installed, but no transmission-remote" >&2
    exit 1
}
echo "ensure-transmission: installed $program"
