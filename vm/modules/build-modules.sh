#!/bin/sh
# Runs INSIDE the build chroot: build-modules.sh KERNEL_VERSION SERIES OUT_DIR
# Builds vimc, vicodec, vim2m and v4l2-mem2mem (and, best effort, visl) for KERNEL_VERSION.
set -eu
K=$1 SERIES=$2 OUT=$3
HDR=/usr/src/linux-headers-$K
if [ ! -d "$HDR" ]; then
  echo "linux-headers-$K not in the chroot: installing it" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$K" >/dev/null \
    || { echo "ERROR: linux-headers-$K is not installable (guest kernel and archive out of step?)" >&2; exit 1; }
fi
TARBALL=$(ls /usr/src/linux-source-"$SERIES".tar.* 2>/dev/null | head -n1)
[ -n "$TARBALL" ] || { echo "ERROR: no /usr/src/linux-source-$SERIES.tar.*" >&2; exit 1; }

W=/tmp/pieyes-mod-build
rm -rf "$W"; mkdir -p "$W/src"
top=linux-source-$SERIES
tar -xf "$TARBALL" -C "$W/src" \
  "$top/drivers/media/test-drivers/vimc" "$top/drivers/media/test-drivers/vicodec" \
  "$top/drivers/media/test-drivers/vim2m.c" "$top/drivers/media/test-drivers/visl" \
  "$top/drivers/media/v4l2-core/v4l2-mem2mem.c"
S=$W/src/$top
M=$W/m
mkdir -p "$M"
cp -r "$S/drivers/media/test-drivers/vimc" "$S/drivers/media/test-drivers/vicodec" \
      "$S/drivers/media/test-drivers/vim2m.c" "$S/drivers/media/v4l2-core/v4l2-mem2mem.c" "$M/"
cp /pieyes-modules/Kbuild "$M/Kbuild"
JOBS=$(nproc)
make -s -C "$HDR" M="$M" -j"$JOBS" CONFIG_VIDEO_VIMC=m CONFIG_VIDEO_VICODEC=m modules

# visl (stateless decoder test driver): optional; its trace header path points into the kernel tree.
V=$W/visl
cp -r "$S/drivers/media/test-drivers/visl" "$V"
sed -i 's|^#define TRACE_INCLUDE_PATH .*|#define TRACE_INCLUDE_PATH .|' "$V"/visl-trace-*.h
printf 'CFLAGS_visl-trace-points.o := -I$(src)\n' >>"$V/Makefile"
if make -s -C "$HDR" M="$V" -j"$JOBS" CONFIG_VIDEO_VISL=m KBUILD_EXTRA_SYMBOLS="$M/Module.symvers" modules \
     >"$W/visl.log" 2>&1; then
  VISL_KO=$(find "$V" -name '*.ko')
else
  echo "warning: visl did not build (optional); tail of its log:" >&2; tail -n 15 "$W/visl.log" >&2
  VISL_KO=
fi

rm -rf "$OUT"/*.ko
# shellcheck disable=SC2086
cp $(find "$M" -name '*.ko') $VISL_KO "$OUT/"
echo "$K" >"$OUT/KERNEL"
ls "$OUT"
rm -rf "$W"
