# Stage (b): out-of-tree vimc, vicodec, vim2m, v4l2-mem2mem (+ visl) for the guest's kernel.
# shellcheck shell=bash
stage_modules() {   # CHROOT_DIR KERNEL_VERSION OUT_DIR
  local chroot=$1 k=$2 out=$3
  safe_rmrf "$out.tmp"; mkdir -p "$out.tmp"
  in_chroot "$chroot" "$VM_DIR/modules:/pieyes-modules:ro" "$out.tmp:/out" -- \
    /pieyes-modules/build-modules.sh "$k" "$PIEYES_VM_LINUX_SERIES" /out >"$out.log" 2>&1 \
    || { tail -n 40 "$out.log" >&2; die "module build failed (log: $out.log)"; }
  for m in vimc vicodec vim2m v4l2-mem2mem; do
    [ -f "$out.tmp/$m.ko" ] || die "module $m.ko missing after build (log: $out.log)"
  done
  mv "$out.tmp" "$out"
}
