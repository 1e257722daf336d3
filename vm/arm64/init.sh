#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the arm64 test guest (vm/arm64/build.sh puts it in the initramfs as /init): mounts,
# loads /modules in the order of /etc/modules (virtio-net; vimc and the media core it needs),
# brings up the network qemu's user mode gives (10.0.2.15/24, the host's forwarded port reaches
# :8000 here), runs /payload/run.sh from the run's second cpio, and powers off.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "pieyes-arm64: kernel $(uname -r) $(uname -m), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
while read -r m; do
  insmod "/modules/$m" || echo "pieyes-arm64: insmod $m failed"
done </etc/modules
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 \
  || echo "pieyes-arm64: no network (eth0)"
# libcamera finds cameras through libudev, which lists only devices udev has processed (a
# database entry in /run/udev/data). There is no udevd here: give every char device an empty one.
mkdir -p /run/udev/data
for d in /sys/dev/char/*; do : >"/run/udev/data/c${d##*/}"; done
if [ -x /payload/run.sh ]; then
  /payload/run.sh
  echo "pieyes-arm64: run.sh exited $?"
else
  echo "pieyes-arm64: no /payload/run.sh"
fi
sync
poweroff -f
