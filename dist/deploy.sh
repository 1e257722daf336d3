#!/usr/bin/env bash
# Install a pieyes binary and the systemd unit on a Raspberry Pi over ssh.
#     dist/deploy.sh [--dry-run] user@host [BINARY]
# BINARY defaults to the `make aarch64` build. `make deploy PI=user@host` builds, tests and calls
# this. Needs ssh access to the Pi and sudo there (Raspberry Pi OS's first user has it).
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
    echo "deploy: $bin does not exist: build it with make aarch64 (or make cross)" >&2
    exit 1
fi
if [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" != '177ELF' ] ||
    [ "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')" != b700 ]; then
    echo "deploy: $bin is not an aarch64 Linux binary (the Pi needs make aarch64's build)" >&2
    exit 1
fi

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
run scp -q "${ssh_opts[@]}" "$here/pieyes.service" "$here/install.sh" "$pi:$stage/"
# -t when we have a terminal, so sudo can ask for a password.
tty=()
[ -t 0 ] && tty=(-t)
run ssh "${tty[@]}" "${ssh_opts[@]}" "$pi" sudo sh "$stage/install.sh" "$stage"
if [ "$dry" = 1 ]; then
    echo "deploy: dry run, nothing was copied or changed on $pi"
else
    echo "deploy: done. Viewer: http://${pi#*@}:8000/   Log: ssh $pi journalctl -u pieyes -f"
fi
