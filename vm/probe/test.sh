#!/bin/sh
# Guest side of the probe (runs in the VM as /payload/test.sh, RESULTS_DIR=/results).
# Prints one line per check and a closing "N passed, N failed"; exits non-zero if any check failed.
R=${RESULTS_DIR:-/tmp}
P=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
check() {  # NAME CMD...: run CMD, log output to $R/NAME.txt
  name=$1; shift
  if "$@" >"$R/$name.txt" 2>&1; then pass=$((pass+1)); echo "PASS $name"
  else fail=$((fail+1)); echo "FAIL $name"; tail -n 20 "$R/$name.txt" | sed 's/^/    /'; fi
}
export LIBCAMERA_LOG_LEVELS="${LIBCAMERA_LOG_LEVELS:-*:WARN}"

check cam-list sh -c 'cam -l && cam -l 2>/dev/null | grep -q vimc && cam -l 2>/dev/null | grep -q Virtual0 && cam -l 2>/dev/null | grep -q Virtual1'
check v4l2-devices sh -c 'v4l2-ctl --list-devices && for d in vimc vicodec vim2m; do v4l2-ctl --list-devices | grep -q "^$d " || { echo "missing $d"; exit 1; }; done'
check dma-heap sh -c 'ls -l /dev/dma_heap/ /dev/udmabuf; test -c /dev/dma_heap/system'
check vicodec-encoder sh -c '
  found=
  for s in /sys/class/video4linux/video*; do
    d=/dev/${s##*/}
    echo "== $d: $(cat $s/name)"
    v4l2-ctl -d $d --list-formats >/tmp/cap.txt 2>&1; v4l2-ctl -d $d --list-formats-out >/tmp/out.txt 2>&1
    if grep -q FWHT /tmp/cap.txt && grep -q YU12 /tmp/out.txt; then
      v4l2-ctl -d $d --info; cat /tmp/cap.txt /tmp/out.txt; found="$found $d"
    fi
  done
  echo "encoder (FWHT on capture, YU12 on output):$found"; [ -n "$found" ]'
# Controls and properties each pipeline advertises (ScalerCrop among them or not).
check cam-controls sh -c 'n=$(cam -l 2>/dev/null | grep -c "^[0-9]*:"); i=1; while [ $i -le $n ]; do
  echo "=== camera $i"; cam -c $i --list-controls --list-properties || exit 1; i=$((i+1)); done'
check cam-capture-vimc cam -c 1 --capture=3
check probe-virtual-pair "$P/pieyes-vm-probe" 10 Virtual0 Virtual1
check probe-vimc "$P/pieyes-vm-probe" 10 vimc
check probe-mixed "$P/pieyes-vm-probe" 6 vimc Virtual0
grep -h 'probe-summary' "$R"/probe-*.txt
echo "probe: $pass passed, $fail failed"
[ "$fail" = 0 ]
