#!/usr/bin/env bash
# `make test-dist` (run by `make aarch64`): what `make deploy` installs on a Pi, without a Pi.
#   tests/dist.sh AARCH64_BINARY SYSROOT
# - dist/deploy.sh --dry-run accepts the aarch64 build with libcamera and would copy exactly that
#   file; it refuses an aarch64 binary without libcamera and an x86 one, copying nothing.
# - dist/pieyes-start (the service's ExecStart) execs the daemon when every library resolves, and
#   when the libcamera.so.MAJOR.MINOR it was linked against is gone (an apt upgrade) exits 78 with
#   a message saying to run make deploy, without running it; pieyes.service does not restart 78.
# - dist/sysroot.sh PI=user@host against a stand-in Pi (an ssh on PATH playing the Debian
#   sysroot as the Pi's root): the copy, its fix-ups, the binary on it, a new path after an upgrade.
# - the aarch64 binary runs under qemu against the sysroot and --list-cameras reaches libcamera.
# One PASS/FAIL line per check; exits 1 if any failed.
# shellcheck disable=SC2016 # the bash -c '...' checks expand their own "$1"
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=${1:?usage: tests/dist.sh AARCH64_BINARY SYSROOT}
sysroot=${2:?usage: tests/dist.sh AARCH64_BINARY SYSROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: PASS when the command succeeds
    local name=$1; shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# --- the aarch64 build: links the sysroot's libcamera ---
want=$(cut -d. -f1,2 "$sysroot/.libcamera-version")
needed=$(LC_ALL=C readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
check "binary links libcamera.so.$want (NEEDED: $needed)" grep -q "libcamera\.so\.$want " <<<"$needed "

# --- deploy.sh --dry-run ---
out=$(SSH_OPTS='-o Port=2222' dist/deploy.sh --dry-run pi@robot.local "$bin" 2>&1)
rc=$?
check "deploy --dry-run accepts the libcamera build (exit $rc)" test "$rc" = 0
check "deploy copies exactly that binary" grep -qF "+ scp -q -o Port=2222 $bin pi@robot.local:/tmp/pieyes-deploy.XXXXXX/pieyes" <<<"$out"
check "deploy copies pieyes-start with the unit" grep -qE '^\+ scp .*pieyes\.service .*install\.sh .*pieyes-start ' <<<"$out"
check "deploy checks the libraries on the Pi before installing" \
    bash -c 'grep -n "pieyes-start --check /tmp/pieyes-deploy.XXXXXX/pieyes" <<<"$1" | cut -d: -f1 | head -1 >"$2/a";
             grep -n "install.sh /tmp/pieyes-deploy" <<<"$1" | cut -d: -f1 | head -1 >"$2/b";
             [ -s "$2/a" ] && [ -s "$2/b" ] && [ "$(cat "$2/a")" -lt "$(cat "$2/b")" ]' _ "$out" "$tmp"
check "deploy --dry-run changes nothing" grep -q 'dry run, nothing was copied' <<<"$out"

printf 'int main(void) { return 0; }\n' >"$tmp/plain.c"
if aarch64-linux-gnu-gcc -o "$tmp/plain" "$tmp/plain.c"; then
    out=$(dist/deploy.sh --dry-run pi@robot.local "$tmp/plain" 2>&1)
    rc=$?
    check "deploy refuses an aarch64 binary without libcamera (exit $rc)" test "$rc" = 1
    check "... saying why" grep -q 'has no libcamera backend' <<<"$out"
    check "... and copies nothing" bash -c '! grep -q "^+ scp" <<<"$1"' _ "$out"
else
    fail "aarch64-linux-gnu-gcc could not build a plain binary"
fi
out=$(dist/deploy.sh --dry-run pi@robot.local /bin/sh 2>&1)
rc=$?
check "deploy refuses an x86 binary (exit $rc)" bash -c '[ "$1" = 1 ] && grep -q "not an aarch64" <<<"$2"' _ "$rc" "$out"

# --- pieyes-start: the SONAME check, with a host program linked against a stand-in
# libcamera.so.0.7 (what the Pi's loader sees is the same: a NEEDED entry that resolves or not) ---
mkdir -p "$tmp/lib"
printf 'int libcamera_stand_in(void) { return 7; }\n' >"$tmp/cam.c"
printf '#include <stdio.h>\nint libcamera_stand_in(void);\nint main(int c, char **v) { printf("daemon ran:"); for (int i = 1; i < c; i++) printf(" %%s", v[i]); printf(" %%d\\n", libcamera_stand_in()); return 0; }\n' >"$tmp/daemon.c"
if cc -shared -fPIC -Wl,-soname,libcamera.so.0.7 -o "$tmp/lib/libcamera.so.0.7" "$tmp/cam.c" &&
    cc -o "$tmp/pieyes" "$tmp/daemon.c" "$tmp/lib/libcamera.so.0.7"; then
    out=$(LD_LIBRARY_PATH=$tmp/lib PIEYES_BIN=$tmp/pieyes dist/pieyes-start --listen 0.0.0.0:8000 2>&1)
    rc=$?
    check "pieyes-start execs the daemon with its flags when libcamera resolves (exit $rc)" \
        bash -c '[ "$1" = 0 ] && [ "$2" = "daemon ran: --listen 0.0.0.0:8000 7" ]' _ "$rc" "$out"
    out=$(LD_LIBRARY_PATH=$tmp/lib dist/pieyes-start --check "$tmp/pieyes" 2>&1)
    check "pieyes-start --check passes (exit $?)" grep -q 'every library' <<<"$out"
    # apt upgrade: libcamera.so.0.7 replaced by libcamera.so.0.8
    mv "$tmp/lib/libcamera.so.0.7" "$tmp/lib/libcamera.so.0.8"
    out=$(LD_LIBRARY_PATH=$tmp/lib PIEYES_BIN=$tmp/pieyes dist/pieyes-start --listen 0.0.0.0:8000 2>&1)
    rc=$?
    check "pieyes-start exits 78 when libcamera.so.0.7 is gone (exit $rc)" test "$rc" = 78
    check "... naming the missing library and make deploy" \
        bash -c 'grep -q "built against libcamera.so.0.7 which this system does not have" <<<"$1" && grep -q "make deploy PI=" <<<"$1"' _ "$out"
    check "... without running the daemon" bash -c '! grep -q "daemon ran" <<<"$1"' _ "$out"
    check "... in one line (one journal entry)" test "$(printf '%s\n' "$out" | wc -l)" = 1
    echo "INFO pieyes-start said: $out"
    LD_LIBRARY_PATH=$tmp/lib dist/pieyes-start --check "$tmp/pieyes" >/dev/null 2>&1
    rc=$?
    check "pieyes-start --check exits 78 too (deploy and install.sh stop there; exit $rc)" test "$rc" = 78
else
    fail "cc could not build the stand-in libcamera"
fi
check "pieyes.service starts through pieyes-start" grep -q '^ExecStart=/usr/local/bin/pieyes-start ' dist/pieyes.service
check "pieyes.service does not restart exit 78" grep -q '^RestartPreventExitStatus=78$' dist/pieyes.service
check "install.sh installs pieyes-start and checks first" \
    bash -c 'grep -q "pieyes-start\" --check" dist/install.sh && grep -q "install -m 0755 \"\$dir/pieyes-start\"" dist/install.sh'

# --- dist/sysroot.sh with a Pi it cannot reach: one clear line, no half-made sysroot ---
out=$(PI=nobody@127.0.0.1 SSH_OPTS='-o BatchMode=yes -o ConnectTimeout=3 -o Port=1' \
    PIEYES_SYSROOT_CACHE=$tmp/cache dist/sysroot.sh 2>&1)
rc=$?
check "sysroot.sh PI=unreachable fails saying why (exit $rc)" \
    bash -c '[ "$1" != 0 ] && grep -q "cannot read nobody@127.0.0.1.s libcamera version" <<<"$2" && [ -z "$(ls "$3/cache" 2>/dev/null)" ]' _ "$rc" "$out" "$tmp"

# --- dist/sysroot.sh PI=user@host against a stand-in Pi: an `ssh` on PATH that runs the remote
# command here, every absolute /usr path in it under the Debian sysroot (rsync's server side
# included, through rsync's /./ marker), so that sysroot plays the Pi's root ---
mkdir -p "$tmp/fakebin"
cat >"$tmp/fakebin/ssh" <<'EOF_SSH'
#!/usr/bin/env bash
while [[ $1 == -* ]]; do case $1 in -[oplie]) shift 2 ;; *) shift ;; esac; done
shift # the host
root=$FAKE_PI_ROOT
if [ "$1" = rsync ]; then
    args=()
    for a in "$@"; do [[ $a == /usr/* ]] && a=$root/.$a; args+=("$a"); done
    exec "${args[@]}"
fi
if [ "$*" = "pkg-config --modversion libcamera" ] && [ -n "${FAKE_PI_LIBCAMERA:-}" ]; then
    echo "$FAKE_PI_LIBCAMERA"; exit 0
fi
cmd=$*
PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/aarch64-linux-gnu/pkgconfig:$root/usr/share/pkgconfig \
    sh -c "${cmd//\/usr\//$root/usr/}" | sed "s|^$root||"
EOF_SSH
chmod +x "$tmp/fakebin/ssh"
fake() { PATH=$tmp/fakebin:$PATH FAKE_PI_ROOT=$sysroot PI=pi@fakepi PIEYES_SYSROOT_CACHE=$tmp/cache "$@"; }
pi_ver=$(cat "$sysroot/.libcamera-version")
out=$(fake dist/sysroot.sh 2>&1)
rc=$?
pisys=$tmp/cache/pieyes-sysroot-pi-fakepi-$pi_ver
check "sysroot.sh PI= copies the Pi's libraries into pieyes-sysroot-pi-<host>-<its libcamera> (exit $rc)" \
    bash -c '[ "$1" = 0 ] && [ "$(tail -1 <<<"$2")" = "$3" ] && [ "$(cat "$3/.libcamera-version")" = "$4" ]' _ "$rc" "$out" "$pisys" "$pi_ver"
check "... with libcamera.pc, the headers, the loader and libcamera.so.$want" \
    bash -c '[ -f "$1/usr/lib/aarch64-linux-gnu/pkgconfig/libcamera.pc" ] && [ -f "$1/usr/include/libcamera/libcamera/camera.h" ] &&
             [ -e "$1/lib/ld-linux-aarch64.so.1" ] && [ -e "$1/usr/lib/aarch64-linux-gnu/libcamera.so.$2" ]' _ "$pisys" "$want"
check "... and no symlink pointing out of it" \
    bash -c '[ -z "$(find "$1" -type l -lname "/*" | head -1)" ]' _ "$pisys"
out=$(timeout 120 qemu-aarch64 -cpu cortex-a76 -L "$pisys" "$bin" --list-cameras 2>/dev/null)
check "the binary runs on the copied Pi libraries (qemu -L)" grep -q "^Available cameras (libcamera v$want" <<<"$out"
out=$(FAKE_PI_LIBCAMERA=0.8.0 fake dist/sysroot.sh --path 2>&1)
check "after an upgrade on the Pi the sysroot path changes (a rebuild): $(basename "$out")" \
    test "$out" = "$tmp/cache/pieyes-sysroot-pi-fakepi-0.8.0"
FAKE_PI_LIBCAMERA=0.8.0 fake dist/sysroot.sh >/dev/null 2>&1
check "... the old copy is moved there and refreshed, not copied again beside it" \
    bash -c '[ -d "$1-0.8.0" ] && [ ! -e "$1-$2" ]' _ "$tmp/cache/pieyes-sysroot-pi-fakepi" "$pi_ver"

# --- the binary itself, under qemu against the sysroot ---
out=$(timeout 120 qemu-aarch64 -cpu cortex-a76 -L "$sysroot" "$bin" --version 2>&1)
check "the aarch64 binary starts under qemu -L sysroot ($out)" grep -q '^pieyes ' <<<"$out"
out=$(timeout 120 qemu-aarch64 -cpu cortex-a76 -L "$sysroot" "$bin" --list-cameras 2>&1)
echo "INFO --list-cameras under qemu (no cameras on this machine): $(head -c 300 <<<"$out" | tr '\n' '|')"
check "--list-cameras runs the sysroot's libcamera $want (not the build-without-libcamera error)" \
    grep -q "^Available cameras (libcamera v$want" <<<"$out"

if [ "$failed" != 0 ]; then
    echo "test-dist: $failed FAILED"
    exit 1
fi
echo "test-dist: all passed"
