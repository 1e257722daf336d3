#!/usr/bin/env bash
# `make test-vm-arm64`: the aarch64 binary `make deploy` installs, streaming vimc through
# libcamera in an arm64 guest (qemu-system-aarch64, TCG), its stream checked on this host.
#   vm/arm64/test.sh AARCH64_BINARY SYSROOT
# The guest (vm/arm64/build.sh, cached) is Debian's arm64 kernel + vimc + busybox in an
# initramfs; this run appends a second cpio with the binary, run-guest.sh and the libraries it
# needs from SYSROOT (the binary's NEEDED closure, libcamera's vimc IPA and its proxy). The
# daemon listens on the guest's :8000, forwarded to 127.0.0.1:PORT here; once /status shows
# eye 0 delivering, `pieyes record` (the same binary, under qemu-aarch64) saves RECORD_S seconds
# of eye 0 and ffprobe must find H.264 at SIZE, every frame received decoding, at least
# MIN_FRAMES of them (eye 0 delivers ~0.3-0.5 frame/s in this guest under TCG on a loaded
# 2-core host: OpenH264 and vimc emulated; asking 2 fps keeps the stall warnings down).
# Env: PIEYES_ARM64_SIZE (320x240), PIEYES_ARM64_FPS (2), PIEYES_ARM64_RECORD_S (30),
#      PIEYES_ARM64_MIN_FRAMES (5), PIEYES_ARM64_TIMEOUT (whole run, 900 s),
#      PIEYES_ARM64_LIBCAMERA_LOG (LIBCAMERA_LOG_LEVELS in the guest, *:WARN), PIEYES_VM_VERBOSE=1
#      (stream the console). Results: $CACHE/runs/<time>/ (console.log, eye0.h264, eye0.json,
#      ffprobe.txt, status.json; 10 kept). Exit 0 when every check passed.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
bin=$(realpath "${1:?usage: vm/arm64/test.sh AARCH64_BINARY SYSROOT}")
sysroot=$(realpath "${2:?usage: vm/arm64/test.sh AARCH64_BINARY SYSROOT}")
SIZE=${PIEYES_ARM64_SIZE:-320x240} FPS=${PIEYES_ARM64_FPS:-2}
RECORD_S=${PIEYES_ARM64_RECORD_S:-30} MIN_FRAMES=${PIEYES_ARM64_MIN_FRAMES:-5}
TIMEOUT=${PIEYES_ARM64_TIMEOUT:-900}
ACACHE=${PIEYES_VM_ARM64_CACHE:-$HOME/.cache/pieyes-vm-arm64}
need_root
need_host_pkgs qemu-system-aarch64:qemu-system-arm qemu-aarch64:qemu-user ffprobe:ffmpeg curl:curl \
  readelf:binutils python3:python3
T0=$(now)
deadline=$(($(date +%s) + TIMEOUT))
guest=$("$VM_DIR/arm64/build.sh")
log "guest ready in $(since "$T0"): $guest"

run=$ACACHE/runs/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$run"
ls -dt "$ACACHE"/runs/*/ 2>/dev/null | tail -n +11 | xargs -r rm -rf
pay=$run/payload-root
lib=usr/lib/aarch64-linux-gnu
mkdir -p "$pay/payload" "$pay/$lib/libcamera/ipa" "$pay/usr/libexec/aarch64-linux-gnu/libcamera" "$pay/usr/share"
ln -s usr/lib "$pay/lib"
cp "$bin" "$pay/payload/pieyes"
install -m 0755 "$VM_DIR/arm64/run-guest.sh" "$pay/payload/run.sh"
printf 'SIZE=%s\nFPS=%s\nLIBCAMERA_LOG=%s\n' "$SIZE" "$FPS" "'${PIEYES_ARM64_LIBCAMERA_LOG:-*:WARN}'" >"$pay/payload/env"
# What libcamera loads at run time for vimc: its IPA module (+ signature), the isolated IPA
# proxy (used if the signature does not verify), the IPA's tuning files.
cp "$sysroot/$lib/libcamera/ipa/ipa_vimc.so"* "$pay/$lib/libcamera/ipa/"
proxy=$sysroot/usr/libexec/aarch64-linux-gnu/libcamera/vimc_ipa_proxy
[ -e "$proxy" ] && cp "$proxy" "$pay/usr/libexec/aarch64-linux-gnu/libcamera/"
cp -r "$sysroot/usr/share/libcamera" "$pay/usr/share/"
# The NEEDED closure, resolved in the sysroot as its loader would (qemu-aarch64 -L does the same).
queue=("$bin" "$pay/$lib/libcamera/ipa/ipa_vimc.so")
[ -e "$proxy" ] && queue+=("$proxy")
declare -A have=()
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for n in $(LC_ALL=C readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "${have[$n]:-}" ] && continue
    src=
    for d in "$sysroot/$lib" "$sysroot/usr/lib"; do [ -e "$d/$n" ] && { src=$d/$n; break; }; done
    [ -n "$src" ] || die "$n (needed by $(basename "$f")) is not in $sysroot"
    cp -L "$src" "$pay/$lib/$n"
    have[$n]=1; queue+=("$pay/$lib/$n")
  done
done
interp=$(LC_ALL=C readelf -l "$bin" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
[ -e "$pay$interp" ] || cp -L "$sysroot$interp" "$pay$interp"
(cd "$pay" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$run/payload.cpio"
cat "$guest/base.cpio" "$run/payload.cpio" >"$run/initrd.cpio"
rm -rf "$pay" "$run/payload.cpio"
echo "INFO binary $bin (sha256 $(sha256sum "$bin" | cut -c1-16)…), libcamera $(cat "$sysroot/.libcamera-version" 2>/dev/null) from $sysroot"
log "payload: ${#have[@]} libraries; initrd $(du -h "$run/initrd.cpio" | cut -f1)"

# A free loopback port for the forward (nothing answers on it now).
port=
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "no free port"
console=$run/console.log
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -f "$run/initrd.cpio"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# One boot of the guest; sets qemu_pid and tb.
boot() {
  tb=$(now)
  : >"$console"
  qemu-system-aarch64 -M virt -cpu cortex-a76 -m 1G -smp 2 -accel tcg,thread=multi \
    -kernel "$guest/vmlinuz" -initrd "$run/initrd.cpio" -append "console=ttyAMA0 panic=-1 quiet" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8000" -device virtio-net-pci,netdev=n0 \
    -display none -monitor none -serial "file:$console" -no-reboot &
  qemu_pid=$!
  log "qemu $qemu_pid: guest :8000 -> 127.0.0.1:$port, console $console"
}
[ "${PIEYES_VM_VERBOSE:-0}" = 1 ] && { tail -F "$console" 2>/dev/null & }

failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
frames0() { # eye 0's encoded frame count in /status, or nothing
  curl -sf --max-time 10 "http://127.0.0.1:$port/status" >"$run/status.json" 2>/dev/null || return 0
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); e=[e for e in s["eyes"] if e["eye"]==0][0]; print(e.get("frames") or 0)' \
    "$run/status.json" 2>/dev/null || true
}
# Boot, and wait (until the deadline, while qemu lives) for eye 0 to deliver frames. A guest
# kernel that crashes before the daemon delivered anything is the emulator's fault, not the
# binary's (multi-threaded TCG has oopsed an x86 guest while booting, vm/run.sh): that boot is
# tried again, once; a crash later fails the run below.
f=
for try in 1 2; do
  boot
  until f=$(frames0); [ -n "$f" ] && [ "$f" -gt 0 ]; do
    kill -0 "$qemu_pid" 2>/dev/null || break
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 1
  done
  [ -n "$f" ] && [ "$f" -gt 0 ] && break
  if [ "$try" = 1 ] && ! kill -0 "$qemu_pid" 2>/dev/null && crash=$(kernel_crash_line "$console"); then
    cp "$console" "$run/console.boot1.log"
    log "the guest kernel crashed before eye 0 delivered (try 1 of 2; $run/console.boot1.log): $crash"
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=
    continue
  fi
  if ! kill -0 "$qemu_pid" 2>/dev/null; then fail "guest stopped before eye 0 delivered"; else fail "eye 0 delivered nothing within ${TIMEOUT} s"; fi
  break
done
if [ "$failed" = 0 ]; then
  pass "daemon streams eye 0 from vimc ($(since "$tb") after boot; frames=$f)"
  grep -m1 'kernel' "$console" | sed 's/^/INFO /' || true
  sed -n '/--list-cameras:/,/starting the daemon/p' "$console" | sed 's/^/INFO /'
  tr=$(now)
  rec=(qemu-aarch64 -cpu cortex-a76 -L "$sysroot" "$bin" record --addr "127.0.0.1:$port" --eye 0
       --seconds "$RECORD_S" --out "$run/eye0.h264")
  if timeout $((deadline - $(date +%s))) "${rec[@]}" >"$run/eye0.json" 2>"$run/eye0.err"; then
    pass "pieyes record eye 0, $RECORD_S s ($(since "$tr")): $(cat "$run/eye0.json")"
  else
    fail "pieyes record: $(cat "$run/eye0.err")"
  fi
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,profile,width,height,pix_fmt,nb_read_frames -of default=noprint_wrappers=1 \
    "$run/eye0.h264" >"$run/ffprobe.txt" 2>&1 || true
  sed 's/^/INFO ffprobe: /' "$run/ffprobe.txt"
  val() { sed -n "s/^$1=//p" "$run/ffprobe.txt"; }
  # The daemon's own view after the recording: the camera is vimc through libcamera, its output
  # the size asked, no encoder errors.
  if curl -sf --max-time 10 "http://127.0.0.1:$port/status" >"$run/status-end.json" &&
    st=$(python3 -c 'import json,sys; e=[e for e in json.load(open(sys.argv[1]))["eyes"] if e["eye"]==0][0]; print("|".join(map(str, [e["camera"], "%dx%d" % tuple(e["output"]), e["encoder_errors"], e["frames"], e["camera_state"]])))' \
      "$run/status-end.json"); then
    IFS='|' read -r cam out errs frames state <<<"$st"
    if [[ $cam == *vimc* ]] && [ "$out" = "$SIZE" ] && [ "$errs" = 0 ]; then
      pass "status: eye 0 is $cam at $out, $frames frames encoded, 0 encoder errors, camera $state"
    else
      fail "status: eye 0: $st"
    fi
  else
    fail "no /status after the recording"
  fi
  if [ "$(val codec_name)" = h264 ]; then pass "codec h264"; else fail "codec: $(val codec_name)"; fi
  if [ "$(val width)x$(val height)" = "$SIZE" ]; then pass "size $SIZE"; else fail "size $(val width)x$(val height), asked $SIZE"; fi
  n=$(val nb_read_frames)
  if [ -n "$n" ] && [ "$n" -ge "$MIN_FRAMES" ]; then pass "$n frames decoded (>= $MIN_FRAMES)"; else fail "${n:-no} frames decoded, want >= $MIN_FRAMES"; fi
  got=$(sed -n 's/.*"frames":\([0-9]*\).*/\1/p' "$run/eye0.json")
  if [ -n "$n" ] && [ "$n" = "$got" ]; then pass "every frame received decodes ($got)"; else fail "received ${got:-?} frames, ${n:-no} decode"; fi
  errs=$(ffmpeg -v error -i "$run/eye0.h264" -f null - 2>&1 | head -n 5)
  if [ -z "$errs" ]; then pass "decodes without an error"; else fail "decode errors: $errs"; fi
fi
if [ "$failed" != 0 ]; then
  echo "--- last 40 lines of $console"; tail -n 40 "$console"
fi
# The daemon runs until the guest is stopped: it must not have exited (crashed) meanwhile.
if grep -q 'run.sh exited\|Kernel panic\|Oops' "$console"; then
  fail "the daemon exited or the guest kernel crashed: $(grep -m1 'run.sh exited\|Kernel panic\|Oops' "$console")"
fi
log "$failed failed; total $(since "$T0") (results: $run)"
[ "$failed" = 0 ]
