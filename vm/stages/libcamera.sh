# Stage (e): a second libcamera beside trixie's 0.4, from trixie-backports (0.7 today), unpacked
# into a directory of its own, not installed: the chroot builds pieyes against it a second time
# (vm/cargo-trixie.sh with PIEYES_VM_LIBCAMERA=backports) and the guest runs that binary with the
# directory on its library and IPA paths (vm/tests/11-libcamera-backports.sh). Raspberry Pi OS
# trixie ships 0.7, and libcamera's minors are not ABI-compatible: this is the version a Pi runs.
# Its cache key covers this file, the chroot's key and config.env. The archive is not pinned: the
# version is whatever trixie-backports had when the stage was built (in $OUT/version).
# shellcheck shell=bash

stage_libcamera() {   # CHROOT_DIR OUT_DIR
  local chroot=$1 out=$2
  safe_rmrf "$out.tmp"; mkdir -p "$out.tmp/debs" "$out.tmp/root"
  # A private apt (its own source list and lists) inside the chroot resolves and downloads the
  # .debs; `pkg/trixie-backports` takes backports' version over trixie's.
  in_chroot "$chroot" "$out.tmp:/out" -- sh -c '
    set -e
    mirror=$1 suite=$2; shift 2
    mkdir -p /tmp/lc-apt/lists/partial
    printf "deb %s %s main\ndeb %s %s-backports main\n" "$mirror" "$suite" "$mirror" "$suite" >/tmp/lc-apt/sources.list
    set -- -o Dir::Etc::SourceList=/tmp/lc-apt/sources.list -o Dir::Etc::SourceParts=/nonexistent \
      -o Dir::State::Lists=/tmp/lc-apt/lists -o Debug::NoLocking=1 "$@"
    apt-get "$@" update -qq
    dev=$(apt-cache "$@" show "libcamera-dev/$suite-backports" | sed -n "s/^Depends: .*\(libcamera0\.[0-9]*\).*/\1/p" | head -n 1)
    [ -n "$dev" ] || { echo "no libcamera-dev in $suite-backports"; exit 1; }
    cd /out/debs
    pkgs=""
    for p in libcamera-dev libcamera-ipa "$dev"; do pkgs="$pkgs $p/$suite-backports"; done
    # With what libcamera0.7 links that trixie'"'"'s 0.4 did not: EGL and GLES, for its software ISP
    # (loaded, never used with vimc and virtual cameras).
    apt-get "$@" download $pkgs libegl1 libgles2 libglvnd0
    for d in *.deb; do dpkg-deb -x "$d" /out/root; done
    dpkg-deb -f libcamera-dev_*.deb Version >/out/version
  ' sh "$PIEYES_VM_MIRROR" "$PIEYES_VM_SUITE" >"$out.log" 2>&1 \
    || { tail -n 30 "$out.log" >&2; die "fetching libcamera from $PIEYES_VM_SUITE-backports failed (log: $out.log)"; }
  # The chroot mounts this directory at /overlay: its pkg-config files say so, so that a build
  # finds these headers and libraries, not trixie's 0.4 (PKG_CONFIG_PATH puts them first).
  sed -i 's#=/usr#=/overlay/usr#' "$out.tmp"/root/usr/lib/*/pkgconfig/libcamera*.pc
  grep -q '^prefix=/overlay/usr' "$out.tmp"/root/usr/lib/*/pkgconfig/libcamera.pc \
    || die "unexpected libcamera.pc in the backports package (no prefix=/usr line)"
  rm -rf "$out.tmp/debs"
  mv "$out.tmp" "$out"
}
