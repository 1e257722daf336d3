#!/usr/bin/env bash
# Boots the cached pieyes test VM and runs PAYLOAD_DIR/test.sh inside it.
#   vm/run.sh PAYLOAD_DIR
# In the guest: PAYLOAD_DIR is a fresh ext4 disk mounted at /payload (writable, thrown away);
# test.sh (via its #! line if executable, else sh) runs as root with cwd /payload after `udevadm settle` and `modprobe vimc vicodec vim2m`,
# with RESULTS_DIR=/results (a second disk). Its output is also saved as $RESULTS_DIR/test.log.
# On the host the results are copied to the directory printed at the end
# (default $PIEYES_VM_CACHE/runs/<time>-<pid>/results, or PIEYES_VM_RESULTS=DIR).
# Exit status: test.sh's; 124 for a timeout (host or guest side), 125 if the guest never reported.
# Env: PIEYES_VM_TIMEOUT (s, default 600: whole boot+test), PIEYES_VM_MEM (default 2G),
#      PIEYES_VM_SMP (default 2), PIEYES_VM_RESULTS_MB (default 512), PIEYES_VM_VERBOSE=1 (live console),
#      PIEYES_VM_NO_BUILD=1 (use the cached image as is), PIEYES_VM_KEEP_DISKS=1,
#      PIEYES_VM_BOOT_TRIES (default 2: a guest kernel crash before test.sh starts boots again).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

[ $# -eq 1 ] || die "usage: $0 PAYLOAD_DIR   (PAYLOAD_DIR must contain test.sh)"
PAYLOAD=$(cd "$1" 2>/dev/null && pwd) || die "payload dir $1 does not exist"
[ -f "$PAYLOAD/test.sh" ] || die "$PAYLOAD/test.sh is missing"
need_root
need_host_pkgs qemu-system-x86_64:qemu-system-x86 mke2fs:e2fsprogs debugfs:e2fsprogs timeout:coreutils

TIMEOUT=${PIEYES_VM_TIMEOUT:-600}
T0=$(now)
if [ "${PIEYES_VM_NO_BUILD:-0}" = 1 ]; then
  IMAGE=$("$VM_DIR/build.sh" --print)
else
  IMAGE=$("$VM_DIR/build.sh" 2> >(grep -v ': cached (' >&2)) || die "vm/build.sh failed"
fi
for f in vmlinuz initrd.img rootfs.ext4; do [ -f "$IMAGE/$f" ] || die "image is missing $f ($IMAGE)"; done

RUN=$CACHE/runs/$(date +%Y%m%d-%H%M%S)-$$
RESULTS=${PIEYES_VM_RESULTS:-$RUN/results}
mkdir -p "$RUN"
# Keep the 20 newest runs.
ls -1dt "$CACHE"/runs/*/ 2>/dev/null | tail -n +21 | xargs -r rm -rf

payload_mb=$(( $(du -sm "$PAYLOAD" | cut -f1) * 5 / 4 + 64 ))
CONSOLE=$RUN/console.log
# Leave the guest time to boot (~15 s) and to write its results after test.sh is stopped.
guest_timeout=$(( TIMEOUT > 90 ? TIMEOUT - 45 : TIMEOUT / 2 ))

# One boot of the guest on fresh payload and results disks; sets qrc.
boot() {
  rm -f "$RUN/payload.ext4" "$RUN/results.ext4"
  mke2fs -q -t ext4 -L pieyes-payload -d "$PAYLOAD" "$RUN/payload.ext4" "${payload_mb}M" >/dev/null \
    || die "mke2fs of the payload disk failed"
  mke2fs -q -t ext4 -L pieyes-results "$RUN/results.ext4" "${PIEYES_VM_RESULTS_MB:-512}M" >/dev/null \
    || die "mke2fs of the results disk failed"
  log "booting $(basename "$IMAGE") (kernel $(sed -n 's/^KERNEL=//p' "$IMAGE/info")), timeout ${TIMEOUT}s, console $CONSOLE"
  local tail_pid=
  : >"$CONSOLE"
  if [ "${PIEYES_VM_VERBOSE:-0}" = 1 ]; then tail -n +1 -f "$CONSOLE" & tail_pid=$!; fi
  local tq; tq=$(now)
  set +e
  timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "${PIEYES_VM_SMP:-2}" -m "${PIEYES_VM_MEM:-2G}" \
    -nodefaults -display none -no-reboot -monitor none \
    -serial "file:$CONSOLE" \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
    -drive "file=$IMAGE/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
    -drive "file=$RUN/payload.ext4,format=raw,if=virtio" \
    -drive "file=$RUN/results.ext4,format=raw,if=virtio" \
    -net none \
    -append "console=ttyS0 root=/dev/vda rw init=/sbin/pieyes-init panic=-1 loglevel=4 pieyes.timeout=$guest_timeout" \
    </dev/null >"$RUN/qemu.out" 2>&1
  qrc=$?
  set -e
  [ -n "$tail_pid" ] && { sleep 0.5; kill "$tail_pid" 2>/dev/null || true; }
  log "guest ran $(since "$tq") (qemu exit $qrc)"
}

# The guest kernel crashing while it boots, before test.sh has begun, is the emulator's fault, not
# the test's: multi-threaded TCG has been seen to oops on an int3 left by the kernel's live code
# patching (sched_clock_cpu, 5 s into boot). Such a boot is tried again, with fresh disks, once;
# a crash after test.sh began is a failure like any other.
tries=${PIEYES_VM_BOOT_TRIES:-2}
for try in $(seq 1 "$tries"); do
  boot
  if [ "$qrc" != 124 ] && [ "$qrc" != 137 ] && ! grep -aq 'pieyes-init: running /payload/test.sh' "$CONSOLE" \
     && crash=$(kernel_crash_line "$CONSOLE") && [ "$try" -lt "$tries" ]; then
    cp "$CONSOLE" "$RUN/console.boot$try.log"
    log "the guest kernel crashed while booting (try $try of $tries; $RUN/console.boot$try.log): $crash"
    continue
  fi
  break
done

mkdir -p "$RESULTS"
debugfs -R "rdump / $RESULTS" "$RUN/results.ext4" >/dev/null 2>"$RUN/debugfs.err" || true
# rdump of / lands in RESULTS/ directly on this debugfs; tidy its lost+found.
rm -rf "$RESULTS/lost+found"
[ "${PIEYES_VM_KEEP_DISKS:-0}" = 1 ] || rm -f "$RUN/payload.ext4" "$RUN/results.ext4"

rc=
if [ -f "$RESULTS/exit-code" ]; then rc=$(tr -dc 0-9 <"$RESULTS/exit-code")
elif m=$(grep -ao 'PIEYES-VM-EXIT=[0-9]*' "$CONSOLE" | tail -n1); [ -n "$m" ]; then rc=${m#*=}; fi
why=
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then why="timed out after ${TIMEOUT}s"; rc=${rc:-124}
elif [ -z "$rc" ]; then why="guest never reported an exit code (qemu exit $qrc)"; rc=125
elif [ "$rc" = 124 ]; then why="test.sh timed out inside the guest (${guest_timeout}s)"
elif [ "$rc" != 0 ]; then why="test.sh exited $rc"; fi
[ "$rc" = "" ] && rc=125

log "results: $RESULTS"
log "console: $CONSOLE"
log "total $(since "$T0")"
if [ -n "$why" ]; then
  echo "---- tail of guest console ($CONSOLE) ----" >&2
  tail -n 60 "$CONSOLE" >&2 || true
  [ -s "$RUN/qemu.out" ] && { echo "---- qemu ----" >&2; tail -n 20 "$RUN/qemu.out" >&2; }
  printf '[pieyes-vm] ERROR: guest test FAILED: %s\n' "$why" >&2
  [ "$rc" -gt 0 ] 2>/dev/null && [ "$rc" -lt 256 ] && exit "$rc"
  exit 1
fi
log "guest test passed"
echo "$RESULTS"
