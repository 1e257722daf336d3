#!/bin/sh
# PID 1 of the test guest (installed as /sbin/pieyes-init; kernel cmdline init=/sbin/pieyes-init).
# Brings up udev, loads the test drivers, mounts the payload (LABEL=pieyes-payload at /payload) and
# results (LABEL=pieyes-results at /results) disks, runs /payload/test.sh with RESULTS_DIR=/results,
# records its exit code in /results/exit-code and on the console, and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys  || mount -t sysfs sys /sys
mountpoint -q /dev  || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
mountpoint -q /run || mount -t tmpfs tmpfs /run
mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp
hostname pieyes-vm 2>/dev/null || true

# reboot(2) straight from PID 1 (busybox's -f does not go through an init); sysrq as a fallback.
poweroff_now() {
  sync; mount -o remount,ro / 2>/dev/null
  busybox poweroff -f 2>/dev/null
  echo o >/proc/sysrq-trigger; while :; do sleep 1; done
}
say() { echo "pieyes-init: $*" >/dev/console; }

timeout_s=$(sed -n 's/.*pieyes\.timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$timeout_s" ] || timeout_s=540

say "starting udev"
/usr/lib/systemd/systemd-udevd --daemon 2>/dev/null || /lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add --type=subsystems
udevadm trigger --action=add --type=devices
udevadm settle --timeout=60 || say "udevadm settle timed out"

for m in vimc vicodec vim2m; do
  modprobe "$m" || say "modprobe $m FAILED"
done
modprobe visl 2>/dev/null || true
udevadm settle --timeout=60 || true

mkdir -p /payload /results
dev_of() { [ -e "/dev/disk/by-label/$1" ] && readlink -f "/dev/disk/by-label/$1" || echo "$2"; }
mount "$(dev_of pieyes-results /dev/vdc)" /results || { say "cannot mount results disk"; poweroff_now; }
mount "$(dev_of pieyes-payload /dev/vdb)" /payload || { say "cannot mount payload disk"; echo 125 >/results/exit-code; poweroff_now; }

rc=0
if [ -f /payload/test.sh ]; then
  # An executable test.sh runs through its own #! line; otherwise with sh (dash).
  runner=sh; [ -x /payload/test.sh ] && runner=
  say "running /payload/test.sh (timeout ${timeout_s}s)"
  # Output goes to the console and to /results/test.log; the exit status survives the pipe via a file.
  ( cd /payload && RESULTS_DIR=/results PAYLOAD_DIR=/payload timeout -k 5 "$timeout_s" $runner /payload/test.sh; \
    echo $? >/results/.rc ) 2>&1 | tee /results/test.log >/dev/console
  rc=$(cat /results/.rc 2>/dev/null || echo 126); rm -f /results/.rc
else
  say "no /payload/test.sh"; rc=127
fi
echo "$rc" >/results/exit-code
dmesg >/results/dmesg.txt 2>/dev/null || true
sync
umount /results || true
say "PIEYES-VM-EXIT=$rc"
poweroff_now
