# Shared by the chroot and rootfs stages (part of both cache keys).
# shellcheck shell=bash
# debootstrap_to DIR CACHE_DEBS INCLUDE_LIST: minbase debootstrap into DIR.tmp, then rename.
debootstrap_to() {
  local dir=$1 debs=$2 include=$3
  safe_rmrf "$dir.tmp"; mkdir -p "$debs"
  # In a private mount namespace so that its /proc and /sys mounts cannot outlive it.
  if ! unshare --mount --propagation private debootstrap --variant=minbase --cache-dir="$debs" --include="$include" \
      "$PIEYES_VM_SUITE" "$dir.tmp" "$PIEYES_VM_MIRROR" >"$dir.debootstrap.log" 2>&1; then
    tail -n 30 "$dir.debootstrap.log" >&2
    [ -f "$dir.tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$dir.tmp/debootstrap/debootstrap.log" >&2
    die "debootstrap of $dir failed (log: $dir.debootstrap.log)"
  fi
  # Same apt tolerance as the host (its clock may be ahead of the archive's Valid-Until).
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    >"$dir.tmp/etc/apt/apt.conf.d/99pieyes-vm"
}
