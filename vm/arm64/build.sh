#!/usr/bin/env bash
# Builds (idempotently) and caches the arm64 test guest: Debian trixie's arm64 kernel, the
# modules it needs (virtio-net; vimc, cross-built, since Debian's kernel lacks it), busybox as
# init, in an initramfs. No root filesystem: the run adds the binary and its libraries as a
# second cpio (vm/arm64/test.sh). Prints the guest dir (vmlinuz, base.cpio, info). See vm/NOTES.md.
# Cache: ${PIEYES_VM_ARM64_CACHE:-$HOME/.cache/pieyes-vm-arm64}; each stage in a dir named by
# the hash of its inputs, superseded ones pruned:
#   debs-<key>    the .debs (private apt, as dist/sysroot.sh) unpacked: kernel + modules, arm64
#                 headers, the amd64 kbuild tools, busybox-static   key: config.env + this file
#   vimc-<key>    vimc.ko cross-built in vm/'s trixie chroot         key: debs + K + chroot + build-vimc.sh
#   guest-<key>   vmlinuz + base.cpio                                key: debs + vimc + init.sh
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
A_DIR=$VM_DIR/arm64
ACACHE=${PIEYES_VM_ARM64_CACHE:-$HOME/.cache/pieyes-vm-arm64}

need_root
need_host_pkgs apt-get:apt dpkg-deb:dpkg cpio:cpio xz:xz-utils modinfo:kmod depmod:kmod flock:util-linux
mkdir -p "$ACACHE"
exec 8>"$ACACHE/.lock"
flock 8 || die "cannot lock $ACACHE/.lock"
T0=$(now)
ENV_ID="$PIEYES_VM_SUITE $PIEYES_VM_MIRROR"

# --- debs: a private apt (own lists, empty dpkg status, nothing installed on the host) ---
KEY_DEBS=$(key_of "arm64-debs $ENV_ID" "$A_DIR/build.sh")
DEBS=$ACACHE/debs-$KEY_DEBS
stage_debs() {
  local out=$1 apt=$1.tmp/apt root=$1.tmp/root keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
  rm -rf "$out.tmp"
  mkdir -p "$apt"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
    "$apt"/var/lib/apt/lists/partial "$apt"/var/cache/apt/archives/partial "$apt"/var/lib/dpkg "$root"
  : >"$apt/var/lib/dpkg/status"; : >"$apt/apt.conf"
  echo "deb [arch=arm64,amd64 signed-by=$keyring] $PIEYES_VM_MIRROR $PIEYES_VM_SUITE main" >"$apt/etc/apt/sources.list"
  aptq() { local t=$1; shift; APT_CONFIG=$apt/apt.conf "$t" -q -o Dir="$apt" -o Dir::State::status="$apt/var/lib/dpkg/status" \
    -o Debug::NoLocking=1 -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Architectures::=amd64 \
    -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false "$@"; }
  aptq apt-get update >"$out.log" 2>&1 || { tail -n 20 "$out.log" >&2; die "apt-get update (arm64 lists) failed"; }
  # The kernel the metapackage points at, and the kbuild tools of its headers (amd64: they run
  # in the build chroot; the headers are arch-independent text + arm64 config).
  local k kb
  k=$(aptq apt-cache depends linux-image-arm64 | sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n1)
  [ -n "$k" ] || die "cannot resolve linux-image-arm64 in $PIEYES_VM_SUITE"
  kb=$(aptq apt-cache depends "linux-headers-$k" | sed -n 's/^ *Depends: \(linux-kbuild-.*\)$/\1/p' | head -n1)
  [ -n "$kb" ] || die "cannot resolve the kbuild package of linux-headers-$k"
  local common
  common=$(aptq apt-cache depends "linux-headers-$k" | sed -n 's/^ *Depends: \(linux-headers-.*-common\)$/\1/p' | head -n1)
  log "arm64 debs: kernel $k, $common, $kb:amd64, busybox-static"
  (cd "$apt/var/cache/apt/archives" && aptq apt-get download "linux-image-$k" "linux-headers-$k" "$common" \
    "$kb:amd64" busybox-static) >>"$out.log" 2>&1 || { tail -n 20 "$out.log" >&2; die "downloading the arm64 debs failed"; }
  local deb
  for deb in "$apt"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root"; basename "$deb"; done >"$root/.debs"
  echo "$k" >"$root/KERNEL"
  # modules.dep is made by depmod when the package is installed: make it here (kmod reads any
  # architecture's modules); -b looks in BASE/lib/modules.
  [ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
  depmod -b "$root" "$k" || die "depmod for $k failed"
  if [ ! -f "$root/boot/vmlinuz-$k" ] || [ ! -d "$root/usr/lib/modules/$k" ] || [ ! -x "$root/usr/bin/busybox" ]; then
    die "the arm64 debs lack vmlinuz, modules or busybox"
  fi
  mv "$root" "$out"; rm -rf "$out.tmp"
}
if [ ! -d "$DEBS" ]; then
  log "arm64 debs: fetching into $DEBS"; t=$(now); stage_debs "$DEBS"; log "arm64 debs: done in $(since "$t")"
else log "arm64 debs: cached ($DEBS)"; fi
K=$(cat "$DEBS/KERNEL")
KBUILD=$(cd "$DEBS/usr/lib" && echo linux-kbuild-*)
COMMON=$(cd "$DEBS/usr/src" && echo linux-headers-*-common)

# --- vimc, cross-built for K in vm/'s trixie chroot (Debian's arm64 kernel has vivid, not vimc) ---
CHROOT=$("$VM_DIR/build.sh" --chroot-only)
KEY_VIMC=$(key_of "arm64-vimc $KEY_DEBS $K $(basename "$CHROOT")" "$A_DIR/build-vimc.sh")
VIMC=$ACACHE/vimc-$KEY_VIMC
if [ ! -d "$VIMC" ]; then
  log "vimc: cross-building for $K"; t=$(now)
  rm -rf "$VIMC.tmp"; mkdir -p "$VIMC.tmp"
  in_chroot "$CHROOT" "$A_DIR:/pieyes-arm64:ro" "$VIMC.tmp:/out" \
    "$DEBS/usr/src/linux-headers-$K:/usr/src/linux-headers-$K:ro" "$DEBS/usr/src/$COMMON:/usr/src/$COMMON:ro" \
    "$DEBS/usr/lib/$KBUILD:/usr/lib/$KBUILD:ro" -- \
    /pieyes-arm64/build-vimc.sh "$K" "$PIEYES_VM_LINUX_SERIES" /out >"$VIMC.log" 2>&1 \
    || { tail -n 40 "$VIMC.log" >&2; die "vimc cross-build failed (log: $VIMC.log)"; }
  [ -f "$VIMC.tmp/vimc.ko" ] || die "vimc.ko missing after the build (log: $VIMC.log)"
  mv "$VIMC.tmp" "$VIMC"; log "vimc: done in $(since "$t")"
else log "vimc: cached ($VIMC)"; fi

# --- guest: vmlinuz + an initramfs of busybox, init and the modules in load order ---
KEY_GUEST=$(key_of "arm64-guest $KEY_DEBS $KEY_VIMC $K" "$A_DIR/init.sh")
GUEST=$ACACHE/guest-$KEY_GUEST
stage_guest() {
  local out=$1 r=$1.tmp/root mods=$DEBS/usr/lib/modules/$K seen=" " order=()
  rm -rf "$out.tmp"; mkdir -p "$r"/{bin,dev,proc,sys,tmp,run,etc,modules}
  # modules.dep lists each module's dependencies, transitively: load those first.
  want() {
    local rel=$1 d
    case "$seen" in *" $rel "*) return 0 ;; esac
    for d in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$mods/modules.dep"); do want "$d"; done
    seen="$seen$rel "; order+=("$rel")
  }
  local m path dep
  want "$(awk -F: '$1 ~ /\/virtio_net\.ko/ { print $1 }' "$mods/modules.dep")"
  for dep in $(modinfo -F depends "$VIMC/vimc.ko" | tr , ' '); do
    path=$(awk -F: -v n="/$dep.ko" 'index($1, n) { print $1; exit }' "$mods/modules.dep")
    [ -n "$path" ] || die "vimc needs $dep, which $K does not have"
    want "$path"
  done
  for m in "${order[@]}"; do
    case "$m" in
      *.xz) xz -dc "$mods/$m" >"$r/modules/$(basename "${m%.xz}")" ;;
      *) cp "$mods/$m" "$r/modules/" ;;
    esac
    basename "${m%.xz}"
  done >"$r/etc/modules"
  cp "$VIMC/vimc.ko" "$r/modules/"; echo vimc.ko >>"$r/etc/modules"
  cp "$DEBS/usr/bin/busybox" "$r/bin/busybox"
  install -m 0755 "$A_DIR/init.sh" "$r/init"
  (cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out.tmp/base.cpio"
  cp "$DEBS/boot/vmlinuz-$K" "$out.tmp/vmlinuz"
  { echo "KERNEL=$K"; echo "MODULES=$(tr '\n' ' ' <"$r/etc/modules")"; } >"$out.tmp/info"
  rm -rf "$r"; mv "$out.tmp" "$out"
}
if [ ! -d "$GUEST" ]; then
  log "guest: assembling $GUEST"; t=$(now); stage_guest "$GUEST"; log "guest: done in $(since "$t")"
else log "guest: cached ($GUEST)"; fi

if [ "${PIEYES_VM_KEEP_OLD:-0}" != 1 ]; then
  for d in "$ACACHE"/debs-* "$ACACHE"/vimc-* "$ACACHE"/guest-*; do
    [ -e "$d" ] || continue
    case "$d" in "$DEBS"*|"$VIMC"*|"$GUEST"*) continue ;; esac
    log "pruning superseded $d"; rm -rf "$d"
  done
fi
log "arm64 guest: kernel $K; keys debs=$KEY_DEBS vimc=$KEY_VIMC guest=$KEY_GUEST; total $(since "$T0")"
echo "$GUEST"
