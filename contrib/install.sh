#!/bin/sh
# Install putio-mirror as a Linux system service: a service user, /etc/putio-mirror,
# /srv/putio, and the systemd units pointed at the putio-mirror this machine has.
# Run as root after installing the program (contrib/README.md, step 1):
#   sudo sh contrib/install.sh
# Settings, from the environment:
#   BIN=/path/to/putio-mirror   the program the units run (default: `command -v putio-mirror`)
#   MEDIA_ROOT=/srv/putio       where the blackhole and download folders are made
#   SERVICE_USER=putio-mirror   the user the service runs as (made if missing)
#   DESTDIR=/some/root          install under this root instead of /, and leave users,
#                               owners and systemd alone (packagers, tests)
# Never replaces an existing config. Run it again to update the units.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
BIN=${BIN:-$(command -v putio-mirror || true)}
MEDIA_ROOT=${MEDIA_ROOT:-/srv/putio}
SERVICE_USER=${SERVICE_USER:-putio-mirror}
STATE_DIR=/var/lib/putio-mirror
CONFIG_DIR=/etc/putio-mirror
CONFIG=$CONFIG_DIR/mirror.yaml

fail() {
    echo "install.sh: $1" >&2
    exit 2
}

[ -n "$BIN" ] || fail "putio-mirror is not on PATH; install it first (contrib/README.md, step 1), or set BIN"
case $BIN in
    /*) ;;
    *) fail "BIN must be an absolute path, not $BIN" ;;
esac
[ -x "$BIN" ] || fail "$BIN is not an executable file"
case $BIN in
    /root/* | /home/*)
        fail "$BIN is in a home folder, which the service user cannot run (and the units hide);
install it for the whole machine: sudo PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install ."
        ;;
esac
"$BIN" --version >/dev/null || fail "$BIN --version failed"

# as_root CMD...: only on a real install (under DESTDIR, users and owners are left alone)
as_root() {
    if [ -z "$DESTDIR" ]; then "$@"; fi
}

if [ -z "$DESTDIR" ] && ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi

install -d -m 0700 "$DESTDIR$CONFIG_DIR"
if [ ! -e "$DESTDIR$CONFIG" ]; then
    # The documented example, with absolute paths: the units and `sudo -u putio-mirror
    # putio-mirror --config /etc/putio-mirror/mirror.yaml ...` in a login shell then use the
    # same journal, token and folders whatever their environment says.
    "$BIN" config init --path "$DESTDIR$CONFIG"
    sed -i \
        -e "s|^  token_file: null|  token_file: $CONFIG_DIR/token|" \
        -e "s|^  blackhole: ~/putio/blackhole|  blackhole: $MEDIA_ROOT/blackhole|" \
        -e "s|^  downloads: ~/putio/downloads|  downloads: $MEDIA_ROOT/downloads|" \
        -e "s|^  journal: null|  journal: $STATE_DIR/journal.sqlite3|" \
        "$DESTDIR$CONFIG"
fi
as_root chown -R "$SERVICE_USER:" "$CONFIG_DIR"

install -d -m 0755 "$DESTDIR$MEDIA_ROOT"
install -d -m 0775 "$DESTDIR$MEDIA_ROOT/blackhole" "$DESTDIR$MEDIA_ROOT/downloads"
install -d -m 0750 "$DESTDIR$STATE_DIR"
as_root chown "$SERVICE_USER:" "$MEDIA_ROOT/blackhole" "$MEDIA_ROOT/downloads" "$STATE_DIR"

units=$DESTDIR/etc/systemd/system
install -d -m 0755 "$units"
for unit in "$here"/systemd/*.service "$here"/systemd/*.timer; do
    sed -e "s|/usr/local/bin/putio-mirror|$BIN|g" \
        -e "s|/srv/putio|$MEDIA_ROOT|g" \
        -e "s|^User=putio-mirror|User=$SERVICE_USER|" \
        -e "s|^Group=putio-mirror|Group=$SERVICE_USER|" \
        "$unit" >"$units/$(basename "$unit")"
    chmod 0644 "$units/$(basename "$unit")"
done
as_root systemctl daemon-reload

cat <<NEXT
Installed. The units run $BIN with --config $CONFIG.
Next:
  1. edit $CONFIG (schedule.windows, putio.oauth_app_id, ...)
  2. sudo -u $SERVICE_USER $BIN --config $CONFIG login
  3. sudo -u $SERVICE_USER $BIN --config $CONFIG doctor
  4. sudo systemctl enable --now putio-mirror.timer   (or putio-mirror-watch.service)
NEXT
