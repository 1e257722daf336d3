#!/usr/bin/env bash
# `make test-vm`: pieyes against real libcamera (and the kernel's virtual media drivers) in the
# cached trixie guest: trixie's 0.4, and backports' 0.7 (the minor Raspberry Pi OS trixie ships).
#   1. vm/build.sh                         the guest image and backports' libcamera (cached;
#                                          rebuilt when their inputs change)
#   2. vm/cargo-trixie.sh clippy + build   --features libcamera, in the trixie chroot (cargo's own
#                                          incremental cache under the VM cache dir), once against
#                                          each libcamera
#   3. vm/run.sh PAYLOAD                   boots the guest; vm/tests/run-guest.sh runs every
#                                          vm/tests/NN-*.sh in order (PASS/FAIL lines each)
#   4. vm/tests/NN-*.host.sh               host-side checks of what the guest saved (ffprobe, jq)
# Prints every PASS/FAIL line and a verdict; exits 1 if anything failed. Results (streams, logs,
# status snapshots) in target/test-artifacts/vm/.
# Env: PIEYES_VM_SKIP_CLIPPY=1 (skip step 2's clippy), plus vm/run.sh's (PIEYES_VM_TIMEOUT, …).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
ROOT=$(cd "$VM_DIR/.." && pwd)
T0=$(now)
need_root
need_host_pkgs jq:jq ffprobe:ffmpeg ffmpeg:ffmpeg

step() { log "== $*"; }
timing=()
mark() { timing+=("$1 $(since "$2")"); }

step "guest image"
t=$(now); "$VM_DIR/build.sh" >/dev/null 2> >(grep -v ': cached (' >&2) || die "vm/build.sh failed"; mark image "$t"

export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
if [ "${PIEYES_VM_SKIP_CLIPPY:-0}" != 1 ]; then
  step "clippy --features libcamera (trixie chroot)"
  t=$(now)
  # --release: shares the build scripts' work (OpenH264's C, libcamera's bindings) with the build.
  "$VM_DIR/cargo-trixie.sh" -C "$ROOT" clippy --locked --release --all-targets --features libcamera -- -D warnings \
    || die "clippy with --features libcamera failed"
  mark clippy "$t"
fi
step "build --release --features libcamera (trixie chroot)"
t=$(now)
"$VM_DIR/cargo-trixie.sh" -C "$ROOT" build --locked --release --features libcamera || die "the libcamera build failed"
mark build "$t"
step "build --release --features libcamera against backports' libcamera (trixie chroot)"
t=$(now)
PIEYES_VM_LIBCAMERA=backports "$VM_DIR/cargo-trixie.sh" -C "$ROOT" build --locked --release --features libcamera \
  || die "the libcamera build against backports' libcamera failed"
mark build-backports "$t"
TC=${PIEYES_VM_TOOLCHAIN:-$({ command -v rustup || [ -x "$HOME/.cargo/bin/rustup" ]; } >/dev/null 2>&1 && echo host || echo debian)}
TARGET=$CACHE/target/$(basename "$ROOT")-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)-$TC
BIN=$TARGET/release/pieyes BIN_BACKPORTS=$TARGET-libcamera-backports/release/pieyes
for b in "$BIN" "$BIN_BACKPORTS"; do [ -x "$b" ] || die "built binary not found at $b"; done
LC_DIR=$(readlink -f "$CACHE/libcamera-backports")

step "guest run"
PAY=$(mktemp -d "$CACHE/payload-test-vm.XXXXXX")
trap 'rm -rf "$PAY"' EXIT
mkdir -p "$PAY/bin" "$PAY/tests"
cp "$BIN" "$PAY/bin/pieyes"
# Backports' build and the libcamera it runs with: its libraries, IPA modules and their proxies,
# and its data (IPA tuning files), as vm/tests/11-libcamera-backports.sh puts them on its paths.
mkdir -p "$PAY/libcamera-backports/bin"
cp "$BIN_BACKPORTS" "$PAY/libcamera-backports/bin/pieyes"
cp "$LC_DIR/version" "$PAY/libcamera-backports/"
(cd "$LC_DIR/root" && cp -a --parents usr/lib usr/share/libcamera "$PAY/libcamera-backports/") \
  || die "copying backports' libcamera into the payload failed"
[ -d "$LC_DIR/root/usr/libexec" ] && cp -a "$LC_DIR/root/usr/libexec" "$PAY/libcamera-backports/usr/"
cp "$VM_DIR/tests/run-guest.sh" "$PAY/test.sh"
for f in "$VM_DIR"/tests/*; do
  case "$f" in *.host.sh|*/run-guest.sh) ;; *) cp "$f" "$PAY/tests/" ;; esac
done
RESULTS=$ROOT/target/test-artifacts/vm
rm -rf "$RESULTS"; mkdir -p "$(dirname "$RESULTS")"
t=$(now)
set +e
# 20 min for boot and tests: on a busy 2-core host TCG boots in ~3 min, and 10-libcamera and
# 11-libcamera-backports each record vimc (0.3 fps there) for up to 45 s per eye.
PIEYES_VM_TIMEOUT=${PIEYES_VM_TIMEOUT:-1200} PIEYES_VM_NO_BUILD=1 PIEYES_VM_RESULTS=$RESULTS "$VM_DIR/run.sh" "$PAY" >/dev/null
guest_rc=$?
set -e
mark guest "$t"
[ -f "$RESULTS/summary.txt" ] || die "the guest produced no summary (exit $guest_rc; see $RESULTS/test.log)"

step "host checks"
host_summary=$RESULTS/host-summary.txt
: >"$host_summary"
for h in "$VM_DIR"/tests/[0-9][0-9]-*.host.sh; do
  [ -e "$h" ] || continue
  name=$(basename "$h" .host.sh)
  set +e
  TEST_RESULTS=$RESULTS/$name bash "$h" >"$RESULTS/$name/host-output.txt" 2>&1
  rc=$?
  set -e
  grep -E '^(PASS|FAIL) ' "$RESULTS/$name/host-output.txt" | sed "s|^|$name (host): |" >>"$host_summary" || true
  if [ $rc != 0 ] && ! grep -q '^FAIL ' "$RESULTS/$name/host-output.txt"; then
    echo "$name (host): FAIL exit: exited $rc without saying why" >>"$host_summary"
  fi
  grep -E '^INFO ' "$RESULTS/$name/host-output.txt" | sed "s|^|$name (host): |" >&2 || true
done

echo
grep -h 'INFO ' "$RESULTS"/*/output.txt 2>/dev/null | sed 's/^/  guest: /' || true
echo
cat "$RESULTS/summary.txt" "$host_summary"
passed=$(cat "$RESULTS/summary.txt" "$host_summary" | grep -c ': PASS ' || true)
failed=$(cat "$RESULTS/summary.txt" "$host_summary" | grep -c ': FAIL ' || true)
echo
log "timings: ${timing[*]}, total $(since "$T0")"
if [ "$failed" != 0 ] || [ "$guest_rc" != 0 ]; then
  printf 'test-vm: %s passed, %s FAILED (guest exit %s); artifacts in %s\n' "$passed" "$failed" "$guest_rc" "$RESULTS" >&2
  exit 1
fi
printf 'test-vm: all %s checks passed; artifacts in %s\n' "$passed" "$RESULTS"
