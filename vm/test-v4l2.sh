#!/usr/bin/env bash
# Host side of the V4L2 encoder test: builds pieyes in the trixie chroot (so it runs in the
# guest) and runs vm/tests/20-v4l2.sh in the test VM. `make test-v4l2-vm` calls this.
#   vm/test-v4l2.sh            exit status: the guest script's (see vm/run.sh for 124/125)
# The guest script is self-contained (pieyes binary next to it or $PIEYES_BIN) so a modular
# `make test-vm` runner can pick it up from vm/tests/ as it is.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
need_root
ROOT=$(cd "$VM_DIR/.." && pwd)
T0=$(now)
TC=${PIEYES_VM_TOOLCHAIN:-$({ command -v rustup || [ -x "$HOME/.cargo/bin/rustup" ]; } >/dev/null 2>&1 && echo host || echo debian)}
CARGO_TARGET_DIR=$CACHE/target/$(basename "$ROOT")-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)-$TC
export CARGO_TARGET_DIR
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
"$VM_DIR/cargo-trixie.sh" -C "$ROOT" build --release --locked --bin pieyes
BIN=$CARGO_TARGET_DIR/release/pieyes
[ -x "$BIN" ] || die "pieyes binary not found at $BIN"
log "build $(since "$T0")"
PAY=$(mktemp -d "$CACHE/payload-v4l2.XXXXXX")
trap 'rm -rf "$PAY"' EXIT
cp "$BIN" "$PAY/pieyes"
cp "$VM_DIR/tests/20-v4l2.sh" "$PAY/test.sh"
chmod +x "$PAY/test.sh"
# Results (the guest's test.log and one log per check) are kept: the 10 newest runs.
PIEYES_VM_RESULTS=$CACHE/results-v4l2/$(date +%Y%m%d-%H%M%S)-$$
export PIEYES_VM_RESULTS
mkdir -p "$PIEYES_VM_RESULTS"
ls -1dt "$CACHE"/results-v4l2/*/ 2>/dev/null | tail -n +11 | xargs -r rm -rf
set +e
"$VM_DIR/run.sh" "$PAY" >/dev/null
rc=$?
set -e
[ -f "$PIEYES_VM_RESULTS/test.log" ] && cat "$PIEYES_VM_RESULTS/test.log"
log "results: $PIEYES_VM_RESULTS"
log "test-v4l2 total $(since "$T0") (exit $rc)"
exit $rc
