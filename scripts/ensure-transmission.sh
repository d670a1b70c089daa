#!/usr/bin/env bash
# Make sure `transmission-remote` is on this machine, for the RPC tests with a real client.
#
# tests/test_rpc_clients.py drives `putio-mirror serve` with Debian's transmission-remote
# (package transmission-cli). When it is missing this installs that package, as root,
# without starting any daemon. A machine that has the program is left alone.
set -euo pipefail
source "$(dirname "$0")/apt-install.sh"

if program=$(command -v transmission-remote); then
    echo "ensure-transmission: found $program ($("$program" --version 2>&1 | head -n 1))"
    exit 0
fi
apt_install ensure-transmission transmission-cli
program=$(command -v transmission-remote) || {
    echo "ensure-transmission: transmission-cli installed, but no transmission-remote" >&2
    exit 1
}
echo "ensure-transmission: installed $program"
