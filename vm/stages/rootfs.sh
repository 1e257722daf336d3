# Stage (c1): the guest's base root filesystem (debootstrap only; modules and config come later).
# shellcheck shell=bash
ROOTFS_INCLUDE=linux-image-amd64,initramfs-tools,udev,kmod,busybox,libcamera-tools,libcamera-ipa,v4l-utils

stage_rootfs() {   # OUT_DIR
  local out=$1
  debootstrap_to "$out" "$CACHE/debs/rootfs" "$ROOTFS_INCLUDE"
  printf 'deb %s %s main\n' "$PIEYES_VM_MIRROR" "$PIEYES_VM_SUITE" >"$out.tmp/etc/apt/sources.list"
  rm -rf "$out.tmp"/var/cache/apt/archives/*.deb "$out.tmp"/var/lib/apt/lists/* \
         "$out.tmp"/usr/share/doc/* "$out.tmp"/usr/share/man/* "$out.tmp"/usr/share/locale/*
  ls "$out.tmp"/boot/vmlinuz-* >/dev/null 2>&1 || die "no kernel in the guest rootfs"
  ls "$out.tmp"/boot/initrd.img-* >/dev/null 2>&1 || die "no initrd in the guest rootfs"
  mv "$out.tmp" "$out"
}

# guest_kernel_version ROOTFS_DIR -> e.g. 6.12.57+deb13-amd64
guest_kernel_version() {
  local v; v=$(cd "$1/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n1)
  [ -n "$v" ] || die "no vmlinuz-* in $1/boot"
  printf '%s\n' "$v"
}
