# Stage (c2)+(d): the bootable image: base rootfs + test modules + depmod + virtual.yaml + init,
# as an ext4 file, with the kernel and initrd beside it.
# shellcheck shell=bash
stage_image() {   # ROOTFS_DIR MODULES_DIR KERNEL_VERSION OUT_DIR
  local base=$1 mods=$2 k=$3 out=$4
  local stage="$out.tmp/root"
  safe_rmrf "$out.tmp"; mkdir -p "$out.tmp"
  cp -a "$base" "$stage"
  mkdir -p "$stage/lib/modules/$k/updates/pieyes"
  cp "$mods"/*.ko "$stage/lib/modules/$k/updates/pieyes/"
  chroot "$stage" /sbin/depmod -a "$k" || die "depmod in the guest rootfs failed"
  install -D -m 0644 "$VM_DIR/guest/virtual.yaml" "$stage/usr/share/libcamera/pipeline/virtual/virtual.yaml"
  install -D -m 0755 "$VM_DIR/guest/init.sh" "$stage/sbin/pieyes-init"
  echo pieyes-vm >"$stage/etc/hostname"
  cp "$stage/boot/vmlinuz-$k" "$out.tmp/vmlinuz"
  cp "$stage/boot/initrd.img-$k" "$out.tmp/initrd.img"
  local mb; mb=$(du -sm "$stage" | cut -f1)
  mb=$(( mb + mb / 4 + 256 ))
  mke2fs -q -t ext4 -L pieyes-root -d "$stage" "$out.tmp/rootfs.ext4" "${mb}M" >/dev/null \
    || die "mke2fs of the guest image failed"
  rm -rf "$stage"
  printf 'KERNEL=%s\nIMAGE_MB=%s\n' "$k" "$mb" >"$out.tmp/info"
  mv "$out.tmp" "$out"
}
