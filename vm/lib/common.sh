# Sourced by vm/*.sh. Paths, logging, cache keys and a self-cleaning chroot runner.
# shellcheck shell=bash
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../config.env
. "$VM_DIR/config.env"
CACHE=${PIEYES_VM_CACHE:-$HOME/.cache/pieyes-vm}

log()  { printf '[pieyes-vm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[pieyes-vm] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mknod need it)"
}

# Install missing host tools with apt-get: need_host_pkgs CMD:PKG ...
need_host_pkgs() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing host packages: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "could not install host packages: ${missing[*]}"
  fi
}

# key_of STRING FILE... -> 16 hex chars over the string and the files' names + contents.
key_of() {
  local s=$1; shift
  { printf '%s\n' "$s"; for f in "$@"; do printf '== %s\n' "${f#"$VM_DIR"/}"; cat "$f"; done; } \
    | sha256sum | cut -c1-16
}

# Seconds since epoch with decimals, and a pretty duration.
now() { date +%s.%N; }
# The first line of a guest console ($1) that shows its kernel crashed, if any (exit 1 if none).
kernel_crash_line() { grep -aE -m1 'Kernel panic|Oops' "$1" | tr -s ' ' | cut -c1-120; [ "${PIPESTATUS[0]}" = 0 ]; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

# in_chroot ROOT [BIND_SRC:BIND_DST[:ro]]... -- CMD...
# Runs CMD in ROOT inside a private mount namespace: /proc, /sys, /dev, /dev/pts and the binds
# vanish when the command ends, even if it is killed. Network comes from the host.
in_chroot() {
  local root=$1; shift
  local binds=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do binds+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  [ -d "$root" ] || die "no chroot at $root"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  local script='set -e
root=$1; shift; nb=$1; shift
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
i=0
while [ $i -lt $nb ]; do
  spec=$1; shift; i=$((i+1))
  src=${spec%%:*}; rest=${spec#*:}; dst=${rest%%:*}; opt=${rest#"$dst"}
  if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "$(dirname "$root$dst")"; [ -e "$root$dst" ] || : >"$root$dst"; fi
  mount --bind "$src" "$root$dst"
  [ "$opt" = ":ro" ] && mount -o remount,bind,ro "$root$dst"
done
exec chroot "$root" "$@"'
  unshare --mount --propagation private -- /bin/sh -c "$script" sh "$root" "${#binds[@]}" "${binds[@]}" \
    /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# safe_rmrf DIR: lazily unmount anything still mounted below DIR (a killed debootstrap), then rm -rf.
safe_rmrf() {
  local d=$1
  [ -e "$d" ] || return 0
  awk -v p="$d/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$d"
}
