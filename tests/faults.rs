//! Faults, caused on purpose with `--inject` (and a low fd limit): each is logged once, hurts
//! only what it must, and is recovered from when the cause goes away.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn gaps(units: &[Unit], from_us: u64, to_us: u64) -> u64 {
    let t: Vec<u64> = units.iter().map(|u| u.header.capture_us).filter(|&t| t >= from_us && t <= to_us).collect();
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(u64::MAX)
}

#[test]
fn camera_and_encoder_faults_are_logged_once_contained_and_recovered() {
    let spec = "camera-stall=1@2+2,camera-error=0@4.5+1,encoder-error=1@6+0.5,encoder-hang=0@7+2.6,state-full@0.5+2";
    let d = Daemon::start(&small(&["--inject", spec]));
    let origin = d.ctl("clock").trim_start_matches("ok clock=").parse::<u64>().unwrap();
    let (w0, w1) = (Recorder::start(d.addr, 0), Recorder::start(d.addr, 1));

    // A full disk on save: an error reply, the old file untouched, and fine once space is back.
    // The disk is full from 0.5 s to 2.5 s of the daemon's uptime.
    assert!(wait_until(Duration::from_secs(5), || f64_at(&d.status(), "uptime_s") >= 0.6));
    let state = d.status()["state_file"].as_str().expect("state_file").to_string();
    std::fs::write(&state, "version = 1\n").unwrap();
    let r = d.ctl("save");
    assert!(r.starts_with("err save-failed") && r.contains("No space left"), "{r}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "version = 1\n");

    assert!(d.wait_log("eye 0: encoder recovered", Duration::from_secs(20)), "{}", d.log());
    assert!(d.ctl("save").starts_with("ok saved"), "the disk has room again");
    // Both eyes stream on after the last fault (eye 0's encoder hang, until 9.6 s).
    let s = |t: f64| origin + (t * 1e6) as u64;
    for w in [&w0, &w1] {
        assert!(w.wait_for(Duration::from_secs(10), |u| u.last().is_some_and(|u| u.header.capture_us > s(9.7))));
    }
    let (u0, t0) = w0.stop_with_texts();
    let (u1, t1) = w1.stop_with_texts();
    let log = d.log();

    // Each fault: one line when it starts, one when it ends.
    assert_eq!(d.log.count("eye 1: camera stalled"), 1, "{log}");
    assert_eq!(d.log.count("eye 1: camera recovered"), 1, "{log}");
    assert_eq!(d.log.count("eye 0: camera failing: injected camera error"), 1, "{log}");
    assert_eq!(d.log.count("eye 0: camera recovered"), 1, "{log}");
    assert_eq!(d.log.count("eye 1: encoder failing: injected encoder error"), 1, "{log}");
    assert_eq!(d.log.count("eye 1: encoder recovered"), 1, "{log}");
    assert_eq!(d.log.count("eye 0: encoder stalled"), 1, "{log}");
    assert_eq!(d.log.count("eye 0: encoder recovered"), 1, "{log}");
    assert_eq!(d.log.count("cannot save state"), 1);

    // Only the faulty eye is touched: eye 0 streams on while eye 1's camera stalls, and the
    // other way round; each eye's viewers are told about their own eye.
    assert!(gaps(&u0, s(2.2), s(3.8)) < 150_000, "eye 0 kept streaming during eye 1's stall");
    assert!(gaps(&u1, s(2.2), s(3.8)) > 1_000_000, "eye 1 really stalled");
    assert!(gaps(&u1, s(4.7), s(5.3)) < 150_000, "eye 1 kept streaming during eye 0's camera errors");
    assert!(gaps(&u1, s(7.2), s(9.4)) < 150_000, "eye 1 kept streaming during eye 0's encoder hang");
    let health = |texts: &[String]| -> Vec<Value> {
        texts.iter().map(|t| parse_json(t)).filter(|v| v["type"] == "status").collect()
    };
    let (h0, h1) = (health(&t0), health(&t1));
    assert!(h0.iter().all(|h| h["eye"] == 0) && h1.iter().all(|h| h["eye"] == 1), "{h0:?} {h1:?}");
    assert!(h1.iter().any(|h| h["camera"] == "stalled"), "{h1:?}");
    assert!(h1.iter().any(|h| h["camera"] == "ok"), "{h1:?}");
    assert!(h0.iter().any(|h| h["camera"] == "failing: injected camera error"), "{h0:?}");
    assert!(h0.iter().any(|h| h["encoder"] == "stalled"), "eye 0's own encoder hang: {h0:?}");
    assert!(!h0.iter().any(|h| h["camera"] == "stalled"), "eye 0's viewers hear nothing of eye 1's stall: {h0:?}");
    // Recovered for real: frames after every fault, and what eye 1 got decodes cleanly
    // (after its encoder errors a keyframe was forced).
    assert!(u0.last().unwrap().header.capture_us > s(9.6) && u1.last().unwrap().header.capture_us > s(9.6));
    let after: Vec<Unit> = u1.into_iter().skip_while(|u| u.header.capture_us < s(6.6) || !u.header.keyframe).collect();
    assert!(!after.is_empty());
    decode_stamped(&after, 320, 240);
    let status = d.status();
    for eye in 0..2 {
        let e = eye_status(&status, eye);
        assert_eq!((e["camera_state"].as_str(), e["encoder_state"].as_str()), (Some("ok"), Some("ok")), "{status}");
    }
}

#[test]
fn fd_exhaustion_backs_off_without_spinning_and_recovers() {
    // A daemon with few file descriptors: connections past the limit hit EMFILE on accept.
    let dir = TempDir::new("emfile");
    let bin = env!("CARGO_BIN_EXE_pieyes");
    let script = format!(
        "ulimit -n 40; exec {bin} --listen 127.0.0.1:0 --camera synthetic {} --control {1}/c.sock --state {1}/s.conf",
        SMALL.join(" "),
        dir.0.display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("PIEYES_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, log) = follow_log(&mut child);
    let pid = child.id();
    let cpu = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<u64> =
            s.rsplit(')').next().unwrap().split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap()).collect();
        f[0] + f[1]
    };
    // A viewer that joins while fds remain: its frames measure the time while they are out.
    let viewer = Recorder::start(addr, 0);
    let mut held: Vec<TcpStream> = (0..60).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(log.wait_for("accept failed", Duration::from_secs(10)), "EMFILE was hit: {}", log.text());
    // Over the next 60 frames (2 s at 30 fps): CPU and warnings while out of fds.
    let (c0, t0, w0) = (cpu(), std::time::Instant::now(), log.count("accept failed"));
    assert!(viewer.wait_for_more(60, Duration::from_secs(20)), "the viewer streams on while the daemon is out of fds");
    let window = t0.elapsed().as_secs_f64();
    let busy = (cpu() - c0) as f64 / 100.0 / window;
    // Encoding two small eyes costs a little; a spinning accept loop would take a whole core.
    assert!(busy < 0.6, "daemon used {:.0}% of a core while out of fds", busy * 100.0);
    let warnings = log.count("accept failed") - w0;
    assert!(warnings as f64 <= 6.0 * window, "logged {warnings} times in {window:.1} s: not once per attempt");
    // Once fds are free the next connection is served (the accept pause is 200 ms).
    held.clear();
    assert_eq!(http_get(addr, "/").0, 200, "accepting again once fds are free");
    drop(viewer.stop());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_viewer_that_vanishes_mid_stream_hurts_nobody() {
    let d = Daemon::start(SMALL);
    let steady = Recorder::start(d.addr, 0);
    for _ in 0..5 {
        let mut ws = WsClient::connect(d.addr, "/cam0");
        // Mid-stream: wait until it is receiving video.
        loop {
            match ws.recv() {
                Some(Msg::Binary(_)) => break,
                Some(_) => continue,
                None => panic!("closed before any video"),
            }
        }
        // Reset the connection (RST, as a pulled cable or a killed browser would).
        let s = &ws.0.stream;
        nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 })
            .unwrap();
        drop(ws);
    }
    // The daemon notices each reset and forgets that viewer; the steady one stays, and gets on
    // with every frame: nothing was skipped for it.
    let viewers = |d: &Daemon| u64_at(eye_status(&d.status(), 0), "viewers");
    assert!(wait_until(Duration::from_secs(10), || viewers(&d) == 1), "vanished viewers are gone: {}", d.status());
    assert!(steady.wait_for_more(20, Duration::from_secs(10)), "the steady viewer streams on");
    let status = d.status();
    assert_eq!(u64_at(eye_status(&status, 0), "viewers"), 1, "only the steady viewer: {status}");
    assert_eq!(u64_at(eye_status(&status, 0), "drops"), 0, "{status}");
    let units = steady.stop();
    let span = units.last().unwrap().header.sequence - units[0].header.sequence + 1;
    let st = d.status();
    let e0 = eye_status(&st, 0);
    let lost = u64_at(e0, "encoder_drops") + u64_at(e0, "camera_skipped") + u64_at(e0, "camera_starved");
    assert!(units.len() as u64 + lost >= span as u64, "{} frames of {span}, {lost} lost before encoding", units.len());
}

/// Start a daemon whose stderr is `stderr`; its control socket is `dir/c.sock`.
fn spawn_with_stderr(dir: &TempDir, stderr: std::process::Stdio) -> std::process::Child {
    pieyes_command()
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic"])
        .args(SMALL)
        .arg("--control")
        .arg(dir.0.join("c.sock"))
        .arg("--state")
        .arg(dir.0.join("s.conf"))
        .env("PIEYES_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn pieyes")
}

/// Over the control socket at `path`: one command, its reply.
fn ctl_at(path: &std::path::Path, line: &str) -> Option<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    std::io::BufReader::new(s).read_line(&mut reply).ok()?;
    Some(reply)
}

/// Log lines while a viewer comes and goes and commands arrive; then the daemon must still
/// serve, and stop cleanly on SIGTERM (exit 0), though every one of those lines failed.
fn keeps_serving_while_its_log_fails(mut child: std::process::Child, control: &std::path::Path) {
    // The address is in the log we cannot read: ask the kernel which port the daemon has.
    let addr = listening_port_of(child.id());
    for _ in 0..3 {
        let (_, units) = collect_units(addr, 0, 3); // "viewer … joined eye 0" / "left": two lines
        assert_eq!(units.len(), 3);
        assert!(ctl_at(control, "look both 0.1 0").expect("reply").starts_with("ok"));
        assert!(ctl_at(control, "fly").expect("reply").starts_with("err unknown-command"));
    }
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    assert!(ctl_at(control, "status").expect("reply").starts_with("ok {"), "still answering");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    assert!(wait_until(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    assert_eq!(status.unwrap().code(), Some(0), "a clean exit, not a panic (101)");
}

/// The TCP port process `pid` listens on, from /proc (its log, which says, is unreadable here).
fn listening_port_of(pid: u32) -> std::net::SocketAddr {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address rem_address st … inode: state 0A is LISTEN.
        if f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            let port = u16::from_str_radix(f[1].split(':').nth(1).unwrap(), 16).unwrap();
            return std::net::SocketAddr::from(([127, 0, 0, 1], port));
        }
    }
    panic!("pid {pid} listens on no TCP port");
}

#[test]
fn the_daemon_keeps_serving_when_its_stderr_pipe_closes() {
    // stderr piped to a reader that goes away (`pieyes 2>&1 | head`): every later line is EPIPE.
    let dir = TempDir::new("epipe");
    let mut child = spawn_with_stderr(&dir, std::process::Stdio::piped());
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    while !lines.next().expect("a line").unwrap().contains("listening on") {}
    drop(lines); // the reader closes its end
    keeps_serving_while_its_log_fails(child, &dir.0.join("c.sock"));
}

#[test]
fn the_daemon_keeps_serving_when_its_log_cannot_be_written() {
    // A full disk under the log (journald's, say): every line is ENOSPC from the start.
    let dir = TempDir::new("enospc");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let child = spawn_with_stderr(&dir, full.into());
    let control = dir.0.join("c.sock");
    assert!(
        wait_until(start_timeout(), || ctl_at(&control, "status").is_some_and(|r| r.starts_with("ok {"))),
        "the daemon starts and answers without a log"
    );
    keeps_serving_while_its_log_fails(child, &control);
}

/// A Unix client that sends `save` and is gone before the reply (a `pieyes ctl save` killed, a
/// script that does not wait): its hung-up socket is reported by every poll() while the save
/// runs. The loop must not spin on it: its thread's CPU over the 2.5 s save stays a small share
/// of the wall time (a spinning loop takes a whole core), and the daemon still answers after.
#[test]
fn a_client_gone_while_its_save_runs_costs_the_loop_nothing() {
    let d = Daemon::start(&small(&["--inject", "state-slow@0+2.5"]));
    // The poll loop is the main thread: its task id is the process id.
    let pid = d.child.id();
    let loop_cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).expect("the loop thread's stat");
        // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let (cpu0, t0) = (loop_cpu_ticks(), Instant::now());
    {
        let mut gone = std::os::unix::net::UnixStream::connect(&d.control).unwrap();
        std::io::Write::write_all(&mut gone, b"save\n").unwrap();
    } // closed: the reply has nowhere to go
    assert!(d.wait_log("saved state to", Duration::from_secs(15)), "the save finishes: {}", d.log());
    let (cpu, wall) = (loop_cpu_ticks() - cpu0, t0.elapsed());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let share = cpu as f64 / hz / wall.as_secs_f64();
    assert!(wall > Duration::from_secs(2), "the card was slow: {wall:?}");
    assert!(share < 0.5, "the poll loop used {:.0} % of a core while the save ran ({wall:?})", share * 100.0);
    assert!(d.ctl("clock").starts_with("ok clock="), "still answering");
}

/// `save` on a card that takes 2 s (`state-slow`): the write happens off the loop, so both
/// eyes keep streaming and other commands are answered meanwhile; the reply and the `saved`
/// event come when the file is written.
#[test]
fn a_slow_save_never_delays_a_frame() {
    let dir = TempDir::new("slow-save");
    let state = dir.0.join("state.conf");
    let d = Daemon::start_with_state(&small(&["--inject", "state-slow@0+2.5"]), dir, &state);
    let viewer = Recorder::start(d.addr, 0);
    let mut saver = std::os::unix::net::UnixStream::connect(&d.control).unwrap();
    let lines = watch_lines(saver.try_clone().unwrap());
    std::io::Write::write_all(&mut saver, b"watch\nsave\nclock\n").unwrap();
    let t0 = Instant::now();
    assert!(lines.recv_timeout(Duration::from_secs(5)).unwrap().starts_with("ok watching"));
    // Another connection is answered at once while the save is under way.
    let clock = d.ctl("clock");
    assert!(clock.starts_with("ok clock="), "{clock}");
    assert!(t0.elapsed() < Duration::from_millis(1500), "answered during the save: {:?}", t0.elapsed());
    let mut after = Vec::new();
    while !after.iter().any(|l: &String| l.starts_with("ok clock=")) {
        after.push(lines.recv_timeout(Duration::from_secs(10)).expect("the save finishes"));
    }
    let saved = after.iter().position(|l| l.starts_with("ok saved path=")).expect("a saved reply");
    let event = after.iter().position(|l| l.starts_with("event saved path=")).expect("a saved event");
    let clock = after.iter().position(|l| l.starts_with("ok clock=")).unwrap();
    assert!(saved < clock, "replies in command order: {after:?}");
    assert!(event < clock, "{after:?}");
    assert!(t0.elapsed() > Duration::from_millis(1500), "the card was slow: {:?}", t0.elapsed());
    assert!(std::fs::read_to_string(&state).unwrap().contains("version = 1"));
    let units = viewer.stop();
    let seqs: Vec<u32> = units.iter().map(|u| u.header.sequence).collect();
    let gap = seqs.windows(2).map(|w| w[1].wrapping_sub(w[0])).max().unwrap_or(0);
    assert!(units.len() > 45, "the eye streamed through the save: {} frames", units.len());
    assert!(gap <= 3, "no stall in the stream during the save (largest gap {gap} frames)");
}
