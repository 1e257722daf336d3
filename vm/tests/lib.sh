# Helpers for the guest tests (sourced by vm/tests/NN-*.sh; bash). Nothing here skips: a
# missing tool or device is a FAIL.
T=${TEST_RESULTS:?}
P=${PAYLOAD_DIR:-/payload}
# (kept when a test sources another: 11-libcamera-backports.sh runs 10-libcamera.sh's checks)
fails=${fails:-0}

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
info() { echo "INFO [${SECONDS}s] $*"; }
# check NAME WHY CMD...: PASS if CMD succeeds, else FAIL with WHY. A WHY starting with @ is
# expanded only then (single-quote it: '@frames $(ef 0 frames)' shows the values after a wait).
check() {
  local n=$1 w=$2; shift 2
  if "$@"; then pass "$n"; else
    [ "${w#@}" != "$w" ] && w=$(eval "echo \"${w#@}\"")
    fail "$n" "$w"
  fi
}
finish() { [ "$fails" = 0 ]; exit $?; }

# A daemon on 127.0.0.1:$PORT with its own control socket and state file. NAME names them and
# its log ($T/NAME.log). Sets DPID; waits until it listens (or dies).
PORT=8000
start_daemon() {
  DNAME=$1; shift
  rm -f "/tmp/$DNAME.sock"
  PIEYES_LOG=${PIEYES_LOG:-info} pieyes --listen "127.0.0.1:$PORT" --control "/tmp/$DNAME.sock" \
    --state "/tmp/$DNAME.state" "$@" >"$T/$DNAME.log" 2>&1 &
  DPID=$!
  local i=0
  while [ $i -lt 600 ]; do
    grep -q 'listening on http' "$T/$DNAME.log" && return 0
    kill -0 "$DPID" 2>/dev/null || { wait "$DPID"; echo "daemon exited $?"; tail -n 20 "$T/$DNAME.log"; return 1; }
    sleep 0.1; i=$((i + 1))
  done
  echo "daemon did not listen within 60 s"; tail -n 20 "$T/$DNAME.log"; return 1
}
# stop_daemon: SIGTERM, expect exit 0 within 15 s. Returns the exit status (124: had to kill).
stop_daemon() {
  kill -TERM "$DPID" 2>/dev/null
  local i=0
  while kill -0 "$DPID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$DPID" 2>/dev/null; then kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; return 124; fi
  wait "$DPID"
}
ctl() { pieyes ctl --control "/tmp/$DNAME.sock" "$@"; }
# status [FILE]: the status JSON (without "ok "), also saved to $T/FILE.
status() {
  local s; s=$(ctl status) || return 1
  s=${s#ok }
  [ -n "${1:-}" ] && printf '%s\n' "$s" >"$T/$1"
  printf '%s\n' "$s"
}
# snap [FILE]: fetch `status` once into $S (and $T/FILE); ef N FIELD reads a flat field of eye
# N's entry from $S (string quotes stripped); eye_field N FIELD does both. The per-eye entries
# are the only objects that start {"eye":N,"camera": (the commanded state's start {"eye":N,"x":).
snap() { S=$(status "$@") || S=; }
ef() {
  printf '%s\n' "$S" | sed -n "s/.*{\"eye\":$1,\(\"camera\":[^}]*\).*/\1/p" \
    | sed -n "s/.*\"$2\":\(\"[^\"]*\"\|\[[^]]*\]\|[^,]*\).*/\1/p" | sed 's/^"//; s/"$//'
}
eye_field() { snap; ef "$@"; }
# wait_for SECONDS CMD...: until CMD succeeds (polling twice a second).
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.5; done
}
# On a fresh snapshot: eye N has more than X frames (encoded); pairs of N X.
frames_above() {
  snap
  while [ $# -ge 2 ]; do
    local f; f=$(ef "$1" frames); [ -n "$f" ] && [ "$f" -gt "$2" ] || return 1; shift 2
  done
}
state_matches() { eye_field "$1" camera_state | grep -Eq "$2"; }
