# Host-side checks of what 10-libcamera.sh saved (run by vm/test-vm.sh with $TEST_RESULTS set to
# that test's results directory; bash, with jq, ffprobe and ffmpeg). Same PASS/FAIL/INFO lines.
T=${TEST_RESULTS:?}
fails=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
info() { echo "INFO $*"; }
need() { [ -s "$T/$1" ] || { fail "$2" "$1 is missing or empty (see the guest checks)"; return 1; }; }
jqf() { jq -r "$2" "$T/$1"; }

# --- the recorded streams: Constrained Baseline, decodable, as many frames as the eye made -----
for e in 0 1; do
  need "eye$e.h264" "eye$e-stream" || continue
  need "eye$e.json" "eye$e-stream" || continue
  probe=$(ffprobe -v error -select_streams v:0 -count_frames \
    -show_entries stream=codec_name,profile,width,height,nb_read_frames -of json "$T/eye$e.h264")
  codec=$(jq -r '.streams[0].codec_name' <<<"$probe") profile=$(jq -r '.streams[0].profile' <<<"$probe")
  decoded=$(jq -r '.streams[0].nb_read_frames' <<<"$probe")
  size="$(jq -r '.streams[0].width' <<<"$probe")x$(jq -r '.streams[0].height' <<<"$probe")"
  [ "$codec/$profile" = "h264/Constrained Baseline" ] && pass "eye$e-constrained-baseline" \
    || fail "eye$e-constrained-baseline" "codec $codec profile $profile"
  errors=$(ffmpeg -hide_banner -nostdin -v error -i "$T/eye$e.h264" -f null - 2>&1 | head -n 5)
  [ -z "$errors" ] && pass "eye$e-decodes-cleanly" || fail "eye$e-decodes-cleanly" "$errors"
  sent=$(jqf "eye$e.json" .frames) span=$(jqf "eye$e.json" .capture_span_s) secs=$(jqf "eye$e.json" .seconds)
  [ "$decoded" = "$sent" ] && pass "eye$e-all-frames-decode" || fail "eye$e-all-frames-decode" "decoded $decoded of $sent received"
  # What the eye produced while recording, from the daemon's own counters around it.
  rate=$(jq -n --slurpfile a "$T/status-start.json" --slurpfile b "$T/status-recorded.json" \
    "(\$b[0].eyes[$e].frames - \$a[0].eyes[$e].frames) / (\$b[0].uptime_s - \$a[0].uptime_s)")
  expect=$(jq -n "$rate * $secs")
  info "eye $e: $size, $sent frames in ${secs}s (capture span ${span}s); the eye encoded $(printf %.2f "$rate") fps meanwhile: expected ≈ $(printf %.0f "$expect")"
  if jq -e -n "$sent >= 10 and $sent >= 0.7 * $expect and $sent <= 1.3 * $expect + 3" >/dev/null; then
    pass "eye$e-frame-count"
  else
    fail "eye$e-frame-count" "$sent frames, expected ≈ $(printf %.0f "$expect") (≥ 10, within -30%/+30%)"
  fi
done

# --- crops: what libcamera applied is what status and the wire headers say ----------------------
if need status-crop.json crop-honest; then
  for e in 0 1; do
    sup=$(jqf status-crop.json ".eyes[$e].crop_supported") crop=$(jqf status-crop.json ".eyes[$e].crop|join(\",\")")
    sensor=$(jqf status-crop.json ".eyes[$e].sensor|join(\",\")") cam=$(jqf status-crop.json ".eyes[$e].camera")
    commanded=$(jqf status-crop.json ".state.eyes[$e].crop|join(\",\")")
    if [ "$sup" = false ]; then
      info "eye $e ($cam) ignores ScalerCrop in libcamera 0.4 (no ScalerCropMaximum): commanded $commanded, reported $crop"
      [ "$crop" = "$sensor" ] && [ "$commanded" != "$crop" ] && pass "eye$e-crop-unsupported-reported-honestly" \
        || fail "eye$e-crop-unsupported-reported-honestly" "status crop $crop, sensor $sensor, commanded $commanded"
      wire=$(jq -r '.crops|map(join(","))|unique|join(" ")' "$T/eye$e-after-crop.json" 2>/dev/null)
      [ "$wire" = "$crop" ] && pass "eye$e-wire-crop-is-the-applied-one" \
        || fail "eye$e-wire-crop-is-the-applied-one" "wire headers carried [$wire], status says $crop"
    else
      [ "$crop" = "$commanded" ] && pass "eye$e-crop-applied" || fail "eye$e-crop-applied" "status $crop, commanded $commanded"
    fi
  done
  sync=$(jqf status-crop.json .stereo.sync)
  case "$sync" in "none (software pairing by timestamp"*) true ;; *) false ;; esac && pass stereo-sync-reported || fail stereo-sync-reported "stereo.sync = $sync"
fi

# --- unplug: the other eye streamed on; status told the truth ----------------------------------
if need status-unplugged.json unplug; then
  lost=$(jq -r '[.eyes[]|select(.camera|test("vimc"))][0]' "$T/status-unplugged.json")
  other=$(jq -r '[.eyes[]|select(.camera|test("vimc")|not)][0]' "$T/status-unplugged.json")
  st=$(jq -r .camera_state <<<"$lost")
  info "while unplugged: vimc eye camera_state \"$st\", other eye \"$(jq -r .camera_state <<<"$other")\""
  [[ "$st" == *disconnected* ]] && pass unplugged-eye-says-disconnected || fail unplugged-eye-says-disconnected "camera_state \"$st\""
  if need other-unplugged.h264 other-eye-stream-while-unplugged; then
    n=$(ffprobe -v error -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$T/other-unplugged.h264")
    errors=$(ffmpeg -hide_banner -nostdin -v error -i "$T/other-unplugged.h264" -f null - 2>&1 | head -n 3)
    [ "${n:-0}" -ge 3 ] && [ -z "$errors" ] && pass other-eye-stream-while-unplugged \
      || fail other-eye-stream-while-unplugged "$n frames, errors: $errors"
  fi
fi
if need main.log logs; then
  grep -E 'disconnected|abandoned|reopen' "$T/main.log" | sed 's/^ *[0-9.]* [A-Z]* */INFO log: /' | head -n 6
fi

# --- two virtual cameras: frames paired by timestamp ------------------------------------------
if need status-pair.json stereo-pairing; then
  pairs=$(jqf status-pair.json .stereo.pairs)
  info "Virtual0+Virtual1 stereo: $(jq -c .stereo "$T/status-pair.json")"
  [ "${pairs:-0}" -gt 0 ] && pass stereo-pairs-by-timestamp || fail stereo-pairs-by-timestamp "no frames paired"
fi
[ "$fails" = 0 ]
