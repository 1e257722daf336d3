#!/usr/bin/env bash
# `make bench`, lossy-link scenario (root): two network namespaces, pieyes-srv (the daemon) and
# pieyes-cli (Chromium and the bench script), joined only through shaper.py: each direction
# 20 Mbit/s, 5 ms delay, 0.5 % loss (10 ms RTT, loss both ways). That is what `tc qdisc add …
# netem rate 20mbit delay 5ms loss 0.5%` on a veth pair would do; shaper.py stands in for netem
# because this machine's kernel is built without it (CONFIG_NET_SCH_NETEM is not set). No
# traffic leaves the namespaces. `lossy-link.sh burst on|off`: 100 % loss on/off (the bench's
# loss burst). PIEYES_LINK_RATE (bit/s, default 20e6) narrows the link, e.g. 5e6: less than the
# two eyes' 6 Mbit/s, a viewer walking out of Wi-Fi range. The namespaces and the shaper are
# removed on exit.
set -euo pipefail
SRV=pieyes-srv CLI=pieyes-cli
PIDFILE=/tmp/pieyes-shaper.pid
if [ "${1:-}" = burst ]; then
  kill -s "$([ "$2" = on ] && echo USR1 || echo USR2)" "$(cat $PIDFILE)"
  exit 0
fi
HERE=$(cd "$(dirname "$0")" && pwd)
SHAPER=""
cleanup() {
  # (wait reports the shaper's SIGTERM as 143: under set -e that would be this script's status)
  if [ -n "$SHAPER" ]; then kill "$SHAPER" 2>/dev/null || true; wait "$SHAPER" 2>/dev/null || true; fi
  ip netns del $SRV 2>/dev/null || true
  ip netns del $CLI 2>/dev/null || true
  rm -f $PIDFILE
}
cleanup
trap cleanup EXIT
ip netns add $SRV
ip netns add $CLI
for ns in $SRV $CLI; do ip -n $ns link set lo up; done
coproc SHAPE { exec python3 "$HERE/shaper.py" $SRV 10.77.0.1 $CLI 10.77.0.2 --rate "${PIEYES_LINK_RATE:-20e6}" --delay 5 --loss 0.005; }
SHAPER=$SHAPE_PID
echo "$SHAPER" > $PIDFILE
read -r -t 10 line <&"${SHAPE[0]}"
[ "$line" = ready ] || { echo "shaper did not start"; exit 1; }
ip netns exec $CLI env PIEYES_NETNS_SERVER=$SRV PIEYES_NETNS_ADDR=10.77.0.1 \
  PIEYES_NETNS_BURST="$HERE/lossy-link.sh" node "$HERE/latency.bench.mjs" --lossy
