//! examples/tracker.py closes the loop: it taps both eyes, finds the synthetic scene's red
//! disc and steers so each eye keeps it centred. This test watches through a tap of its own
//! and measures the disc's distance from the centre of each eye's frames: a tracker that does
//! nothing (the same zoom, no steering) fails the threshold, the example passes it.
//!
//! Needs Python 3 with numpy: `PIEYES_PYTHON`, else target/conformance-venv/bin/python (which
//! `make test` installs, examples/requirements.txt).

mod common;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pieyes::cli::tap_client::{TapClient, TapMsg};
use pieyes::sys::shm::Mapping;

/// The disc's chroma V is 210; nothing else in the scene goes above 158.
const RED_V: u8 = 184;
/// "Centred": within an eighth of the frame's width of its centre.
const NEAR: f64 = 1.0 / 8.0;

fn python() -> PathBuf {
    let p = std::env::var_os("PIEYES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/conformance-venv/bin/python"));
    assert!(p.exists(), "{} is missing: `make test` makes it (a venv with numpy), or set PIEYES_PYTHON", p.display());
    p
}

/// Watch both eyes for `how_long` through a small tap; per frame, the disc's distance from the
/// centre as a fraction of the width (`None`: not in view).
fn observe(d: &Daemon, how_long: Duration) -> Vec<Option<f64>> {
    let mut t = TapClient::connect(&d.control).unwrap();
    t.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.send("tap both size 240x270").unwrap();
    assert!(t.reply().unwrap().starts_with("ok tap"));
    let mut out = Vec::new();
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        let TapMsg::Frame(line, fd) = t.next_msg().unwrap() else { continue };
        let v = parse_json(&line);
        let (w, h) = (u64_at(&v, "width") as usize, u64_at(&v, "height") as usize);
        let m = Mapping::read_only(fd.as_fd(), u64_at(&v, "size") as usize).unwrap();
        let (off, stride) = (v["offset"][2].as_u64().unwrap() as usize, v["stride"][2].as_u64().unwrap() as usize);
        let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
        for y in 0..h / 2 {
            for x in 0..w / 2 {
                if m.as_slice()[off + y * stride + x] > RED_V {
                    (n, sx, sy) = (n + 1, sx + x, sy + y);
                }
            }
        }
        drop(m);
        t.send(&format!("release {} {}", v["seq"], v["eye"])).unwrap();
        out.push((n >= 4).then(|| {
            let (cx, cy) = (2.0 * sx as f64 / n as f64 + 1.0, 2.0 * sy as f64 / n as f64 + 1.0);
            (cx - w as f64 / 2.0).hypot(cy - h as f64 / 2.0) / w as f64
        }));
    }
    out
}

fn near_share(seen: &[Option<f64>]) -> f64 {
    seen.iter().filter(|d| d.is_some_and(|d| d <= NEAR)).count() as f64 / seen.len().max(1) as f64
}

#[test]
fn the_tracker_keeps_the_disc_centred_where_doing_nothing_does_not() {
    let python = python();
    let d = Daemon::start(&["--size", "480x540"]);
    // Doing nothing at the tracker's zoom: the disc orbits 300 px off the sensor's centre.
    assert!(d.ctl("zoom both 2").starts_with("ok"));
    let idle = observe(&d, Duration::from_secs(3));
    let idle_share = near_share(&idle);
    eprintln!("doing nothing: {:.0} % of {} frames centred", 100.0 * idle_share, idle.len());
    assert!(idle.len() > 60, "frames observed: {}", idle.len());
    assert!(idle_share < 0.2, "a tracker that does nothing must fail: {:.0} %", 100.0 * idle_share);

    let mut tracker = Command::new(python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/tracker.py"))
        .args(["--socket".as_ref(), d.control.as_os_str(), "--seconds".as_ref(), "20".as_ref()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run examples/tracker.py");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(tracker.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(stdout).map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Its second report: a second to lock on. Then most of the rest of its 20 s is watched.
    let locked = Instant::now() + Duration::from_secs(30);
    while !rx
        .recv_timeout(locked.saturating_duration_since(Instant::now()))
        .expect("the tracker reports")
        .starts_with("t=   2s")
    {}
    let tracked = observe(&d, Duration::from_secs(15));
    let out = tracker.wait_with_output().unwrap();
    let (stdout, stderr) = (reader.join().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned());
    eprintln!("tracker said:\n{stdout}{stderr}");
    assert!(out.status.success(), "tracker failed: {stderr}");
    assert!(stdout.lines().filter(|l| l.contains("error: eye 0")).count() >= 15, "an error line per second");
    let share = near_share(&tracked);
    let seen: Vec<f64> = tracked.iter().flatten().copied().collect();
    let mean = seen.iter().sum::<f64>() / seen.len().max(1) as f64;
    eprintln!(
        "tracking: {:.0} % of {} frames within {:.0} % of the width of the centre (mean distance {:.1} %)",
        100.0 * share,
        tracked.len(),
        100.0 * NEAR,
        100.0 * mean
    );
    assert!(tracked.len() > 300, "frames observed: {}", tracked.len());
    assert!(share >= 0.8, "the disc must stay centred most of the time: {:.0} %", 100.0 * share);
}
