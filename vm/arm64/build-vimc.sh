#!/bin/sh
# Runs INSIDE vm/'s trixie build chroot: build-vimc.sh KERNEL_VERSION SERIES OUT_DIR
# Cross-builds vimc for Debian's arm64 kernel KERNEL_VERSION from the chroot's linux-source-SERIES,
# against that kernel's headers (bind-mounted at /usr/src, with the amd64 kbuild tools at
# /usr/lib/linux-kbuild-*). The headers' .kernelvariables set ARCH=arm64 and
# CC=aarch64-linux-gnu-gcc-14, the compiler Debian built the kernel with.
set -eu
K=$1 SERIES=$2 OUT=$3
HDR=/usr/src/linux-headers-$K
[ -f "$HDR/Makefile" ] || { echo "ERROR: no $HDR" >&2; exit 1; }
if ! command -v aarch64-linux-gnu-gcc-14 >/dev/null; then
  echo "installing gcc-14-aarch64-linux-gnu in the chroot (the arm64 kernel's compiler)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-14-aarch64-linux-gnu >/dev/null
fi
TARBALL=$(find /usr/src -maxdepth 1 -name "linux-source-$SERIES.tar.*" | head -n1)
[ -n "$TARBALL" ] || { echo "ERROR: no /usr/src/linux-source-$SERIES.tar.*" >&2; exit 1; }
W=/tmp/pieyes-vimc-arm64
rm -rf "$W"; mkdir -p "$W"
tar -xf "$TARBALL" -C "$W" "linux-source-$SERIES/drivers/media/test-drivers/vimc"
M=$W/linux-source-$SERIES/drivers/media/test-drivers/vimc
make -s -C "$HDR" M="$M" -j"$(nproc)" CONFIG_VIDEO_VIMC=m modules
rm -f "$OUT"/*.ko
cp "$M/vimc.ko" "$OUT/"
echo "$K" >"$OUT/KERNEL"
ls -l "$OUT"
rm -rf "$W"
