#!/usr/bin/env bash
# Runs `cargo ARGS...` inside the cached Debian trixie build chroot (libcamera 0.4 + libcamera-dev,
# clang/libclang for bindgen, pkg-config, g++), so the binary links against trixie's libcamera and
# runs in the test guest.
#   vm/cargo-trixie.sh [-C SRC_DIR] ARGS...      (SRC_DIR defaults to the current directory)
# SRC_DIR is bind-mounted read-write at /src. CARGO_HOME (registry, git) is $CACHE/cargo-home and the
# target dir is $CACHE/target/<name>-<hash of SRC_DIR> unless CARGO_TARGET_DIR is set (a host path);
# both persist across runs. The target dir is printed at the end.
# Toolchain: PIEYES_VM_TOOLCHAIN=host (default when the host has rustup: the toolchain `rustup which
# cargo` picks in SRC_DIR, bind-mounted read-only) or debian (trixie's rustc/cargo 1.85).
# libcamera: PIEYES_VM_LIBCAMERA=trixie (default: 0.4, installed in the chroot) or backports (0.7
# today: stages/libcamera.sh, mounted at /overlay and first on PKG_CONFIG_PATH; its own target dir).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

SRC=$PWD
if [ "${1:-}" = -C ]; then [ $# -ge 2 ] || die "-C needs a directory"; SRC=$2; shift 2; fi
[ $# -ge 1 ] || die "usage: $0 [-C SRC_DIR] CARGO_ARGS...   e.g. $0 -C . build --release"
SRC=$(cd "$SRC" 2>/dev/null && pwd) || die "source dir does not exist"
[ -f "$SRC/Cargo.toml" ] || die "$SRC has no Cargo.toml"
need_root

CHROOT=$("$VM_DIR/build.sh" --chroot-only 2> >(grep -v ': cached (' | grep -v 'total ' >&2)) \
  || die "could not build the trixie chroot (vm/build.sh --chroot-only)"
CHROOT=$(readlink -f "$CHROOT")
LC=${PIEYES_VM_LIBCAMERA:-trixie}
lcenv=() lcbinds=() lcsuffix=
case "$LC" in
  trixie) ;;
  backports)
    lcdir=$("$VM_DIR/build.sh" --libcamera-only 2> >(grep -v ': cached (' | grep -v 'total ' >&2)) \
      || die "could not fetch libcamera from backports (vm/build.sh --libcamera-only)"
    lcbinds=("$lcdir/root:/overlay:ro")
    lcenv=(PKG_CONFIG_PATH=/overlay/usr/lib/x86_64-linux-gnu/pkgconfig)
    lcsuffix=-libcamera-backports
    ;;
  *) die "PIEYES_VM_LIBCAMERA must be trixie or backports, not $LC" ;;
esac

TC=${PIEYES_VM_TOOLCHAIN:-}
if [ -z "$TC" ]; then
  if command -v rustup >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/rustup" ]; then TC=host; else TC=debian; fi
fi
binds=("$SRC:/src")
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
case "$TC" in
  host)
    rustup=$(command -v rustup || echo "$HOME/.cargo/bin/rustup")
    hc=$(cd "$SRC" && "$rustup" which cargo) || die "rustup has no cargo for $SRC"
    tcdir=$(cd "$(dirname "$hc")/.." && pwd)
    binds+=("$tcdir:/opt/rust:ro"); path=/opt/rust/bin:$path
    ;;
  debian) ;;
  *) die "PIEYES_VM_TOOLCHAIN must be host or debian, not $TC" ;;
esac

CARGO_HOME_H=$CACHE/cargo-home
if [ -n "${CARGO_TARGET_DIR:-}" ]; then TARGET_H=$CARGO_TARGET_DIR
else TARGET_H=$CACHE/target/$(basename "$SRC")-$(printf '%s' "$SRC" | sha256sum | cut -c1-8)-$TC$lcsuffix; fi
mkdir -p "$CARGO_HOME_H" "$TARGET_H"
binds+=("$CARGO_HOME_H:/cargo" "$TARGET_H:/target" "${lcbinds[@]}")
CA=/etc/ssl/certs/ca-certificates.crt
if [ -f "$CA" ]; then binds+=("$CA:/etc/pieyes-host-ca.crt:ro"); else CA=; fi

# Pass through the cargo/rust tuning a caller may have set (not paths that mean host locations).
passenv=()
while IFS='=' read -r name _; do
  case "$name" in
    CARGO_HOME|CARGO_TARGET_DIR|CARGO_HTTP_CAINFO) ;;
    CARGO_*|RUSTFLAGS|RUST_BACKTRACE|RUST_LOG) passenv+=("$name=${!name}") ;;
  esac
done < <(env)

log "cargo $* in $SRC (toolchain: $TC, chroot: $(basename "$CHROOT"), libcamera: $LC)"
set +e
in_chroot "$CHROOT" "${binds[@]}" -- /usr/bin/env \
  PATH="$path" CARGO_HOME=/cargo CARGO_TARGET_DIR=/target \
  ${CA:+CARGO_HTTP_CAINFO=/etc/pieyes-host-ca.crt SSL_CERT_FILE=/etc/pieyes-host-ca.crt} \
  "${passenv[@]}" "${lcenv[@]}" sh -c 'cd /src && exec cargo "$@"' cargo "$@"
rc=$?
set -e
log "target dir (host): $TARGET_H"
exit $rc
