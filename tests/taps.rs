//! Frame taps against the real daemon over the real control socket: fds by SCM_RIGHTS mapped
//! read-only, the stamp read from the pixels agreeing with the line, a held frame that stalls
//! no viewer and is disconnected after the timeout, `every`, `size`, and clear errors.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use pieyes::camera::stamp::Stamp;
use pieyes::camera::{FrameLayout, Size};
use pieyes::cli::tap_client::{TapClient, TapMsg};
use pieyes::sys::shm::Mapping;

fn tap(d: &Daemon, cmd: &str) -> TapClient {
    let mut t = TapClient::connect(&d.control).expect("connect");
    t.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.send(cmd).unwrap();
    let r = t.reply().unwrap();
    assert!(r.starts_with("ok tap"), "{cmd}: {r}");
    t
}

/// The next frame: its line parsed, its fd.
fn frame(t: &mut TapClient) -> (Value, OwnedFd) {
    loop {
        match t.next_msg().expect("a frame") {
            TapMsg::Frame(line, fd) => return (parse_json(&line), fd),
            TapMsg::Reply(r) => assert!(r.starts_with("ok release"), "{r}"),
        }
    }
}

fn layout_of(v: &Value) -> FrameLayout {
    let arr = |k: &str| -> [usize; 3] {
        let a: Vec<usize> = v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        [a[0], a[1], a[2]]
    };
    assert_eq!(v["format"], "I420");
    FrameLayout {
        format: pieyes::camera::PixelFormat::I420,
        width: u64_at(v, "width") as u32,
        height: u64_at(v, "height") as u32,
        offsets: arr("offset"),
        strides: arr("stride"),
    }
}

#[test]
fn frames_come_with_fds_whose_pixels_carry_the_stamp_the_line_names() {
    let d = Daemon::start(SMALL);
    let mut t = tap(&d, "tap both");
    let mut seen = [0u32; 2];
    let mut last = [None::<u64>; 2];
    while seen.iter().any(|&n| n < 20) {
        let (v, fd) = frame(&mut t);
        let eye = u64_at(&v, "eye") as usize;
        let seq = u64_at(&v, "seq");
        assert_eq!((u64_at(&v, "width"), u64_at(&v, "height")), (320, 240));
        assert_eq!(v["scaled"], false);
        let l = layout_of(&v);
        assert_eq!(u64_at(&v, "size") as usize, l.len());
        assert!(Mapping::new(fd.as_fd(), l.len(), 0).is_err(), "the fd maps read-only only");
        let m = Mapping::read_only(fd.as_fd(), l.len()).expect("mmap");
        let stamp = Stamp::read(l.plane(m.as_slice(), 0), l.width, l.strides[0]).expect("a stamp in the pixels");
        assert_eq!((stamp.eye as usize, stamp.sequence as u64), (eye, seq), "{v}");
        assert_eq!(stamp.capture_us, u64_at(&v, "capture_us"));
        let crop: Vec<u64> = v["crop"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(crop, [stamp.crop.x, stamp.crop.y, stamp.crop.w, stamp.crop.h].map(u64::from));
        assert!(last[eye].is_none_or(|p| seq > p), "sequences grow");
        last[eye] = Some(seq);
        seen[eye] += 1;
        drop(m);
        t.send(&format!("release {seq} {eye}")).unwrap();
    }
    let st = d.status();
    let taps = st["taps"].as_array().unwrap();
    assert_eq!(taps.len(), 1, "{st}");
    assert!(u64_at(&st, "clients") >= 2, "the tap is a client: {st}");
    assert!(taps[0]["sent"][0].as_u64().unwrap() >= 20);
    let (_, _, metrics) = http_get(d.addr, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("pieyes_taps 1"), "{metrics}");
    assert!(metrics.contains("pieyes_tap_frames_skipped_total{eye=\"0\"}"));
    t.send("untap").unwrap();
    let r = loop {
        match t.reply().unwrap() {
            r if r.starts_with("ok release") => continue,
            r => break r,
        }
    };
    assert!(r.starts_with("ok untap released="), "{r}");
    assert!(wait_until(Duration::from_secs(5), || d.status()["taps"].as_array().unwrap().is_empty()));
}

#[test]
fn a_held_frame_stalls_no_viewer_skips_the_tap_and_a_stuck_tap_is_dropped() {
    let d = Daemon::start(SMALL);
    // Every tap there may be, each holding one frame of each eye and releasing nothing.
    let mut taps: Vec<TapClient> = (0..pieyes::limits::MAX_TAPS).map(|_| tap(&d, "tap both")).collect();
    let mut held = Vec::new();
    for t in &mut taps {
        for _ in 0..2 {
            held.push(frame(t));
        }
    }
    let before = d.status();
    let rec = Recorder::start(d.addr, 0);
    assert!(rec.wait_for_more(20, Duration::from_secs(10)), "the viewer gets frames while every tap holds some");
    let after = d.status();
    for eye in 0..2 {
        let (a, b) = (eye_status(&after, eye), eye_status(&before, eye));
        let captured = u64_at(a, "captured") - u64_at(b, "captured");
        let starved = u64_at(a, "camera_starved") - u64_at(b, "camera_starved");
        // (Zero by construction; a loaded machine's late loop may still miss the odd tick.)
        assert!(starved * 10 <= captured, "eye {eye}: the camera is not starved: {starved} of {captured}");
        assert!(u64_at(a, "frames") >= u64_at(b, "frames") + 10, "eye {eye} still encodes: {a}");
    }
    let skipped: u64 = after["taps"][0]["skipped"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert!(skipped > 0, "the holding tap is skipped: {after}");
    // Past the hold limit each is disconnected; the viewer streams on.
    let t0 = Instant::now();
    for t in &mut taps {
        match t.next_msg() {
            Ok(TapMsg::Frame(..)) => panic!("a tap holding frames is sent no more"),
            Ok(TapMsg::Reply(r)) => panic!("{r}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}"),
        }
    }
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(8), "dropped after the hold limit, not much later: {waited:?}");
    assert!(d.wait_log("tap held a frame too long", Duration::from_secs(5)));
    assert!(rec.wait_for_more(10, Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(5), || d.status()["taps"].as_array().unwrap().is_empty()));
    // Their buffers went home: a new tap gets frames at once.
    let mut t = tap(&d, "tap 1");
    let (v, _) = frame(&mut t);
    assert_eq!(u64_at(&v, "eye"), 1);
    drop(held);
}

#[test]
fn every_n_and_size_give_fewer_and_smaller_frames() {
    let d = Daemon::start(SMALL);
    let mut full = tap(&d, "tap 0");
    let mut small = tap(&d, "tap 0 every 2 size 160x120");
    let out = Size { w: 160, h: 120 };
    let mut compared = 0;
    let mut pending = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(20);
    while compared < 5 {
        assert!(Instant::now() < end, "no frame both taps saw");
        let (v, fd) = frame(&mut small);
        let seq = u64_at(&v, "seq");
        assert_eq!(seq % 2, 0, "every 2: even sequences only");
        assert_eq!((u64_at(&v, "width"), u64_at(&v, "height"), v["scaled"].as_bool()), (160, 120, Some(true)));
        let l = layout_of(&v);
        assert_eq!(l, FrameLayout::i420(out));
        let copy = Mapping::read_only(fd.as_fd(), l.len()).unwrap().as_slice().to_vec();
        small.send(&format!("release {seq}")).unwrap();
        // The full frame of that sequence from the other tap, downscaled here, is the same.
        while !pending.contains_key(&seq) {
            let (fv, ffd) = frame(&mut full);
            let fseq = u64_at(&fv, "seq");
            let fl = layout_of(&fv);
            let m = Mapping::read_only(ffd.as_fd(), fl.len()).unwrap();
            let mut mine = vec![0u8; l.len()];
            assert!(pieyes::tap::scale::to_i420(&fl, m.as_slice(), out, &mut mine));
            pending.insert(fseq, mine);
            full.send(&format!("release {fseq}")).unwrap();
            if fseq > seq {
                break;
            }
        }
        if let Some(mine) = pending.get(&seq) {
            assert!(mine == &copy, "seq {seq}: the copy is the frame downscaled");
            compared += 1;
        }
    }
}

#[test]
fn bad_input_gets_a_clear_err() {
    let d = Daemon::start(SMALL);
    let mut t = TapClient::connect(&d.control).unwrap();
    t.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for (cmd, want) in [
        ("tap", "err usage usage: tap <0|1|both> [every <n>] [size <w>x<h>]"),
        ("tap 2", "err bad-eye"),
        ("tap both every 0", "err out-of-range"),
        ("tap both size 161x120", "err bad-size"),
        ("tap both size 640x480", "err out-of-range size 640x480 is larger than the frames (320x240)"),
        ("tap both sideways", "err usage"),
        ("release 5", "err not-tapping"),
        ("release x", "err bad-number"),
        ("untap", "err not-tapping"),
        ("tap both every 1000", "ok tap eye=both every=1000"),
        ("tap 0", "err already-tapping"),
        ("release 3", "err not-held"),
        ("untap", "ok untap released=0"),
    ] {
        t.send(cmd).unwrap();
        let r = t.reply().unwrap();
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
    // The browser's /control has no fds to pass: tap is not a command there.
    let mut ws = WsClient::connect(d.addr, "/control");
    assert!(ws.command("tap both").starts_with("err unknown-command"));
}
