#!/bin/sh
# The payload's run.sh in the arm64 guest (vm/arm64/test.sh copies it with the binary and the
# sysroot's libraries): lists the cameras, then runs the daemon on vimc until the host, having
# recorded what it needs through the forwarded port, stops the guest. Settings in /payload/env.
. /payload/env
export LIBCAMERA_LOG_LEVELS="${LIBCAMERA_LOG:-*:WARN}"
echo "pieyes-arm64: --list-cameras:"
/payload/pieyes --list-cameras --mono --size "$SIZE" --fps "$FPS" 2>&1
echo "pieyes-arm64: starting the daemon"
exec /payload/pieyes --camera libcamera --mono --cameras vimc --size "$SIZE" --fps "$FPS" \
  --listen 0.0.0.0:8000 --control /tmp/pieyes.sock --state /tmp/pieyes.state 2>&1
