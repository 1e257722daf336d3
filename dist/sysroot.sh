#!/usr/bin/env bash
# The arm64 sysroot `make aarch64` / `make deploy` build pieyes --features libcamera against: the
# headers, pkg-config files and libraries (libcamera, glibc, libstdc++) of the system the binary
# will run on, because libcamera's SONAME is libcamera.so.MAJOR.MINOR and minors are not
# ABI-compatible. Prints the sysroot's path on stdout (progress on stderr).
#
#   dist/sysroot.sh [--path]     Debian's arm64 libcamera (trixie-backports 0.7) standing in for the
#                                Pi's: a private apt (no root, nothing installed on this machine)
#                                resolves and downloads the .debs, `dpkg -x` unpacks them into
#                                ~/.cache/pieyes-sysroot-<key>, the key a hash of this script and
#                                the variables below. Cached: ~0.01 s when present.
#   PI=user@host dist/sysroot.sh copies /usr/include, /usr/lib/aarch64-linux-gnu, /usr/lib/gcc/… and
#                                /usr/share/pkgconfig from that Pi over ssh (rsync, incremental)
#                                into ~/.cache/pieyes-sysroot-pi-<host>: the Pi's own libcamera
#                                (Raspberry Pi's fork), glibc and libstdc++. Needs libcamera-dev on
#                                the Pi (the script says so if it is missing).
#   --path                       print the path only, build nothing.
# Env: SYSROOT_SUITE (trixie), SYSROOT_BACKPORTS (trixie-backports: where libcamera 0.7 is),
#      SYSROOT_MIRROR, SYSROOT_PACKAGES, SSH_OPTS (for PI=), PIEYES_SYSROOT_CACHE (~/.cache).
set -euo pipefail

SUITE=${SYSROOT_SUITE:-trixie}
BACKPORTS=${SYSROOT_BACKPORTS-trixie-backports}
MIRROR=${SYSROOT_MIRROR:-http://deb.debian.org/debian}
# libcamera-dev and what a C++ build links with: glibc's and libstdc++'s development files.
# libcamera-ipa: the IPA modules libcamera loads at run time, as on the Pi.
PACKAGES=${SYSROOT_PACKAGES:-libcamera-dev libcamera-ipa libc6-dev libstdc++-14-dev}
CACHE=${PIEYES_SYSROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}

log() { echo "sysroot: $*" >&2; }
die() { log "$*"; exit 1; }

path_only=0
[ "${1:-}" = --path ] && path_only=1

if [ -n "${PI:-}" ]; then
    # The Pi's libcamera version is part of the path: after an apt upgrade there, a new path makes
    # cargo rebuild the libcamera bindings and relink (it does not watch the files in a sysroot).
    host=${PI#*@}
    read -r -a ssh_opts <<<"${SSH_OPTS:-}"
    pi_ver=$(ssh "${ssh_opts[@]}" "$PI" pkg-config --modversion libcamera 2>/dev/null) || pi_ver=
    dest=$CACHE/pieyes-sysroot-pi-${host//[^A-Za-z0-9._-]/_}-${pi_ver:-unknown}
else
    key=$({ cat "$0"; printf '%s\n' "$SUITE" "$BACKPORTS" "$MIRROR" "$PACKAGES"; } | sha256sum | cut -c1-16)
    dest=$CACHE/pieyes-sysroot-$key
fi
if [ "$path_only" = 1 ]; then
    echo "$dest"
    exit 0
fi

# Debian packages and a Pi ship absolute symlinks (libfoo.so -> /lib/aarch64-linux-gnu/libfoo.so.1)
# that would point into this machine's own /: make them relative to the sysroot. Also the merged
# /usr layout (lib -> usr/lib), so the ELF interpreter /lib/ld-linux-aarch64.so.1 and the paths in
# glibc's linker scripts resolve under the sysroot (qemu-aarch64 -L, ld --sysroot).
fixup() {
    local root=$1 d l t rel
    for d in lib lib64 bin sbin; do
        if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
            mkdir -p "$root/usr/$d"
            cp -a "$root/$d/." "$root/usr/$d/"
            rm -rf "${root:?}/$d"
        fi
        [ -e "$root/$d" ] || [ ! -d "$root/usr/$d" ] || ln -s "usr/$d" "$root/$d"
    done
    # libcamera.so needs the libstdc++ it was built with (GLIBCXX_3.4.32 for trixie's): a
    # libstdc++.so beside it, in the directory pkg-config puts first on the link line, wins over
    # the cross compiler's older one (a Pi without libstdc++-dev has only libstdc++.so.6).
    l=$root/usr/lib/aarch64-linux-gnu
    [ ! -e "$l/libstdc++.so.6" ] || [ -e "$l/libstdc++.so" ] || ln -s libstdc++.so.6 "$l/libstdc++.so"
    while IFS= read -r -d '' l; do
        t=$(readlink "$l")
        [[ $t == /* ]] || continue
        rel=$(realpath -m --relative-to="$(dirname "$l")" "$root$t")
        ln -sfn "$rel" "$l"
    done < <(find "$root" -type l -print0)
}

if [ -n "${PI:-}" ]; then
    command -v rsync >/dev/null || die "rsync is needed (apt-get install rsync), on the Pi too"
    [ -n "$pi_ver" ] ||
        die "cannot read $PI's libcamera version: is ssh to it working, and libcamera-dev installed? (on the Pi: sudo apt install libcamera-dev pkg-config rsync)"
    ver=$pi_ver
    # An older copy of this Pi's (before an upgrade there) is the start of the new one.
    for old in "$CACHE/pieyes-sysroot-pi-${host//[^A-Za-z0-9._-]/_}-"*; do
        [ -d "$old" ] && [ "$old" != "$dest" ] && [ ! -e "$dest" ] && mv "$old" "$dest"
    done
    log "$PI has libcamera $ver; copying its headers and libraries into $dest (rsync)"
    mkdir -p "$dest"
    # --relative keeps the paths; --copy-unsafe-links would copy the Pi's absolute symlinks as
    # files, so keep them as links and fix them up below, as for the Debian sysroot.
    # Only what exists there (a Lite image has no /usr/lib/gcc: the cross compiler's own is used).
    srcs=()
    for d in $(ssh "${ssh_opts[@]}" "$PI" 'for d in /usr/include /usr/lib/aarch64-linux-gnu /usr/lib/gcc/aarch64-linux-gnu /usr/share/pkgconfig /usr/lib/ld-linux-aarch64.so.1; do [ -e "$d" ] && echo "$d"; done'); do
        srcs+=("$PI:$d")
    done
    rsync -a --delete --relative -e "ssh ${SSH_OPTS:-}" "${srcs[@]}" "$dest/" || die "rsync from $PI failed"
    fixup "$dest"
    echo "$ver" >"$dest/.libcamera-version"
    echo "$dest"
    exit 0
fi

if [ -f "$dest/.complete" ]; then
    log "cached: $dest ($(cat "$dest/.libcamera-version"))"
    echo "$dest"
    exit 0
fi
# One build at a time (two makes at once would replace each other's sysroot under a running
# build); whoever waited finds it built.
mkdir -p "$CACHE"
exec 9>"$CACHE/.pieyes-sysroot.lock"
flock 9
if [ -f "$dest/.complete" ]; then
    log "built meanwhile: $dest"
    echo "$dest"
    exit 0
fi

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "needs apt-get and dpkg-deb (Debian or Ubuntu)"
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
t0=$(date +%s)
work=$(mktemp -d "$CACHE/pieyes-sysroot-tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
apt=$work/apt
mkdir -p "$apt"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
    "$apt"/var/lib/apt/lists/partial "$apt"/var/cache/apt/archives/partial "$apt"/var/lib/dpkg
: >"$apt/var/lib/dpkg/status"
: >"$apt/apt.conf"
{
    echo "deb [arch=arm64 signed-by=$keyring] $MIRROR $SUITE main"
    [ -z "$BACKPORTS" ] || echo "deb [arch=arm64 signed-by=$keyring] $MIRROR $BACKPORTS main"
} >"$apt/etc/apt/sources.list"
# A private apt: its own lists, an empty dpkg status (so it resolves the whole dependency closure),
# arm64 only; the host's apt configuration and state are not read or touched.
aptget() {
    APT_CONFIG=$apt/apt.conf apt-get -q -o Dir="$apt" -o Dir::State::status="$apt/var/lib/dpkg/status" \
        -o Debug::NoLocking=1 -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
        -o APT::Install-Recommends=0 -o APT::Sandbox::User=root "$@"
}
log "resolving $PACKAGES (arm64, $SUITE${BACKPORTS:+ + $BACKPORTS})"
aptget update >&2 || die "apt-get update of the arm64 lists failed"
read -r -a packages <<<"$PACKAGES"
aptget install -y --download-only ${BACKPORTS:+-t "$BACKPORTS"} "${packages[@]}" >&2 ||
    die "could not resolve/download $PACKAGES for arm64"
root=$work/root
mkdir -p "$root"
n=0
for deb in "$apt"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$root"
    n=$((n + 1))
done
fixup "$root"
ver=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/aarch64-linux-gnu/pkgconfig:$root/usr/share/pkgconfig \
    pkg-config --modversion libcamera) || die "the sysroot has no libcamera.pc"
echo "$ver" >"$root/.libcamera-version"
for deb in "$apt"/var/cache/apt/archives/*.deb; do basename "$deb"; done >"$root/.debs"
touch "$root/.complete"
# Replace any older sysroot of ours (another key) and move the new one in place.
for old in "$CACHE"/pieyes-sysroot-[0-9a-f]*; do
    [ -d "$old" ] && [ "$old" != "$dest" ] && rm -rf "$old"
done
rm -rf "$dest"
mv "$root" "$dest"
log "built $dest: libcamera $ver, $n packages, $(du -sh "$dest" | cut -f1), $(($(date +%s) - t0)) s"
echo "$dest"
