//! `--encoder auto|software|v4l2` against what this machine really has: the test asks the same
//! device probe the daemon uses (`/dev/video*` by capability), then checks that the daemon did
//! what that answer calls for — on a PC or a Pi 5 (no H.264 encoder) and on a Pi 4 alike.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, TempDir};
use pieyes::encoder::v4l2::{Codec, find_encoder};

const SMALL: [&str; 4] = ["--size", "320x240", "--sensor", "640x480"];

fn args(encoder: &str) -> Vec<&str> {
    let mut v = vec!["--encoder", encoder];
    v.extend(SMALL);
    v
}

#[test]
fn software_is_used_when_asked_for() {
    let d = Daemon::start(&args("software"));
    assert!(d.log().contains("eye 0: encoder software (--encoder software)"), "{}", d.log());
    assert!(d.ctl("status").contains("\"encoder\":\"software (OpenH264)\""));
}

#[test]
fn auto_takes_the_v4l2_encoder_when_there_is_one_and_says_why_not_otherwise() {
    let d = Daemon::start(&args("auto"));
    let log = d.log();
    match find_encoder(Codec::H264, None) {
        Err(why) => {
            let line = format!("eye 0: encoder auto: software (OpenH264): {why}");
            assert!(log.contains(&line), "expected {line:?} in\n{log}");
            assert!(d.ctl("status").contains("\"encoder\":\"software (OpenH264)\""));
        }
        Ok(dev) => {
            let line = format!("eye 0: encoder auto: {} is a V4L2 H.264 encoder: using it", dev.path.display());
            assert!(log.contains(&line), "expected {line:?} in\n{log}");
        }
    }
}

#[test]
fn v4l2_without_an_encoder_is_a_clear_error() {
    let dir = TempDir::new("enc");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pieyes"));
    cmd.args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--control"])
        .arg(dir.0.join("ctl.sock"))
        .arg("--state")
        .arg(dir.0.join("state.conf"))
        .args(args("v4l2"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match find_encoder(Codec::H264, None) {
        Err(why) => {
            let out = cmd.output().expect("run pieyes");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            let line = format!("ERROR --encoder v4l2: no V4L2 H.264 encoder: {why}");
            assert!(err.contains(&line), "expected {line:?} in\n{err}");
        }
        Ok(dev) => {
            // A Pi 4: it starts with that encoder.
            let mut child = cmd.spawn().expect("run pieyes");
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("encoder v4l2 (--encoder v4l2): {}", dev.path.display())), "{err}");
        }
    }
}
