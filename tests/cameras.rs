//! Camera selection, the stereo report and `pieyes record`, against the real daemon with the
//! synthetic camera (the libcamera backend itself is tested in the VM: `make test-vm`).

mod common;

use std::time::{Duration, Instant};

use common::*;

const SMALL: &[&str] = &["--size", "320x240", "--sensor", "640x360", "--fps", "20"];

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

fn wait_status(d: &Daemon, ok: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.ctl("status");
        if ok(&s) || Instant::now() > end {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_synthetic_pair_reports_its_sync_pairs_and_crop_support() {
    let d = Daemon::start(SMALL);
    let s = wait_status(&d, |s| s.contains("\"pairs\":") && field(s, "pairs").parse::<u64>().unwrap_or(0) >= 10);
    let stereo = &s[s.find("\"stereo\":").expect("a stereo report")..];
    assert_eq!(field(stereo, "sync"), "\"synthetic (both eyes on one capture tick)\"");
    assert!(field(stereo, "pairs").parse::<u64>().unwrap() >= 10, "{stereo}");
    assert_eq!(field(stereo, "skew_ms_max"), "0", "one tick: no skew");
    assert_eq!(s.matches("\"crop_supported\":true").count(), 2, "{s}");
}

#[test]
fn one_eye_has_no_stereo_report() {
    let d = Daemon::start(&[SMALL, &["--mono"]].concat());
    let s = d.ctl("status");
    assert!(s.contains("\"stereo\":null"), "{s}");
}

#[test]
fn libcamera_demanded_from_a_build_without_it_is_a_clear_error() {
    if cfg!(feature = "libcamera") {
        eprintln!("this build has libcamera: `make test-vm` tests --camera libcamera for real");
        return;
    }
    let dir = TempDir::new("nolibcamera");
    let out = pieyes_command()
        .args(["--camera", "libcamera", "--listen", "127.0.0.1:0", "--control"])
        .arg(dir.0.join("ctl.sock"))
        .arg("--state")
        .arg(dir.0.join("state.conf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--features libcamera"), "{err}");
}

#[test]
fn record_saves_a_decodable_stream_and_says_what_it_got() {
    let d = Daemon::start(SMALL);
    let dir = TempDir::new("record");
    let out = dir.0.join("eye1.h264");
    let r = pieyes_command()
        .args(["record", "--addr", &d.addr.to_string(), "--eye", "1", "--seconds", "1.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{summary} {}", String::from_utf8_lossy(&r.stderr));
    let frames: u32 = field(&summary, "frames").parse().unwrap();
    // About 1.5 s at 20 fps (an emulated daemon may drop some before its encoder).
    let least = if emulated() { 5 } else { 20 };
    assert!((least..=40).contains(&frames), "about 1.5 s at 20 fps: {summary}");
    assert!(field(&summary, "keyframes").parse::<u32>().unwrap() >= 1);
    if !emulated() {
        assert_eq!(field(&summary, "seq_gaps"), "0", "{summary}");
    }
    assert!(summary.contains("\"crops\":[[80,0,480,360]]"), "the full view of a 640x360 sensor at 4:3: {summary}");
    let (profile, w, h, _) = ffprobe(&out);
    assert_eq!((profile.as_str(), w, h), ("Constrained Baseline", 320, 240));
    assert_eq!(decode_i420(&out, w, h).len() as u32, frames, "every frame decodes");
}
