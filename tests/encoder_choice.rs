//! `--encoder auto|software|v4l2` against what this machine really has: the test asks the same
//! device probe the daemon uses (`/dev/video*` by capability), then checks that the daemon did
//! what that answer calls for — on a PC or a Pi 5 (no H.264 encoder) and on a Pi 4 alike.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, SMALL, TempDir, eye_status};
use pieyes::encoder::v4l2::{Codec, find_encoder};

fn args(encoder: &str) -> Vec<&str> {
    let mut v = vec!["--encoder", encoder];
    v.extend(SMALL);
    v
}

#[test]
fn software_is_used_when_asked_for() {
    let d = Daemon::start(&args("software"));
    assert!(d.log().contains("eye 0: encoder software (--encoder software)"), "{}", d.log());
    assert!((0..2).all(|eye| eye_status(&d.status(), eye)["encoder"] == "software (OpenH264)"), "{}", d.status());
    // OpenH264 initialises on the first frame, and again after a new bitrate: nothing of its own
    // reaches stderr, every line there is one of ours ("<seconds> <LEVEL>  <event>").
    common::collect_units(d.addr, 0, 3);
    assert!(d.ctl("bitrate both 2000000").starts_with("ok"));
    common::collect_units(d.addr, 1, 3);
    let log = d.log();
    for line in log.lines() {
        let mut w = line.split_whitespace();
        let (t, level) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
        assert!(
            t.parse::<f64>().is_ok() && ["ERROR", "WARN", "INFO", "DEBUG"].contains(&level),
            "a line not in pieyes' log format: {line:?}\n{log}"
        );
    }
}

#[test]
fn auto_takes_the_v4l2_encoder_when_there_is_one_and_says_why_not_otherwise() {
    let d = Daemon::start(&args("auto"));
    let log = d.log();
    match find_encoder(Codec::H264, None) {
        Err(why) => {
            let line = format!("eye 0: encoder auto: software (OpenH264): {why}");
            assert!(log.contains(&line), "expected {line:?} in\n{log}");
            assert!(
                (0..2).all(|eye| eye_status(&d.status(), eye)["encoder"] == "software (OpenH264)"),
                "{}",
                d.status()
            );
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
            let d = Daemon::start(&args("v4l2"));
            let line = format!("encoder v4l2 (--encoder v4l2): {}", dev.path.display());
            assert!(d.wait_log(&line, Duration::from_secs(10)), "{}", d.log());
        }
    }
}

/// Each of the daemon's threads by name → the CPUs it may run on, from /proc (what the kernel
/// enforces, not what the daemon says).
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
        out.push((field("Name:"), parse_cpu_list(&field("Cpus_allowed_list:"))));
    }
    out
}

/// "0-2,5" → [0, 1, 2, 5]
fn parse_cpu_list(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

fn cpus_of<'a>(threads: &'a [(String, Vec<usize>)], name: &str) -> &'a [usize] {
    &threads.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no thread {name}: {threads:?}")).1
}

#[test]
fn each_eye_encodes_on_its_own_cpu_unless_told_otherwise() {
    let allowed = pieyes::sys::thread::allowed_cpus().unwrap();
    let d = Daemon::start(&args("software"));
    // The encoder threads pin themselves before their first frame: wait for frames.
    common::collect_units(d.addr, 0, 3);
    let threads = thread_cpus(d.child.id());
    assert_eq!(cpus_of(&threads, "pieyes"), allowed, "the loop is never pinned");
    if allowed.len() >= 2 {
        let n = allowed.len();
        assert_eq!(cpus_of(&threads, "encoder-0"), [allowed[n - 1]], "{threads:?}");
        assert_eq!(cpus_of(&threads, "encoder-1"), [allowed[n - 2]], "{threads:?}");
        assert_eq!(cpus_of(&threads, "synthetic-cam"), [allowed[n - 2]], "{threads:?}");
        assert!(d.log().contains(&format!("eye 0: software encoder on CPU {}", allowed[n - 1])), "{}", d.log());
        let status = d.status();
        assert_eq!(eye_status(&status, 0)["encoder_cpu"], allowed[n - 1], "{status}");
        assert_eq!(eye_status(&status, 1)["encoder_cpu"], allowed[n - 2], "{status}");
    } else {
        // One CPU: nothing to choose; every thread may run where the process may.
        assert!(threads.iter().all(|(_, c)| *c == allowed), "{threads:?}");
    }

    let mut a = args("software");
    a.extend(["--encoder-cpus", "none"]);
    let d = Daemon::start(&a);
    common::collect_units(d.addr, 0, 3);
    let threads = thread_cpus(d.child.id());
    assert!(threads.iter().all(|(_, c)| *c == allowed), "--encoder-cpus none pins nothing: {threads:?}");
    assert!((0..2).all(|eye| eye_status(&d.status(), eye)["encoder_cpu"].is_null()), "{}", d.status());

    // An explicit CPU this process may not use is a start-up error, not a silent fallback.
    let dir = TempDir::new("cpus");
    let out = common::pieyes_command()
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--encoder", "software", "--encoder-cpus", "1023"])
        .arg("--control")
        .arg(dir.0.join("ctl.sock"))
        .arg("--state")
        .arg(dir.0.join("state.conf"))
        .args(SMALL)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run pieyes");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--encoder-cpus: CPU 1023 is not one pieyes may use"), "{err}");
    assert_ne!(out.status.code(), Some(0));
}
