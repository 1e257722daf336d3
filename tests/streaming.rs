//! End to end against the real daemon with the synthetic stereo camera: HTTP, both eyes' H.264
//! checked by ffprobe/ffmpeg, stamps read back from decoded pixels, crops that really move the
//! view, and a clean shutdown.

mod common;

use std::time::Duration;

use common::*;
use pieyes::camera::scene::Scene;
use pieyes::camera::stamp::{self, Stamp};
use pieyes::camera::{I420Layout, Rect, Size};

#[test]
fn serves_the_viewer_status_and_http_errors() {
    let d = Daemon::start(SMALL);
    let (st, head, body) = http_get(d.addr, "/");
    assert_eq!(st, 200);
    assert!(head.contains("Content-Type: text/html"));
    assert!(String::from_utf8_lossy(&body).contains("viewer.js"));
    let (st, head, _) = http_get(d.addr, "/viewer.js");
    assert_eq!(st, 200);
    assert!(head.contains("Content-Type: text/javascript"));
    let (st, head, body) = http_get(d.addr, "/status");
    assert_eq!(st, 200);
    assert!(head.contains("application/json"));
    let status = parse_json(&String::from_utf8_lossy(&body));
    assert_eq!((status["eyes"][0]["eye"].as_u64(), status["eyes"][1]["eye"].as_u64()), (Some(0), Some(1)), "{status}");
    assert_eq!(http_get(d.addr, "/nope.txt").0, 404);
    assert_eq!(http_get(d.addr, "/../Cargo.toml").0, 400);
    assert_eq!(http_get(d.addr, "/%2e%2e/Cargo.toml").0, 400);
    assert_eq!(http_get(d.addr, "/cam0").0, 426, "a plain GET of a WebSocket endpoint");
    let post = http_raw(d.addr, b"POST / HTTP/1.1\r\nHost: localhost\r\n\r\n", Duration::from_secs(5));
    assert_eq!(split_response(&post).0, 405);
    let big = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(split_response(&http_raw(d.addr, big.as_bytes(), Duration::from_secs(5))).0, 431);
    // (0x16 first would be a TLS handshake: tests/tls.rs refuses bad ones)
    let garbage = http_raw(d.addr, b"\x17\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n", Duration::from_secs(5));
    assert_eq!(split_response(&garbage).0, 400);
    // Keep-alive: two pipelined requests on one connection, two responses.
    let two = http_raw(
        d.addr,
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\nGET /stamp.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&two);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    // And after all that the daemon still streams.
    let (_, units) = collect_units(d.addr, 1, 3);
    assert_eq!(units.len(), 3);
}

#[test]
fn both_eyes_stream_constrained_baseline_h264_with_readable_stamps() {
    let d = Daemon::start(&[]);
    let addr = d.addr;
    let handles: Vec<_> = (0..2u8).map(|eye| std::thread::spawn(move || (eye, collect_units(addr, eye, 60)))).collect();
    let dir = TempDir::new("stream");
    for h in handles {
        let (eye, (hello, units)) = h.join().unwrap();
        let hello = parse_json(&hello);
        assert_eq!(
            (hello["type"].as_str(), hello["eye"].as_u64(), hello["width"].as_u64(), hello["height"].as_u64()),
            (Some("hello"), Some(eye as u64), Some(960), Some(1080)),
            "{hello}"
        );
        assert!(units[0].header.keyframe, "a viewer starts on a keyframe");
        assert!(units.iter().all(|u| u.header.eye == eye));
        for w in units.windows(2) {
            assert!(w[1].header.sequence > w[0].header.sequence, "sequence increases");
        }
        let path = dir.0.join(format!("eye{eye}.h264"));
        write_h264(&path, &units);
        let (profile, w, h, level) = ffprobe(&path);
        assert_eq!((profile.as_str(), w, h), ("Constrained Baseline", 960, 1080), "eye {eye}");
        assert!(level >= 32, "960x1080 needs level 3.2 or above, got {level}");
        assert_every_stamp_is_its_header(&path, &units, Size { w: 960, h: 1080 }, &format!("eye {eye}"));
    }
}

/// `path` (the H.264 of `units`) decodes by ffmpeg to one picture per unit, and each picture's
/// stamp reads back as its unit's wire header: eye, sequence, capture time and crop. A repeated
/// stamp (the encoder skipped the stamp's macroblocks) would show here.
fn assert_every_stamp_is_its_header(path: &std::path::Path, units: &[Unit], size: Size, what: &str) {
    let frames = decode_i420(path, size.w, size.h);
    assert_eq!(frames.len(), units.len(), "{what}: one decoded picture per access unit");
    for (f, u) in frames.iter().zip(units) {
        let s = Stamp::read(f, size.w, size.w as usize)
            .unwrap_or_else(|| panic!("{what} seq {}: stamp unreadable", u.header.sequence));
        assert_eq!(
            (s.eye, s.sequence, s.capture_us, s.crop),
            (u.header.eye, u.header.sequence, u.header.capture_us, u.header.crop),
            "{what}"
        );
    }
}

/// The `disable_deblocking_filter_idc` of every slice header in `path`, as ffmpeg's
/// `trace_headers` reads them.
fn deblocking_idcs(path: &std::path::Path) -> Vec<u32> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(path)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed by `make test`");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(" disable_deblocking_filter_idc "))
        .map(|l| l.rsplit("= ").next().unwrap().trim().parse().expect("an idc"))
        .collect()
}

#[test]
fn deblock_off_turns_the_loop_filter_off_in_every_slice_and_the_stamps_still_read() {
    let dir = TempDir::new("deblock");
    for (flags, want) in [(&[][..], 0), (&["--deblock", "off"][..], 1)] {
        let d = Daemon::start(&[&["--size", "480x540"], flags].concat());
        let (_, units) = collect_units(d.addr, 0, 12);
        let path = dir.0.join(format!("deblock-{want}.h264"));
        write_h264(&path, &units);
        let idcs = deblocking_idcs(&path);
        assert!(idcs.len() >= units.len(), "{flags:?}: {} slice headers for {} pictures", idcs.len(), units.len());
        assert!(idcs.iter().all(|&i| i == want), "{flags:?}: disable_deblocking_filter_idc {idcs:?}, want all {want}");
        assert_every_stamp_is_its_header(&path, &units, Size { w: 480, h: 540 }, &format!("{flags:?}"));
    }
}

#[test]
fn small_keyframes_stay_within_a_three_frame_vbv_and_their_stamps_read() {
    // 480x540 at 1.5 Mbit/s: a full IDR of the synthetic scene is ~60 kB, several times the
    // 18.75 kB that three frame intervals carry; `--keyframe-size small` holds each to its budget
    // of two mean frames: the first ones by the top QP, the later ones by the last one's size.
    // (10 fps under an emulator, at the same bits per frame.)
    let fps: u32 = if emulated() { 10 } else { 30 };
    let bitrate = 50_000 * fps;
    let cap = (3 * bitrate / fps / 8) as usize;
    let dir = TempDir::new("keyframes");
    for (size, small) in [("full", false), ("small", true)] {
        let (fps_s, bitrate_s) = (fps.to_string(), bitrate.to_string());
        let args =
            ["--size", "480x540", "--bitrate", &bitrate_s, "--gop", "1", "--fps", &fps_s, "--keyframe-size", size];
        let d = Daemon::start(&args);
        // The keyframe a new viewer gets, then two periodic ones, a GOP (1 s) apart.
        let (_, units) = collect_units(d.addr, 0, 2 * fps as usize + 5);
        let idrs: Vec<usize> = units.iter().filter(|u| u.header.keyframe).map(|u| u.annexb.len()).collect();
        assert!(idrs.len() >= 3, "{size}: {} keyframes in {} frames", idrs.len(), units.len());
        let largest = *idrs.iter().max().unwrap();
        if small {
            assert!(largest <= cap, "{size}: keyframes {idrs:?} bytes, a 3-frame VBV is {cap}");
        } else {
            assert!(largest > cap, "{size}: keyframes {idrs:?} bytes are already within {cap}: the test shows nothing");
        }
        let path = dir.0.join(format!("{size}.h264"));
        write_h264(&path, &units);
        assert_every_stamp_is_its_header(&path, &units, Size { w: 480, h: 540 }, size);
    }
}

#[test]
fn crop_over_the_control_socket_moves_the_visible_region() {
    let (sensor, out) = (Size { w: 1152, h: 648 }, Size { w: 480, h: 540 });
    // Under an emulator (`make aarch64`: qemu) 30 fps is more than the machine keeps up with: late
    // capture wake-ups skip ticks and the encoder drops frames, and the queued requests that still
    // carry the old crop then fill later sequences than the reply predicted. 10 fps keeps up, and
    // nothing checked here depends on the rate.
    let fps = if emulated() { "10" } else { "30" };
    let d = Daemon::start(&["--size", "480x540", "--sensor", "1152x648", "--fps", fps]);
    let mut ws = WsClient::connect(d.addr, "/cam0");
    let mut units = Vec::new();
    let mut reply = None;
    let mut target_seq = u32::MAX;
    while units.len() < 40 {
        match ws.recv() {
            Some(Msg::Binary(b)) => {
                let (h, p) = pieyes::stream::wire::VideoHeader::parse(&b).unwrap();
                units.push(Unit { header: h, annexb: p.to_vec() });
                if units.len() == 10 {
                    let r = d.ctl("crop 0 100 60 240 270");
                    target_seq = r.split_whitespace().find_map(|t| t.strip_prefix("seq=")).unwrap().parse().unwrap();
                    reply = Some(r);
                }
            }
            Some(_) => {}
            None => panic!("stream ended"),
        }
    }
    let reply = reply.unwrap();
    assert!(reply.starts_with("ok seq=") && reply.contains("crop0=100,60,240,270"), "{reply}");
    let dir = TempDir::new("crop");
    let path = dir.0.join("eye0.h264");
    write_h264(&path, &units);
    let frames = decode_i420(&path, out.w, out.h);
    let scene = Scene::new(sensor, 24);
    let layout = I420Layout::new(out);
    let new = Rect::new(100, 60, 240, 270);
    let band = stamp::band_height(out.w) as usize;
    let mut first_new = None;
    for (f, u) in frames.iter().zip(&units) {
        let s = Stamp::read(f, out.w, out.w as usize).expect("stamp");
        // What the pixels show must be the scene through the crop the stamp names…
        let mut expect = vec![0u8; layout.frame_len()];
        scene.render(0, s.capture_us, s.crop, layout, &mut expect, &mut Vec::new());
        let p = psnr(&f[..layout.y_len()], &expect[..layout.y_len()], out.w as usize, band);
        assert!(
            p > 28.0,
            "seq {}: decoded picture is not the scene through crop {:?} (PSNR {p:.1} dB)",
            s.sequence,
            s.crop
        );
        if s.crop == new && first_new.is_none() {
            first_new = Some(u.header.sequence);
            // …and not what the old crop showed.
            let mut old = vec![0u8; layout.frame_len()];
            scene.render(0, s.capture_us, units[0].header.crop, layout, &mut old, &mut Vec::new());
            let p_old = psnr(&f[..layout.y_len()], &old[..layout.y_len()], out.w as usize, band);
            assert!(p_old < 20.0, "the new crop should look different (PSNR vs old {p_old:.1} dB)");
        }
    }
    let first_new = first_new.expect("some frame shows the new crop");
    // Natively a crop lands on the frame the reply names (tests/eyes.rs holds that exactly);
    // under qemu a late wake-up still lets a request planned with the old crop fill a later
    // sequence now and then, so the landing is judged loosely there: that it lands, not when.
    let late = if emulated() { 8 } else { 2 };
    assert!(
        first_new >= target_seq && first_new <= target_seq + late,
        "crop landed on {first_new}, reply said {target_seq}"
    );
    assert!(units.iter().filter(|u| u.header.sequence >= first_new).all(|u| u.header.crop == new));
}

#[test]
fn control_language_over_unix_socket_and_websocket_rejects_garbage() {
    let d = Daemon::start(SMALL);
    assert!(d.ctl("help").starts_with("ok look"));
    assert!(d.status()["eyes"].is_array());
    assert_eq!(d.ctl("keyframe"), "ok keyframe");
    assert!(d.ctl("clock").starts_with("ok clock="));
    for (line, code) in [
        ("fly", "err unknown-command"),
        ("crop 0 1 2", "err usage"),
        ("crop 3 0 0 64 64", "err bad-eye"),
        ("crop 0 0 0 NaN 64", "err bad-number"),
        ("crop 0 0 0 1e99 64", "err bad-number"),
        ("", "err empty"),
    ] {
        assert!(d.ctl(line).starts_with(code), "{line:?} → {}", d.ctl(line));
    }
    // One connection: a 1 MB line, binary garbage, then a good command — all answered in order.
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.control).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    s.write_all(&big).unwrap();
    s.write_all(b"\xff\xfe\x00garbage\n").unwrap();
    s.write_all(b"crop both 0 0 320 360\n").unwrap();
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        lines.push(l.trim_end().to_string());
    }
    assert!(lines[0].starts_with("err too-long"), "{lines:?}");
    assert!(lines[1].starts_with("err encoding"), "{lines:?}");
    assert!(lines[2].starts_with("ok seq=") && lines[2].contains("crop0=0,0,320,360 crop1=0,0,320,360"), "{lines:?}");
    // The same language over the /control WebSocket.
    let mut ws = WsClient::connect(d.addr, "/control");
    assert!(ws.command("status").starts_with("ok {"));
    assert!(ws.command("nonsense").starts_with("err unknown-command"));
    assert!(ws.command("crop 1 10 10 100 100").contains("crop1=10,10,100,100"));
}

#[test]
fn sigterm_closes_viewers_with_1001_and_removes_the_socket() {
    let mut d = Daemon::start(SMALL);
    let mut ws = WsClient::connect(d.addr, "/cam1");
    assert!(matches!(ws.recv(), Some(Msg::Text(_))));
    assert!(d.control.exists());
    d.signal(libc::SIGTERM);
    let code = loop {
        match ws.recv() {
            Some(Msg::Close(c)) => break c,
            Some(_) => continue,
            None => panic!("connection dropped without a close frame"),
        }
    };
    assert_eq!(code, Some(1001));
    let st = d.wait_exit(Duration::from_secs(10)).expect("daemon exits");
    assert!(st.success(), "exit status {st:?}");
    assert!(!d.control.exists(), "control socket removed");
    assert!(d.log().contains("SIGTERM: shutting down"));
}

/// The next video header from a viewer socket (text messages skipped).
fn next_header(ws: &mut WsClient) -> pieyes::stream::wire::VideoHeader {
    loop {
        match ws.recv() {
            Some(Msg::Binary(b)) => return pieyes::stream::wire::VideoHeader::parse(&b).expect("header").0,
            Some(_) => continue,
            None => panic!("stream ended"),
        }
    }
}

#[test]
fn a_viewer_that_lost_its_place_gets_a_keyframe_when_it_asks() {
    // A 20 s GOP: any keyframe after the first is one that was asked for.
    let d = Daemon::start(&small(&["--gop", "20"]));
    let mut ws = WsClient::connect(d.addr, "/cam1");
    let first = next_header(&mut ws);
    assert!(first.keyframe, "a new viewer starts on a keyframe");
    // 700 ms of frames (by their capture times): past the gate's 500 ms since that forced IDR,
    // and no keyframe in between — not even a second one for the same join.
    let mut seen = vec![(first.sequence, first.keyframe)];
    loop {
        let h = next_header(&mut ws);
        seen.push((h.sequence, h.keyframe));
        assert!(!h.keyframe, "no keyframe unasked: {seen:?}");
        if h.capture_us >= first.capture_us + 700_000 {
            break;
        }
    }
    ws.send_text("keyframe");
    let after: Vec<_> = (0..10).map(|_| next_header(&mut ws)).collect();
    let key = after.iter().position(|h| h.keyframe);
    assert!(
        key.is_some_and(|k| k < 5),
        "a keyframe within 5 frames of asking: {:?}",
        after.iter().map(|h| (h.sequence, h.keyframe)).collect::<Vec<_>>()
    );
    assert!(d.wait_log("asks eye 1 for a keyframe", Duration::from_secs(5)), "{}", d.log());
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    let out = pieyes_command().args(["--fps", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fps"));
    let out = pieyes_command().arg("--help").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pieyes ctl"));
}

#[test]
fn metrics_parse_back_as_prometheus_text() {
    let d = Daemon::start(SMALL);
    let units = Recorder::start(d.addr, 0);
    // Until both eyes have a few frames (slow under an emulator), then read /metrics.
    let encoded = |eye| u64_at(eye_status(&d.status(), eye), "frames");
    assert!(wait_until(Duration::from_secs(60), || encoded(0) > 12 && encoded(1) > 12), "{}", d.status());
    let _ = units.stop();
    let (st, head, body) = http_get(d.addr, "/metrics");
    assert_eq!(st, 200);
    assert!(head.contains("text/plain; version=0.0.4"));
    let text = String::from_utf8(body).unwrap();
    let samples = pieyes::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let get = |name: &str, eye: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.iter().any(|(k, v)| k == "eye" && v == eye))
            .unwrap_or_else(|| panic!("no {name}{{eye={eye}}}"))
            .2
    };
    assert!(get("pieyes_frames_encoded_total", "0") > 10.0);
    assert!(get("pieyes_frames_encoded_total", "1") > 10.0);
    assert_eq!(get("pieyes_frames_dropped_total", "0"), 0.0);
    let rss = samples.iter().find(|s| s.0 == "pieyes_resident_memory_bytes").unwrap().2;
    assert!(rss > 1e6 && rss < 500e6, "{rss}");
    for h in ["pieyes_capture_to_encoded_seconds", "pieyes_capture_to_sent_seconds", "pieyes_encoded_to_sent_seconds"] {
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| *n == format!("{h}_bucket") && l.iter().any(|(k, v)| k == "eye" && v == "0"))
            .map(|s| s.2)
            .collect();
        assert!(buckets.len() > 10, "{h}");
        assert!(buckets.windows(2).all(|w| w[1] >= w[0]), "{h} buckets are cumulative");
        assert_eq!(*buckets.last().unwrap(), get(&format!("{h}_count"), "0"), "{h}: +Inf bucket == count");
    }
    assert!(get("pieyes_capture_to_sent_seconds_count", "0") > 10.0);
}

/// The hello says the frame rate in force (after `fps`), and `status` counts every open
/// connection, the one asking included.
#[test]
fn the_hello_and_status_tell_the_state_in_force() {
    let d = Daemon::start(&["--size", "320x240", "--sensor", "640x360"]);
    let st = |d: &Daemon| d.ctl("status");
    assert!(st(&d).contains("\"clients\":1,"), "the asking connection counts: {}", st(&d));
    assert_eq!(d.ctl("fps 15"), "ok fps=15");
    let mut ws = WsClient::connect(d.addr, "/cam0");
    let hello = match ws.recv() {
        Some(Msg::Text(t)) => t,
        _ => panic!("no hello"),
    };
    assert!(hello.contains("\"fps\":15"), "{hello}");
    assert!(st(&d).contains("\"clients\":2,"), "{}", st(&d));
}
