# Stage (a): the trixie build chroot. Its cache key covers this file and config.env.
# shellcheck shell=bash
CHROOT_PACKAGES=(
  # kernel modules
  linux-headers-amd64 "linux-source-$PIEYES_VM_LINUX_SERIES" gcc make xz-utils kmod bc
  # libcamera crate: pkg-config libcamera, bindgen (libclang), C++17 for its shim
  libcamera-dev pkg-config clang libclang-dev g++
  # openh264 crate (feature source): without nasm it silently builds plain C, ~2x slower
  nasm
  # a Rust toolchain of its own (rustc 1.85); cargo-trixie.sh may use the host's instead
  rustc cargo
  ca-certificates git
)

stage_chroot() {   # OUT_DIR
  local out=$1
  debootstrap_to "$out" "$CACHE/debs/chroot" ca-certificates
  printf 'deb %s %s main\n' "$PIEYES_VM_MIRROR" "$PIEYES_VM_SUITE" >"$out.tmp/etc/apt/sources.list"
  in_chroot "$out.tmp" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$@" >/var/log/pieyes-apt.log 2>&1 \
      || { tail -n 40 /var/log/pieyes-apt.log; exit 1; }; apt-get clean' sh "${CHROOT_PACKAGES[@]}" \
    || die "installing build packages in the chroot failed"
  mv "$out.tmp" "$out"
}
