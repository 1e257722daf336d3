//! Faults, caused on purpose with `--inject` (and a low fd limit): each is logged once, hurts
//! only what it must, and is recovered from when the cause goes away.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const SMALL: &[&str] = &["--size", "320x240", "--sensor", "640x360"];

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

fn wait_for(d: &Daemon, needle: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if d.log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Collects an eye's video and its status messages until stopped.
struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<Unit>, Vec<String>)>,
}

impl Watcher {
    fn start(d: &Daemon, eye: u8) -> Watcher {
        let addr = d.addr;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut ws = pieyes::cli::ws_client::WsClient::connect(addr, &format!("/cam{eye}"), "").unwrap();
            ws.stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let (mut units, mut texts) = (Vec::new(), Vec::new());
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                match ws.recv() {
                    Ok(Some(Msg::Binary(b))) => {
                        let (h, p) = pieyes::stream::wire::VideoHeader::parse(&b).unwrap();
                        units.push(Unit { header: h, annexb: p.to_vec() });
                    }
                    Ok(Some(Msg::Text(t))) => texts.push(t),
                    Ok(Some(Msg::Close(_))) | Ok(None) => break,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            (units, texts)
        });
        Watcher { stop, handle }
    }

    fn stop(self) -> (Vec<Unit>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

fn gaps(units: &[Unit], from_us: u64, to_us: u64) -> u64 {
    let t: Vec<u64> = units.iter().map(|u| u.header.capture_us).filter(|&t| t >= from_us && t <= to_us).collect();
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(u64::MAX)
}

#[test]
fn camera_and_encoder_faults_are_logged_once_contained_and_recovered() {
    let spec = "camera-stall=1@2+2,camera-error=0@4.5+1,encoder-error=1@6+0.5,encoder-hang=0@7+2.6,state-full@0.5+2";
    let mut args = SMALL.to_vec();
    args.extend(["--inject", spec]);
    let d = Daemon::start(&args);
    let origin = d.ctl("clock").trim_start_matches("ok clock=").parse::<u64>().unwrap();
    let (w0, w1) = (Watcher::start(&d, 0), Watcher::start(&d, 1));

    // A full disk on save: an error reply, the old file untouched, and fine once space is back.
    std::thread::sleep(Duration::from_millis(800));
    let state = d
        .log()
        .lines()
        .find_map(|l| l.split("no saved state at ").nth(1))
        .map(|s| s.split(':').next().unwrap().to_string())
        .unwrap();
    std::fs::write(&state, "version = 1\n").unwrap();
    let r = d.ctl("save");
    assert!(r.starts_with("err save-failed") && r.contains("No space left"), "{r}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "version = 1\n");

    assert!(wait_for(&d, "eye 0: encoder recovered", Duration::from_secs(20)), "{}", d.log());
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.ctl("save").starts_with("ok saved"), "the disk has room again");
    let (u0, t0) = w0.stop();
    let (u1, t1) = w1.stop();
    let log = d.log();

    // Each fault: one line when it starts, one when it ends.
    assert_eq!(count(&log, "eye 1: camera stalled"), 1, "{log}");
    assert_eq!(count(&log, "eye 1: camera recovered"), 1, "{log}");
    assert_eq!(count(&log, "eye 0: camera failing: injected camera error"), 1, "{log}");
    assert_eq!(count(&log, "eye 0: camera recovered"), 1, "{log}");
    assert_eq!(count(&log, "eye 1: encoder failing: injected encoder error"), 1, "{log}");
    assert_eq!(count(&log, "eye 1: encoder recovered"), 1, "{log}");
    assert_eq!(count(&log, "eye 0: encoder stalled"), 1, "{log}");
    assert_eq!(count(&log, "eye 0: encoder recovered"), 1, "{log}");
    assert_eq!(count(&log, "cannot save state"), 1);

    // Only the faulty eye is touched: eye 0 streams on while eye 1's camera stalls, and the
    // other way round; each eye's viewers are told about their own eye.
    let s = |t: f64| origin + (t * 1e6) as u64;
    assert!(gaps(&u0, s(2.2), s(3.8)) < 150_000, "eye 0 kept streaming during eye 1's stall");
    assert!(gaps(&u1, s(2.2), s(3.8)) > 1_000_000, "eye 1 really stalled");
    assert!(gaps(&u1, s(4.7), s(5.3)) < 150_000, "eye 1 kept streaming during eye 0's camera errors");
    assert!(gaps(&u1, s(7.2), s(9.4)) < 150_000, "eye 1 kept streaming during eye 0's encoder hang");
    assert!(t1.iter().any(|t| t.contains("\"camera\":\"stalled\"")), "{t1:?}");
    assert!(t1.iter().any(|t| t.contains("\"camera\":\"ok\"")));
    assert!(t0.iter().any(|t| t.contains("\"camera\":\"failing: injected camera error\"")), "{t0:?}");
    assert!(
        !t0.iter().any(|t| t.contains("stalled") && t.contains("\"camera\"") && !t.contains("\"camera\":\"ok\"")),
        "eye 0's viewers hear nothing of eye 1's stall"
    );
    // Recovered for real: frames after every fault, and what eye 1 got decodes cleanly
    // (after its encoder errors a keyframe was forced).
    assert!(u0.last().unwrap().header.capture_us > s(9.6) && u1.last().unwrap().header.capture_us > s(9.6));
    let after: Vec<Unit> = u1.into_iter().skip_while(|u| u.header.capture_us < s(6.6) || !u.header.keyframe).collect();
    assert!(!after.is_empty());
    decode_stamped(&after, 320, 240);
    let status = d.ctl("status");
    assert!(status.contains("\"camera_state\":\"ok\"") && !status.contains("stalled"), "{status}");
}

#[test]
fn fd_exhaustion_backs_off_without_spinning_and_recovers() {
    // A daemon with few file descriptors: connections past the limit hit EMFILE on accept.
    let dir = TempDir::new("emfile");
    let bin = env!("CARGO_BIN_EXE_pieyes");
    let script = format!(
        "ulimit -n 40; exec {bin} --listen 127.0.0.1:0 --camera synthetic --size 320x240 --sensor 640x360 --control {0}/c.sock --state {0}/s.conf",
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
    let mut held: Vec<TcpStream> = (0..60).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (c0, t0) = (cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let busy = (cpu() - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    assert!(log.lock().unwrap().contains("accept failed"), "EMFILE was hit: {}", log.lock().unwrap());
    // Encoding two small eyes costs a little; a spinning accept loop would take a whole core.
    assert!(busy < 0.6, "daemon used {:.0}% of a core while out of fds", busy * 100.0);
    let warnings = log.lock().unwrap().matches("accept failed").count();
    assert!(warnings <= 12, "logged {warnings} times in 2 s: not once per attempt");
    held.clear();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(http_get(addr, "/").0, 200, "accepting again once fds are free");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_viewer_that_vanishes_mid_stream_hurts_nobody() {
    let d = Daemon::start(SMALL);
    let steady = Recorder::start(d.addr, 0);
    for _ in 0..5 {
        let ws = WsClient::connect(d.addr, "/cam0");
        // Reset the connection (RST, as a pulled cable or a killed browser would).
        let s = &ws.0.stream;
        nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 })
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(ws);
    }
    std::thread::sleep(Duration::from_millis(500));
    let units = steady.stop();
    assert!(units.len() > 20);
    let status = d.ctl("status");
    assert!(
        status.contains("\"viewers\":0") || status.contains("\"viewers\":1"),
        "vanished viewers are gone: {status}"
    );
    assert!(status.split("\"drops\":").nth(1).unwrap().starts_with('0'), "{status}");
}
