#!/usr/bin/env bash
# Make sure FUSE 3 is on this machine, for the tests of `putio-mirror mount`.
#
# The mount tests make a real mount through libfuse 3 (mfusepy loads libfuse3.so.3) and
# unmount with fusermount3; both come with Debian's `fuse3` package. When fusermount3 is
# missing this installs it, as root. A machine that has it is left alone. /dev/fuse itself
# is the kernel's: without it (some containers) the tests say so (and fail under CI=true).
set -euo pipefail
source "$(dirname "$0")/apt-install.sh"

if command -v fusermount3 >/dev/null 2>&1; then
    echo "ensure-fuse: found $(command -v fusermount3)"
else
    apt_install ensure-fuse fuse3
    command -v fusermount3 >/dev/null 2>&1 || {
        echo "ensure-fuse: the fuse3 package installed, but not fusermount3" >&2
        exit 1
    }
    echo "ensure-fuse: installed $(command -v fusermount3)"
fi
if [ ! -e /dev/fuse ]; then
    echo "ensure-fuse: warning: /dev/fuse is missing; the kernel's FUSE module is not available" >&2
fi
