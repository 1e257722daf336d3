//! Camera selection, the stereo report and `pieyes record`, against the real daemon with the
//! synthetic camera (the libcamera backend itself is tested in the VM: `make test-vm`).

mod common;

use std::time::Duration;

use common::*;

/// The small rig at 20 fps.
fn rig() -> Vec<&'static str> {
    small(&["--fps", "20"])
}

#[test]
fn the_synthetic_pair_reports_its_sync_pairs_and_crop_support() {
    let d = Daemon::start(&rig());
    let pairs = |st: &Value| st["stereo"]["pairs"].as_u64().unwrap_or(0);
    let mut s = d.status();
    assert!(
        wait_until(Duration::from_secs(20), || {
            s = d.status();
            pairs(&s) >= 10
        }),
        "{s}"
    );
    let stereo = &s["stereo"];
    assert_eq!(stereo["sync"], "synthetic (both eyes on one capture tick)", "{stereo}");
    assert_eq!(stereo["skew_ms_max"], 0.0, "one tick: no skew: {stereo}");
    assert!((0..2).all(|eye| eye_status(&s, eye)["crop_supported"] == true), "{s}");
}

#[test]
fn one_eye_has_no_stereo_report() {
    let d = Daemon::start(&[rig(), vec!["--mono"]].concat());
    let s = d.status();
    assert!(s["stereo"].is_null(), "{s}");
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
fn list_cameras_says_plainly_when_the_build_has_no_libcamera() {
    if cfg!(feature = "libcamera") {
        eprintln!("this build has libcamera: `make test-vm` lists real cameras");
        return;
    }
    let out = pieyes_command().arg("--list-cameras").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("built without libcamera support") && err.contains("--features libcamera"), "{err}");
    assert!(out.stdout.is_empty());
    // The synthetic camera lists itself, with the eye each would be.
    let out = pieyes_command().args(["--camera", "synthetic", "--list-cameras", "--mono"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        lines,
        [
            "Available cameras (--camera synthetic)",
            "0 : synthetic [2304x1296] (synthetic:0) -> eye 0",
            "1 : synthetic [2304x1296] (synthetic:1) -> no eye"
        ]
    );
}

#[test]
fn record_saves_a_decodable_stream_and_says_what_it_got() {
    let d = Daemon::start(&rig());
    let dir = TempDir::new("record");
    let out = dir.0.join("eye1.h264");
    let r = pieyes_command()
        .args(["record", "--addr", &d.addr.to_string(), "--eye", "1", "--seconds", "1.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{text} {}", String::from_utf8_lossy(&r.stderr));
    let summary = parse_json(&text);
    let frames = u64_at(&summary, "frames");
    // About 1.5 s at 20 fps (an emulated daemon may drop some before its encoder).
    let least = if emulated() { 5 } else { 20 };
    assert!((least..=40).contains(&frames), "about 1.5 s at 20 fps: {summary}");
    assert!(u64_at(&summary, "keyframes") >= 1, "{summary}");
    if !emulated() {
        assert_eq!(u64_at(&summary, "seq_gaps"), 0, "{summary}");
    }
    assert_eq!(summary["crops"], serde_json::json!([[80, 0, 480, 360]]), "the full view of a 640x360 sensor at 4:3");
    let (profile, w, h, _) = ffprobe(&out);
    assert_eq!((profile.as_str(), w, h), ("Constrained Baseline", 320, 240));
    assert_eq!(decode_i420(&out, w, h).len() as u64, frames, "every frame decodes");
}
