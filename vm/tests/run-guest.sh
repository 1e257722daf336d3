#!/bin/bash
# Guest side of `make test-vm` (copied into the payload as /payload/test.sh; see vm/test-vm.sh).
# Runs every /payload/tests/[0-9][0-9]-*.sh in name order, each with its own results directory
# ($RESULTS_DIR/<name>, as $TEST_RESULTS) and time limit. A test prints one line per check:
#   PASS <check>            FAIL <check>: <why>            INFO <anything>
# and exits non-zero if a check failed. A test that exits non-zero without a FAIL line, or
# times out, gets one. The PASS/FAIL lines of all tests end up in $RESULTS_DIR/summary.txt.
# Adding a test = dropping a file into vm/tests/ (and, for checks on the host, NN-name.host.sh).
R=${RESULTS_DIR:?}
P=${PAYLOAD_DIR:-/payload}
export PATH="$P/bin:$PATH"
# The guest has no network, but tests talk to daemons over loopback.
busybox ip link set lo up 2>/dev/null || ip link set lo up
: >"$R/summary.txt"
failed=0
for t in "$P"/tests/[0-9][0-9]-*.sh; do
  case "$t" in *.host.sh) continue ;; esac
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  # Each test gets its own results dir (also as RESULTS_DIR, for scripts written to run alone
  # through vm/run.sh) and finds pieyes on PATH or as $PIEYES_BIN.
  export TEST_RESULTS="$R/$name" RESULTS_DIR="$R/$name" PIEYES_BIN="$P/bin/pieyes"
  mkdir -p "$TEST_RESULTS"
  limit=${PIEYES_GUEST_TEST_TIMEOUT:-420}
  echo "=== $name (limit ${limit}s)"
  start=$(date +%s)
  timeout -k 5 "$limit" bash "$t" >"$TEST_RESULTS/output.txt" 2>&1
  rc=$?
  # Show it (the console and test.log), then judge it.
  sed 's/^/  /' "$TEST_RESULTS/output.txt"
  grep -E '^(PASS|FAIL) ' "$TEST_RESULTS/output.txt" | sed "s|^|$name: |" >>"$R/summary.txt"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "$name: FAIL timeout: killed after ${limit}s" | tee -a "$R/summary.txt"; failed=1
  elif [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$TEST_RESULTS/output.txt"; then
    echo "$name: FAIL exit: exited $rc without saying why" | tee -a "$R/summary.txt"; failed=1
  elif [ "$rc" != 0 ]; then failed=1
  fi
  echo "=== $name: exit $rc after $(( $(date +%s) - start ))s"
done
[ -s "$R/summary.txt" ] || { echo "no tests ran" | tee -a "$R/summary.txt"; exit 1; }
exit $failed
