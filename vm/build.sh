#!/usr/bin/env bash
# Builds (idempotently) and caches the pieyes test VM. See vm/NOTES.md.
#   vm/build.sh                 build whatever is missing, print the image dir
#   vm/build.sh --chroot-only   only the trixie build chroot (used by cargo-trixie.sh)
#   vm/build.sh --libcamera-only   the chroot and backports' libcamera beside it (stages/libcamera.sh):
#                               prints that directory
#   vm/build.sh --print         print the current image dir without building (fails if none)
# Cache: ${PIEYES_VM_CACHE:-$HOME/.cache/pieyes-vm}; PIEYES_VM_KEEP_OLD=1 keeps superseded entries.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
for s in debootstrap chroot rootfs modules image libcamera; do . "$VM_DIR/stages/$s.sh"; done

mode=all
case "${1:-}" in
  "") ;;
  --chroot-only) mode=chroot ;;
  --libcamera-only) mode=libcamera ;;
  --print) [ -e "$CACHE/current/rootfs.ext4" ] || die "no image built yet (run vm/build.sh)"
           readlink -f "$CACHE/current"; exit 0 ;;
  -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

need_root
need_host_pkgs debootstrap:debootstrap mke2fs:e2fsprogs debugfs:e2fsprogs unshare:util-linux \
  qemu-system-x86_64:qemu-system-x86 flock:util-linux
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

T0=$(now)
ENV_ID="$PIEYES_VM_SUITE $PIEYES_VM_MIRROR $PIEYES_VM_LINUX_SERIES"
KEY_CHROOT=$(key_of "chroot $ENV_ID" "$VM_DIR/stages/chroot.sh" "$VM_DIR/stages/debootstrap.sh")
KEY_ROOTFS=$(key_of "rootfs $ENV_ID" "$VM_DIR/stages/rootfs.sh" "$VM_DIR/stages/debootstrap.sh")
CHROOT=$CACHE/chroot-$KEY_CHROOT
ROOTFS=$CACHE/rootfs-$KEY_ROOTFS

# Stage a (build chroot) and stage c1 (guest debootstrap) are independent: run them in parallel.
pids=()
if [ ! -d "$CHROOT" ]; then
  log "build chroot: building $CHROOT"
  ( t=$(now); stage_chroot "$CHROOT"; log "build chroot: done in $(since "$t")" ) & pids+=($!)
else log "build chroot: cached ($CHROOT)"; fi
if [ "$mode" = all ] && [ ! -d "$ROOTFS" ]; then
  log "guest rootfs: debootstrap into $ROOTFS"
  ( t=$(now); stage_rootfs "$ROOTFS"; log "guest rootfs: done in $(since "$t")" ) & pids+=($!)
elif [ "$mode" = all ]; then log "guest rootfs: cached ($ROOTFS)"; fi
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail = 0 ] || die "a debootstrap stage failed (see above)"
ln -sfn "$(basename "$CHROOT")" "$CACHE/chroot"

if [ "$mode" = chroot ]; then log "total $(since "$T0")"; echo "$CHROOT"; exit 0; fi

KEY_LIBCAMERA=$(key_of "libcamera $ENV_ID $KEY_CHROOT" "$VM_DIR/stages/libcamera.sh")
LIBCAMERA=$CACHE/libcamera-$KEY_LIBCAMERA
if [ ! -d "$LIBCAMERA" ]; then
  log "libcamera from $PIEYES_VM_SUITE-backports: fetching into $LIBCAMERA"
  t=$(now); stage_libcamera "$CHROOT" "$LIBCAMERA"; log "libcamera $(cat "$LIBCAMERA/version"): done in $(since "$t")"
else log "libcamera $(cat "$LIBCAMERA/version"): cached ($LIBCAMERA)"; fi
ln -sfn "$(basename "$LIBCAMERA")" "$CACHE/libcamera-backports"
if [ "$mode" = libcamera ]; then log "total $(since "$T0")"; echo "$LIBCAMERA"; exit 0; fi

K=$(guest_kernel_version "$ROOTFS")
KEY_MODULES=$(key_of "modules $ENV_ID $KEY_CHROOT $K" "$VM_DIR/stages/modules.sh" \
  "$VM_DIR/modules/Kbuild" "$VM_DIR/modules/build-modules.sh")
MODULES=$CACHE/modules-$KEY_MODULES
if [ ! -d "$MODULES" ]; then
  log "modules: building for $K"
  t=$(now); stage_modules "$CHROOT" "$K" "$MODULES"; log "modules: done in $(since "$t") ($(cd "$MODULES" && echo *.ko))"
else log "modules: cached ($MODULES)"; fi

KEY_IMAGE=$(key_of "image $KEY_ROOTFS $KEY_MODULES $K" "$VM_DIR/stages/image.sh" \
  "$VM_DIR/guest/init.sh" "$VM_DIR/guest/virtual.yaml")
IMAGE=$CACHE/image-$KEY_IMAGE
if [ ! -d "$IMAGE" ]; then
  log "image: assembling $IMAGE"
  t=$(now); stage_image "$ROOTFS" "$MODULES" "$K" "$IMAGE"; log "image: done in $(since "$t")"
else log "image: cached ($IMAGE)"; fi
ln -sfn "$(basename "$IMAGE")" "$CACHE/current"

if [ "${PIEYES_VM_KEEP_OLD:-0}" != 1 ]; then
  for d in "$CACHE"/chroot-* "$CACHE"/rootfs-* "$CACHE"/modules-* "$CACHE"/image-* "$CACHE"/libcamera-????????????????*; do
    [ -e "$d" ] || continue
    case "$d" in "$CHROOT"*|"$ROOTFS"*|"$MODULES"*|"$IMAGE"*|"$LIBCAMERA"*) continue ;; esac
    log "pruning superseded $d"; safe_rmrf "$d"
  done
fi
log "kernel $K; keys chroot=$KEY_CHROOT rootfs=$KEY_ROOTFS modules=$KEY_MODULES image=$KEY_IMAGE libcamera=$KEY_LIBCAMERA"
log "total $(since "$T0")"
echo "$IMAGE"
