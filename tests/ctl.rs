//! `pieyes ctl` as a user types it: the socket from `--control` anywhere in the line or from
//! `PIEYES_CONTROL`, `--help` answered by ctl itself, and `watch` streaming events until it is
//! interrupted or its reader goes away.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::*;

/// `pieyes ctl <args>` with `PIEYES_CONTROL` set to `env` (or unset).
fn ctl(args: &[&str], env: Option<&std::path::Path>) -> Output {
    let mut c = pieyes_command();
    c.arg("ctl").args(args).env_remove("PIEYES_CONTROL");
    if let Some(p) = env {
        c.env("PIEYES_CONTROL", p);
    }
    c.output().expect("run pieyes ctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_socket_comes_from_control_anywhere_in_the_line_or_from_pieyes_control() {
    let d = Daemon::start(SMALL);
    let sock = d.control.to_str().unwrap();
    let nowhere = std::path::Path::new("/nonexistent/pieyes.sock");
    for args in [
        vec!["--control", sock, "look", "both", "0.2", "0"],
        vec!["look", "both", "0.2", "0", "--control", sock],
        vec!["look", "--control", sock, "both", "0.2", "0"],
        vec!["look", "both", "-0.2", &format!("--control={sock}"), "0"],
    ] {
        let o = ctl(&args, Some(nowhere));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {} {}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        assert!(stdout(&o).starts_with("ok seq="), "{args:?} sent as a command: {}", stdout(&o));
    }
    // PIEYES_CONTROL when no --control is given.
    let o = ctl(&["status"], Some(&d.control));
    assert_eq!(o.status.code(), Some(0));
    assert!(parse_reply_json(stdout(&o).trim_end())["eyes"].is_array());
    // An `err` reply: exit 1, the reply printed.
    let o = ctl(&["zoom", "7", "2"], Some(&d.control));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("err bad-eye"), "{}", stdout(&o));
    // No daemon there: exit 1 with the path it tried.
    let o = ctl(&["status"], Some(nowhere));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/pieyes.sock"));
}

#[test]
fn help_is_printed_by_ctl_not_sent_to_the_daemon() {
    // No daemon at all: help that tried to send would fail.
    let nowhere = std::path::Path::new("/nonexistent/pieyes.sock");
    for args in [&["--help"][..], &["-h"], &["look", "--help"]] {
        let o = ctl(args, Some(nowhere));
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let text = stdout(&o);
        assert!(text.starts_with("usage: pieyes ctl [--control PATH] <command…>"), "{text}");
        assert!(text.contains("PIEYES_CONTROL") && text.contains("watch"), "{text}");
    }
    // A missing command is a usage mistake: exit 2.
    let o = ctl(&["--control", "/x.sock"], None);
    assert_eq!(o.status.code(), Some(2));
    // The daemon's own --help shows the same synopsis.
    let o = pieyes_command().arg("--help").output().unwrap();
    assert!(stdout(&o).contains("pieyes ctl [--control PATH] <command…>"), "{}", stdout(&o));
    assert!(stdout(&o).contains("PIEYES_CONTROL"));
}

/// `pieyes ctl watch` running, its stdout read line by line on a thread.
fn spawn_watch(d: &Daemon) -> (Child, Receiver<String>) {
    use std::os::unix::process::CommandExt;
    let mut cmd = pieyes_command();
    // Ctrl-C as a terminal gives it, even when `make test` runs in the background of a script
    // (whose jobs start with SIGINT ignored, a disposition exec keeps).
    // SAFETY: signal() is async-signal-safe, as pre_exec requires; it only resets a disposition.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    };
    let mut child = cmd
        .args(["ctl", "watch", "--control"])
        .arg(&d.control)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pieyes ctl watch");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn exit_of(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "pieyes ctl watch did not end"
    );
    status.unwrap()
}

#[test]
fn watch_streams_events_until_interrupted() {
    use std::os::unix::process::ExitStatusExt;
    let d = Daemon::start(SMALL);
    let (mut child, lines) = spawn_watch(&d);
    let first = lines.recv_timeout(Duration::from_secs(10)).expect("the watch reply");
    assert!(first.starts_with("ok watching {"), "{first}");
    // Events keep coming as things change, each on its own line as it happens.
    for x in ["0.3", "-0.3"] {
        assert!(d.ctl(&format!("look both {x} 0")).starts_with("ok"));
        let want = x.parse::<f64>().unwrap();
        loop {
            let l = lines.recv_timeout(Duration::from_secs(10)).expect("an event");
            if let Some(st) = l.strip_prefix("event state ") {
                if parse_json(st)["eyes"][0]["x"] == want {
                    break;
                }
            }
        }
    }
    assert_eq!(child.try_wait().unwrap(), None, "still watching");
    // Ctrl-C.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(exit_of(&mut child).signal(), Some(libc::SIGINT));
}

#[test]
fn watch_ends_quietly_when_its_reader_goes_away() {
    // `pieyes ctl watch | head -1`: once head has gone, the next event ends ctl (not a panic).
    let d = Daemon::start(SMALL);
    let (mut child, lines) = spawn_watch(&d);
    assert!(lines.recv_timeout(Duration::from_secs(10)).expect("the watch reply").starts_with("ok watching"));
    drop(lines); // the reader thread stops at the next line and closes the pipe
    let mut x = 0.0;
    assert!(
        wait_until(Duration::from_secs(10), || {
            x = if x > 0.0 { -0.4 } else { 0.4 };
            assert!(d.ctl(&format!("look both {x} 0")).starts_with("ok"));
            child.try_wait().unwrap().is_some()
        }),
        "ctl watch ends once nobody reads it"
    );
    let status = exit_of(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
