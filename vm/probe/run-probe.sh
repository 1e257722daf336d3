#!/usr/bin/env bash
# Builds the probe in the trixie chroot and runs it, with probe/test.sh, in the test VM.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
"$VM_DIR/cargo-trixie.sh" -C "$VM_DIR/probe" build --release
TC=${PIEYES_VM_TOOLCHAIN:-$({ command -v rustup || [ -x "$HOME/.cargo/bin/rustup" ]; } >/dev/null 2>&1 && echo host || echo debian)}
BIN=$CACHE/target/probe-$(printf '%s' "$VM_DIR/probe" | sha256sum | cut -c1-8)-$TC/release/pieyes-vm-probe
[ -x "$BIN" ] || die "probe binary not found at $BIN"
PAY=$CACHE/payload-probe
rm -rf "$PAY"; mkdir -p "$PAY"
cp "$BIN" "$VM_DIR/probe/test.sh" "$PAY/"
exec "$VM_DIR/run.sh" "$PAY"
