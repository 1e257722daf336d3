//! `calibrate` against a synthetic rig whose eye 1 is mounted off by a known amount
//! (`--synthetic-misalign`): the estimate lands within 2 px of it, `calibrate apply` sets and
//! saves it, and afterwards the pair is aligned — by the daemon's own estimate, and by the
//! same estimator run on what a viewer receives (both eyes' H.264, decoded by ffmpeg).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use pieyes::calibrate::estimate::{Luma, estimate};
use pieyes::camera::Rect;

/// Half the default rig: 480x540 eyes from a 1152x648 sensor.
const RIG: &[&str] = &["--size", "480x540", "--sensor", "1152x648"];
const MISALIGN: i32 = 24;
const W: u32 = 480;
const H: u32 = 540;

fn fields(reply: &str) -> HashMap<String, String> {
    reply.split_whitespace().filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

fn crop_of(status: &serde_json::Value, eye: usize) -> Rect {
    let c: Vec<u32> =
        eye_status(status, eye)["crop"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    Rect::new(c[0], c[1], c[2], c[3])
}

/// Wait until the newest frames of both eyes were captured with crops satisfying `ok`.
fn wait_crops(d: &Daemon, ok: impl Fn(Rect, Rect) -> bool) -> (Rect, Rect) {
    let mut last = (Rect::default(), Rect::default());
    let done = wait_until(Duration::from_secs(10), || {
        let s = d.status();
        last = (crop_of(&s, 0), crop_of(&s, 1));
        ok(last.0, last.1)
    });
    assert!(done, "crops never got there: {last:?}");
    last
}

/// Record both eyes until each has `n` frames captured with the given crops; decode them and
/// return the vertical misalignment (sensor pixels) the estimator reads from pairs of the
/// same sequence, one figure per pair.
fn decoded_misalignment(d: &Daemon, crops: (Rect, Rect), n: usize) -> Vec<f64> {
    let recs = [Recorder::start(d.addr, 0), Recorder::start(d.addr, 1)];
    for (i, r) in recs.iter().enumerate() {
        let crop = if i == 0 { crops.0 } else { crops.1 };
        let got = r.wait_for(Duration::from_secs(20), |u| u.iter().filter(|u| u.header.crop == crop).count() >= n);
        assert!(got, "eye {i}: too few frames with crop {crop}");
    }
    let [u0, u1] = recs.map(|r| r.stop());
    let dir = TempDir::new("calibrate");
    let decode = |units: &[Unit], name: &str| {
        let path = dir.0.join(name);
        write_h264(&path, units);
        let frames = decode_i420(&path, W, H);
        assert_eq!(frames.len(), units.len());
        units.iter().map(|u| (u.header.sequence, u.header.crop)).zip(frames).collect::<Vec<_>>()
    };
    let (f0, f1) = (decode(&u0, "0.h264"), decode(&u1, "1.h264"));
    let mut out = Vec::new();
    for ((seq, crop), frame) in &f0 {
        if *crop != crops.0 {
            continue;
        }
        let Some((_, other)) = f1.iter().find(|((s, c), _)| s == seq && *c == crops.1) else { continue };
        let luma = |f: &[u8]| Luma::from_plane(&f[..(W * H) as usize], W as usize, W as usize, H as usize, 4);
        let aspect = (crop.w as f64 / W as f64 * 4.0) / (crop.h as f64 / H as f64);
        let e = estimate(&luma(frame), &luma(other), aspect).expect("an estimate");
        assert!(e.confidence > 0.05, "decoded pair {seq}: {e:?}");
        // What the pictures show, plus where the crops were: the mounts' misalignment as the
        // viewer sees it after the correction is the pictures' part alone.
        out.push(e.shift_rows * crop.h as f64 / H as f64);
    }
    assert!(out.len() >= n / 2, "only {} pairs of the same sequence decoded", out.len());
    out
}

#[test]
fn calibrate_finds_the_misalignment_applies_it_and_the_pair_is_aligned_after() {
    let misalign = MISALIGN.to_string();
    let mut args: Vec<&str> = RIG.to_vec();
    args.extend(["--synthetic-misalign", &misalign]);
    let d = Daemon::start(&args);

    // At zoom 1 the crop fills the sensor's height: no room for a vertical offset. Zoom in.
    assert!(d.ctl("zoom both 1.5").starts_with("ok "), "zoom");
    let before = wait_crops(&d, |a, b| a.h == 432 && b.h == 432);
    assert_eq!(before.0.y, before.1.y, "no offsets yet: {before:?}");

    // The viewer's pictures are off by MISALIGN before.
    let seen = decoded_misalignment(&d, before, 6);
    eprintln!("decoded before: {seen:?}");
    assert!(seen.iter().all(|s| (s - MISALIGN as f64).abs() <= 2.0), "decoded before: {seen:?}");

    let reply = d.ctl("calibrate");
    eprintln!("{reply}");
    assert!(reply.starts_with("ok calibrate eye=1 "), "{reply}");
    let f = fields(&reply);
    let dy: f64 = f["dy"].parse().unwrap();
    let confidence: f64 = f["confidence"].parse().unwrap();
    assert!((dy - MISALIGN as f64).abs() <= 2.0, "estimate {dy} against {MISALIGN}: {reply}");
    assert!(confidence >= 0.05, "{reply}");
    let rotation: f64 = f["rotation"].parse().unwrap();
    assert!(rotation.abs() < 0.5, "{reply}");
    let (ox, oy) = f["offset"].split_once(',').unwrap();
    let offset: (i32, i32) = (ox.parse().unwrap(), oy.parse().unwrap());
    assert_eq!(offset.0, 0);
    assert!((offset.1 - MISALIGN).abs() <= 2, "{reply}");

    let applied = d.ctl("calibrate apply");
    eprintln!("{applied}");
    assert!(applied.starts_with("ok calibrate applied eye=1 seq="), "{applied}");
    assert!(!applied.contains("clamped"), "{applied}");
    let af = fields(&applied);
    assert_eq!(af["offset"], f["offset"]);
    let state = std::fs::read_to_string(&af["path"]).expect("the state file");
    assert!(state.contains(&format!("eye1.offset = 0 {}", offset.1)), "{state}");
    assert!(d.status()["state"]["eyes"][1]["offset"] == serde_json::json!([0, offset.1]));

    // The corrected pair: eye 1's crop is the offset lower, and the pictures agree.
    let after = wait_crops(&d, |a, b| b.y as i64 - a.y as i64 == offset.1 as i64 && a.h == 432);
    let again = d.ctl("calibrate");
    eprintln!("{again}");
    let g = fields(&again);
    let residual: f64 = g["dy"].parse().unwrap();
    assert!(residual.abs() <= 2.0, "after apply the daemon still sees {residual} px: {again}");
    assert_eq!(g["offset"], f["offset"], "a repeated calibrate proposes the same offset: {again}");
    let seen = decoded_misalignment(&d, after, 6);
    eprintln!("decoded after: {seen:?}");
    assert!(seen.iter().all(|s| s.abs() <= 2.0), "decoded after: {seen:?}");
}

#[test]
fn calibrate_refuses_what_it_cannot_do() {
    let d = Daemon::start(SMALL);
    assert!(d.ctl("calibrate apply").starts_with("err no-estimate "));
    assert!(d.ctl("look 0 0.5 0.5").starts_with("ok "));
    assert!(d.ctl("calibrate").starts_with("err calibrate-failed "), "the eyes look different ways");
    assert!(d.ctl("look both 0 0").starts_with("ok "));
    assert!(d.ctl("pause").starts_with("ok "));
    assert!(d.ctl("calibrate").starts_with("err paused "));
    assert!(d.ctl("resume").starts_with("ok "));
    // A pair of a plain rig: aligned, and it says so.
    let r = d.ctl("calibrate");
    assert!(r.starts_with("ok calibrate eye=1 offset=0,"), "{r}");
    let dy: f64 = fields(&r)["dy"].parse().unwrap();
    assert!(dy.abs() <= 2.0, "{r}");
    let mono = Daemon::start(&small(&["--mono"]));
    assert!(mono.ctl("calibrate").starts_with("err no-eye "));
}

/// The estimator on the synthetic scene itself (no daemon): misalignments up and down, with a
/// turn, at the two output sizes, read to within 2 sensor px and 0.2°.
#[test]
fn the_estimate_reads_the_synthetic_misalignment_at_any_size() {
    use pieyes::camera::scene::{Misalign, Scene};
    use pieyes::camera::{I420Layout, Size};
    let sensor = Size { w: 1152, h: 648 };
    for (dy, deg) in [(24, 0.0), (-40, 0.0), (10, 0.5), (-16, -0.3)] {
        let scene = Scene::new(sensor, 24).with_misalign(Misalign { dy, rotation_deg: deg });
        for (crop, out) in [
            (Rect::new(384, 108, 384, 432), Size { w: 480, h: 540 }),
            (Rect::new(288, 0, 576, 648), Size { w: 480, h: 540 }),
            (Rect::new(384, 108, 384, 432), Size { w: 960, h: 1080 }),
        ] {
            let layout = I420Layout::new(out);
            let (w, h) = (out.w as usize, out.h as usize);
            let luma = |eye: u8| {
                let mut f = vec![0u8; layout.frame_len()];
                scene.render(eye, 1_000_000, crop, layout, &mut f, &mut Vec::new());
                Luma::from_plane(&f[..w * h], w, w, h, 4)
            };
            let aspect = (crop.w as f64 / w as f64 * 4.0) / (crop.h as f64 / h as f64);
            let e = estimate(&luma(0), &luma(1), aspect).unwrap();
            let px = e.shift_rows * crop.h as f64 / h as f64;
            let what =
                format!("misaligned {dy} px {deg}°, crop {crop} → {out}: {px:.2} px {:.2}° ({e:?})", e.rotation_deg);
            assert!((px - dy as f64).abs() <= 2.0, "{what}");
            assert!((e.rotation_deg - deg).abs() <= 0.2, "{what}");
            assert!(e.confidence >= 0.05, "{what}");
        }
    }
}
