# 10-libcamera.sh again, with pieyes built against backports' libcamera (0.7 today: the minor
# Raspberry Pi OS trixie ships) and run with that libcamera: its libraries first on the loader's
# path, its IPA modules, their proxies and tuning files on libcamera's own paths. trixie's 0.4
# stays installed in the guest; nothing here may reach it.
L=${PAYLOAD_DIR:-/payload}/libcamera-backports
export PATH="$L/bin:$PATH"
export LD_LIBRARY_PATH="$L/usr/lib/x86_64-linux-gnu"
export LIBCAMERA_IPA_MODULE_PATH="$L/usr/lib/x86_64-linux-gnu/libcamera/ipa"
export LIBCAMERA_IPA_PROXY_PATH="$L/usr/libexec/x86_64-linux-gnu/libcamera"
export LIBCAMERA_IPA_CONFIG_PATH="$L/usr/share/libcamera/ipa"
. "$(dirname "$0")/lib.sh"
# 10-libcamera.sh lists the cameras with `cam -l` for its notes: that is trixie's cam, built on
# 0.4, which must not see these paths (given 0.7's IPA modules, its vimc IPA proxy segfaults).
cam() { env -u LD_LIBRARY_PATH -u LIBCAMERA_IPA_MODULE_PATH -u LIBCAMERA_IPA_PROXY_PATH -u LIBCAMERA_IPA_CONFIG_PATH cam "$@"; }
v=$(cat "$L/version")
# The binary is linked against backports' libcamera and loads it from the payload, not trixie's.
lib=$(ldd "$L/bin/pieyes" | awk '$1 ~ /^libcamera\.so/ { print $1 " " $3 }')
info "libcamera $v: pieyes loads ${lib:-no libcamera}"
check linked-against-backports-libcamera "loads ${lib:-no libcamera}, not from $L" \
  eval '[ -n "$lib" ] && [ "${lib#* "$L"/}" != "$lib" ]'
check no-unresolved-libraries "$(ldd "$L/bin/pieyes" | grep 'not found' | tr '\n' ' ')" \
  eval "! ldd '$L/bin/pieyes' | grep -q 'not found'"
echo "$v" >"$T/libcamera-version"
. "$(dirname "$0")/10-libcamera.sh"
