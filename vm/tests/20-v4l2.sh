#!/bin/sh
# Guest side of the V4L2 encoder test (runs in the trixie VM as root; see vm/test-v4l2.sh).
# The real src/encoder/v4l2.rs, through `pieyes selftest`, against the kernel's vicodec (a
# stateful V4L2 M2M FWHT encoder, the same API as the Pi 4's bcm2835-codec H.264 encoder):
# dma-bufs from /dev/dma_heap/system imported zero-copy, memfds through the mmap fallback, a
# driver refusing an import, single- and multi-planar queues; then the software encoder reading
# dma-bufs in place, and what `--encoder auto|v4l2` decide on a machine without H.264 hardware.
# One PASS/FAIL line per check (details indented below it, logs in $RESULTS_DIR/v4l2-*.txt);
# exit status 1 if any failed. The binary: $PIEYES_BIN, else ./pieyes next to this script.
R=${RESULTS_DIR:-/tmp}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${PIEYES_BIN:-$HERE/pieyes}
pass=0 fail=0
ok()  { pass=$((pass+1)); echo "PASS v4l2-$1"; }
bad() { fail=$((fail+1)); echo "FAIL v4l2-$1${2:+: $2}"; }
# selftest NAME ARGS...: `pieyes selftest ARGS`; its check lines go below the PASS/FAIL line.
selftest() {
  name=$1; shift
  t0=$(date +%s.%N)
  if PIEYES_LOG=info "$BIN" selftest "$@" >"$R/v4l2-$name.txt" 2>&1; then ok "$name"; else bad "$name"; fi
  grep -E '^(check |facts: |selftest )' "$R/v4l2-$name.txt" | sed 's/^/    /'
  grep -E 'ERROR|WARN' "$R/v4l2-$name.txt" | sed 's/^/    log: /'
  echo "    ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
}
# vicodec MODULE_PARAMS: (re)load it, wait for its nodes.
load_vicodec() {
  modprobe -r vicodec 2>/dev/null
  modprobe vicodec "$@" || { bad "modprobe-vicodec" "modprobe vicodec $*"; return 1; }
  udevadm settle --timeout=30 || true
}

[ -x "$BIN" ] || { bad setup "no pieyes binary at $BIN"; exit 1; }
[ -c /dev/dma_heap/system ] || { bad setup "no /dev/dma_heap/system"; exit 1; }
echo "kernel $(uname -r); dma heaps: $(cd /dev/dma_heap && echo *)"

# vicodec codes frames of at least 640x360 in multiples of 16 lines: 640x480 -> 720x400 are
# taken as they are (zero-copy possible); 640x360 is coded as 640x368 (padded copy + crop).
# fwht NAME ARGS...: the selftest at those sizes with frames from the system heap or memfds.
fwht() {
  n=$1; shift
  selftest "$n" v4l2 --codec fwht --size 640x480 --resize 720x400 --heap /dev/dma_heap/system "$@"
}

# 1. Single-planar queues (vicodec's default).
load_vicodec multiplanar=0 || exit 1
fwht sp-heap-dmabuf    --source heap  --memory auto   --expect-memory dmabuf
fwht sp-memfd-mmap     --source memfd --memory auto   --expect-memory mmap
fwht sp-memfd-refused  --source memfd --memory dmabuf --expect-memory mmap
fwht sp-heap-mmap-nv12 --source heap  --memory mmap --format nv12 --expect-memory mmap
fwht sp-padded         --source heap  --size 640x360 --resize 800x450 --expect-memory mmap

# 2. Multi-planar queues, as the Pi 4's bcm2835-codec has them.
load_vicodec multiplanar=1 || exit 1
fwht mp-heap-dmabuf    --source heap  --memory auto --expect-memory dmabuf
fwht mp-memfd-mmap     --source memfd --memory auto --expect-memory mmap
fwht mp-heap-nv12      --source heap  --memory auto --format nv12 --expect-memory dmabuf
# Leave vicodec as the guest's init loaded it, for whatever test runs next.
load_vicodec multiplanar=0

# 3. The software encoder reads dma-bufs in place (DMA_BUF_IOCTL_SYNC), memfds without.
selftest software-dmabuf dmabuf --frames 10 --heap /dev/dma_heap/system

# 4. No H.264 encoder in this VM: the selftest says so; the daemon's --encoder choices.
"$BIN" selftest v4l2 --codec h264 >"$R/v4l2-h264-absent.txt" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q 'check device: FAIL no H.264 encoder among' "$R/v4l2-h264-absent.txt"; then ok h264-absent
else bad h264-absent "exit $rc"; fi
sed -n 's/^check device: FAIL /    /p' "$R/v4l2-h264-absent.txt"

ip link set lo up 2>/dev/null || busybox ip link set lo up 2>/dev/null || true
D="--camera synthetic --size 320x240 --sensor 640x480 --fps 5 --listen 127.0.0.1:0 --control /tmp/pieyes.sock --state /tmp/state.conf"
# shellcheck disable=SC2086
timeout 60 "$BIN" $D --encoder v4l2 >"$R/v4l2-daemon-v4l2.txt" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q -- '--encoder v4l2: no V4L2 H.264 encoder: no H.264 encoder among' "$R/v4l2-daemon-v4l2.txt"; then
  ok daemon-encoder-v4l2-absent
else bad daemon-encoder-v4l2-absent "exit $rc"; fi
grep -E 'ERROR' "$R/v4l2-daemon-v4l2.txt" | sed 's/^/    /'

# shellcheck disable=SC2086
"$BIN" $D --encoder auto >"$R/v4l2-daemon-auto.txt" 2>&1 &
pid=$!
i=0
while [ $i -lt 300 ] && ! grep -q 'listening on' "$R/v4l2-daemon-auto.txt"; do sleep 0.2; i=$((i+1)); done
kill -TERM $pid 2>/dev/null; wait $pid
rc=$?
if [ $rc = 0 ] && grep -q 'eye 0: encoder auto: software (OpenH264): no H.264 encoder among' "$R/v4l2-daemon-auto.txt" \
   && grep -q 'listening on' "$R/v4l2-daemon-auto.txt"; then ok daemon-encoder-auto-software
else bad daemon-encoder-auto-software "exit $rc"; fi
grep -E 'encoder auto|ERROR' "$R/v4l2-daemon-auto.txt" | sed 's/^/    /'

echo "v4l2: $pass passed, $fail failed"
[ "$fail" = 0 ]
