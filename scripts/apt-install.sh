# Sourced by the ensure-*.sh scripts: install Debian packages for the tests' real seams.
#
# apt_install TAG PACKAGE... installs the packages as root, non-interactively, without
# starting any service (a container-style policy-rc.d, removed afterwards), or says what is
# missing and fails when not root. TAG names the calling script in its messages.

apt_install() {
    local tag=$1
    shift
    if [ "$(id -u)" != 0 ]; then
        echo "$tag: $* missing; run this as root to install Debian's package" >&2
        exit 1
    fi
    echo "$tag: installing Debian's $* package"
    local policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
