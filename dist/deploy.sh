#!/usr/bin/env bash
# Install a pieyes binary and the systemd unit on a Raspberry Pi over ssh.
#     dist/deploy.sh [--dry-run] user@host [BINARY]
# BINARY defaults to the `make aarch64` build. `make deploy PI=user@host` builds it against that
# Pi's own libcamera (dist/sysroot.sh copies its headers and libraries), tests it and calls this.
# Refused: a binary that is not aarch64, one without the libcamera backend, and one whose
# libraries the Pi does not have (dist/pieyes-start --check, run there). Needs ssh access to the
# Pi and sudo there (Raspberry Pi OS's first user has it).
# SSH_OPTS is passed to both ssh and scp: use -o options (e.g. SSH_OPTS='-o Port=2222 -i key').
# --dry-run prints every remote command instead of running it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dry=0
if [ "${1:-}" = --dry-run ] || [ "${1:-}" = -n ]; then
    dry=1
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
    echo "usage: $0 [--dry-run] user@host [BINARY]" >&2
    exit 2
fi
pi=$1
bin=${2:-$here/../target/aarch64-unknown-linux-gnu/release/pieyes}
read -r -a ssh_opts <<<"${SSH_OPTS:-}"

# The Pi runs 64-bit Raspberry Pi OS: refuse to copy anything but an aarch64 ELF executable
# (e_machine 0xb7 at byte 18), e.g. the x86 build from `make run`.
if [ ! -f "$bin" ]; then
    echo "deploy: $bin does not exist: build it with make aarch64 (make deploy does)" >&2
    exit 1
fi
if [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" != '177ELF' ] ||
    [ "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')" != b700 ]; then
    echo "deploy: $bin is not an aarch64 Linux binary (the Pi needs make aarch64's build)" >&2
    exit 1
fi
# Without the libcamera backend the Pi would show the synthetic scene: refuse a binary that does
# not link libcamera (its dynamic section's NEEDED entries; the backend is behind a cargo feature).
needed=$(LC_ALL=C readelf -d "$bin" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p') || true
libcamera=$(printf '%s\n' "$needed" | grep -E '^libcamera\.so\.' || true)
if [ -z "$libcamera" ]; then
    echo "deploy: $bin has no libcamera backend (it does not link libcamera.so): build it with" \
        "make deploy PI=user@host (or make aarch64), which build --features libcamera" >&2
    exit 1
fi
echo "deploy: $bin links $libcamera"

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    [ "$dry" = 1 ] || "$@"
}

# A private staging directory on the Pi, removed whatever happens.
if [ "$dry" = 1 ]; then
    stage=/tmp/pieyes-deploy.XXXXXX
    run ssh "${ssh_opts[@]}" "$pi" mktemp -d /tmp/pieyes-deploy.XXXXXX
else
    stage=$(ssh "${ssh_opts[@]}" "$pi" mktemp -d /tmp/pieyes-deploy.XXXXXX)
    [[ $stage == /tmp/pieyes-deploy.* ]] || { echo "deploy: unexpected staging dir ${stage@Q}" >&2; exit 1; }
    trap 'ssh "${ssh_opts[@]}" "$pi" rm -rf "$stage" || true' EXIT
fi
# Copy under the names install.sh expects.
run scp -q "${ssh_opts[@]}" "$bin" "$pi:$stage/pieyes"
run scp -q "${ssh_opts[@]}" "$here/pieyes.service" "$here/install.sh" "$here/pieyes-start" "$pi:$stage/"
# The Pi's loader must find every library the binary was linked against: a binary built against
# another libcamera (another sysroot, or the Pi upgraded since) is refused before anything is
# installed. install.sh checks again; dist/pieyes-start checks at every service start.
run ssh "${ssh_opts[@]}" "$pi" sh "$stage/pieyes-start" --check "$stage/pieyes"
# -t when we have a terminal, so sudo can ask for a password.
tty=()
[ -t 0 ] && tty=(-t)
run ssh "${tty[@]}" "${ssh_opts[@]}" "$pi" sudo sh "$stage/install.sh" "$stage"
if [ "$dry" = 1 ]; then
    echo "deploy: dry run, nothing was copied or changed on $pi"
else
    echo "deploy: done. Viewer: http://${pi#*@}:8000/   Log: ssh $pi journalctl -u pieyes -f"
fi
