#!/usr/bin/env bash
# Make sure PostgreSQL's server programs are on this machine, for the journal tests.
#
# The tests start their own throwaway server (tests/postgres_server.py) from initdb, pg_ctl
# and postgres, found on PATH or in Debian's /usr/lib/postgresql/<version>/bin (or only in
# the folders of $PUTIO_MIRROR_TEST_POSTGRES_BINDIRS, colon-separated, when that is set).
# When they are missing this installs Debian's `postgresql` package, as root, without
# creating or starting the Debian cluster. A machine that has them is left alone.
set -euo pipefail
source "$(dirname "$0")/apt-install.sh"

PROGRAMS=(initdb pg_ctl postgres)
DROP_IN=/etc/postgresql-common/createcluster.d/putio-mirror-no-main-cluster.conf

# Given folders, print the first that holds every program; fail if none does.
first_with_programs() {
    local folder program
    for folder in "$@"; do
        [ -n "$folder" ] || continue
        for program in "${PROGRAMS[@]}"; do
            if [ ! -f "$folder/$program" ] || [ ! -x "$folder/$program" ]; then
                continue 2
            fi
        done
        echo "$folder"
        return 0
    done
    return 1
}

# The same places, in the same order, as tests/postgres_server.py's find_binaries.
debian_folders() {
    local folder
    for folder in /usr/lib/postgresql/*/bin; do
        [ -d "$folder" ] && echo "$folder"
    done | sort -t/ -k5,5nr
}

find_server() {
    local folders
    if [ -n "${PUTIO_MIRROR_TEST_POSTGRES_BINDIRS+set}" ]; then
        IFS=: read -ra folders <<<"$PUTIO_MIRROR_TEST_POSTGRES_BINDIRS"
    else
        IFS=: read -ra folders <<<"$PATH"
        mapfile -t -O "${#folders[@]}" folders < <(debian_folders)
    fi
    first_with_programs "${folders[@]}"
}

install_server() {
    # No cluster of Debian's own: the tests make theirs, and nothing should listen on 5432.
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$(dirname "$DROP_IN")"
        [ -e "$DROP_IN" ] || echo "create_main_cluster = false" >"$DROP_IN"
    fi
    apt_install ensure-postgres postgresql
}

if folder=$(find_server); then
    echo "ensure-postgres: found the PostgreSQL server programs in $folder"
    exit 0
fi
install_server
# Debian's package puts them in its versioned folder, whatever the search was told.
mapfile -t installed < <(debian_folders)
if ! folder=$(first_with_programs "${installed[@]}"); then
    echo "ensure-postgres: the postgresql package installed, but not initdb/pg_ctl/postgres" >&2
    exit 1
fi
echo "ensure-postgres: installed the PostgreSQL server programs in $folder"
