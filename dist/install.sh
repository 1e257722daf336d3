#!/bin/sh
# Install pieyes on this machine (a Raspberry Pi) as a systemd service. Run as root from a
# directory holding `pieyes` (the aarch64 binary), `pieyes-start` and `pieyes.service`:
#     sudo sh install.sh [DIR]
# `make deploy PI=user@host` copies the four files to the Pi and runs this for you.
#
# Creates the system user `pieyes` if missing, installs /usr/local/bin/pieyes (atomically, so a
# running copy is replaced cleanly) and /etc/systemd/system/pieyes.service, then reloads systemd,
# enables the service and (re)starts it. The user who ran sudo joins group pieyes to be allowed
# to steer through /run/pieyes/pieyes.sock.
set -eu

dir=${1:-$(dirname "$0")}
BINDIR=${BINDIR:-/usr/local/bin}
UNITDIR=${UNITDIR:-/etc/systemd/system}

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo sh $0)" >&2
    exit 1
fi
for f in pieyes pieyes-start pieyes.service; do
    [ -f "$dir/$f" ] || { echo "install.sh: $dir/$f is missing" >&2; exit 1; }
done

if ! id -u pieyes >/dev/null 2>&1; then
    echo "creating system user pieyes"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "pieyes camera daemon" pieyes
fi
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && id -u "$SUDO_USER" >/dev/null 2>&1; then
    usermod -a -G pieyes "$SUDO_USER"
fi

# Refuse a binary whose libraries (libcamera.so.MAJOR.MINOR) this system does not have.
sh "$dir/pieyes-start" --check "$dir/pieyes" || exit 1
install -m 0755 "$dir/pieyes" "$BINDIR/pieyes.new"
mv -f "$BINDIR/pieyes.new" "$BINDIR/pieyes"
install -m 0755 "$dir/pieyes-start" "$BINDIR/pieyes-start"
install -m 0644 "$dir/pieyes.service" "$UNITDIR/pieyes.service"
echo "installed $("$BINDIR/pieyes" --version) to $BINDIR/pieyes"

systemctl daemon-reload
systemctl enable pieyes.service
# Type=notify: this returns once the daemon has said READY=1, or fails if it could not start.
if ! systemctl restart pieyes.service; then
    systemctl --no-pager --full status pieyes.service || true
    journalctl --no-pager -u pieyes.service -n 30 || true
    echo "install.sh: pieyes.service did not start (see above)" >&2
    exit 1
fi
systemctl --no-pager status pieyes.service | head -n 12 || true
