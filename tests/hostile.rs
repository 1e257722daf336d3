//! Attacks that need time or volume (`make test-hostile`, which `make test` runs; the tests are
//! `#[ignore]`d so a plain `cargo test` stays quick). Each attack runs for a bounded time against
//! a daemon while a healthy viewer watches `/cam0`, and each asserts what the limits promise:
//! the daemon's memory stays within a few MB of what it was idle, and the viewer keeps at least
//! 99 % of its frames. The shapes are those of a hostile-input probe that once grew the daemon to
//! hundreds of MB (unbounded reply queues, quadratic line reading, a locked-out control socket).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pieyes::sys::timer::Timer;
use pieyes::ws::frame::{Opcode, encode_masked};

/// How long each attack lasts.
const ATTACK: Duration = Duration::from_secs(4);
/// "Within a few MB of idle".
const MAX_GROWTH_KB: u64 = 6 * 1024;

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A daemon, a healthy viewer on eye 0, and the daemon's RSS sampled every 20 ms.
struct Watched {
    d: Daemon,
    viewer: Recorder,
    peak_kb: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Watched {
    fn start(extra: &[&'static str]) -> Watched {
        let d = Daemon::start(&small(extra));
        let viewer = Recorder::start(d.addr, 0);
        // Warm up: a second of frames, so buffers, encoders and the viewer's queue are at size.
        assert!(viewer.wait_for_more(30, Duration::from_secs(20)), "the viewer streams");
        Watched {
            d,
            viewer,
            peak_kb: Arc::new(AtomicU64::new(0)),
            sampling: Arc::new(AtomicBool::new(true)),
            sampler: None,
        }
    }

    /// Run `f` (which returns when its time is up) and note the window of frames it spanned.
    fn window(&self, f: impl FnOnce(&Daemon)) -> Window {
        let before = self.d.status();
        let first = self.viewer.last_header().sequence;
        f(&self.d);
        // What was captured meanwhile must reach the viewer once it is over.
        let last = u64_at(eye_status(&self.d.status(), 0), "sequence") as u32;
        assert!(self.viewer.wait_for_sequence(last, Duration::from_secs(10)), "the viewer never got frame {last}");
        Window { first, last, before, after: self.d.status() }
    }

    /// Judge the daemon by the rules while `attack` runs (it returns when its time is up):
    /// RSS within a few MB of idle, and the viewer's frames. A machine shared with other work
    /// loses a frame now and then by itself (a thread not scheduled in time), so the same
    /// daemon is first watched as long without an attack: the attack may cost the viewer at
    /// most 1 % of its frames beyond that.
    fn judge(mut self, name: &str, attack: impl FnOnce(&Daemon)) -> Daemon {
        let quiet = self.window(|_| hold_until(Instant::now() + ATTACK));
        let pid = self.d.child.id();
        let idle_kb = rss_kb(pid);
        let (peak, on) = (self.peak_kb.clone(), self.sampling.clone());
        self.sampler = Some(std::thread::spawn(move || {
            let clock = Timer::new(false).unwrap();
            clock.set_periodic(Duration::from_millis(20)).unwrap();
            while on.load(Ordering::SeqCst) {
                clock.expirations();
                peak.fetch_max(rss_kb(pid), Ordering::SeqCst);
            }
        }));
        let _stop = StopOnDrop(self.sampling.clone());
        let attacked = self.window(attack);
        self.sampling.store(false, Ordering::SeqCst);
        self.sampler.take().unwrap().join().unwrap();
        let units = self.viewer.stop();
        let peak_kb = self.peak_kb.load(Ordering::SeqCst);
        let (q_got, q_span) = quiet.frames(&units);
        let (got, span) = attacked.frames(&units);
        eprintln!(
            "{name}: RSS idle {} MB, peak {} MB; viewer {got} of {span} frames under attack ({}), \
             {q_got} of {q_span} without",
            idle_kb / 1024,
            peak_kb / 1024,
            attacked.losses()
        );
        assert!(peak_kb <= idle_kb + MAX_GROWTH_KB, "{name}: RSS grew from {idle_kb} kB to {peak_kb} kB");
        assert!(span >= 60, "{name}: the attack lasted {span} frames");
        // Ticks the synthetic camera's capture thread slept through with no request queued
        // ("starved") are CPU time the attacker, on the same two cores, took from the stand-in
        // for a camera, which on a Pi is hardware: counted apart, and bounded, so a loop that
        // stops refilling still fails. What the daemon itself lost is judged against the quiet window.
        let starved = attacked.delta("camera_starved").min(span - got);
        assert!(starved * 4 <= span, "{name}: the camera was starved of requests on {starved} of {span} ticks");
        let lost = (span - got - starved) as f64 / span as f64;
        let lost_quiet = (q_span - q_got) as f64 / q_span.max(1) as f64;
        assert!(
            lost <= lost_quiet + 0.01,
            "{name}: the viewer kept {got} of {span} frames under attack, {q_got} of {q_span} without ({})",
            attacked.losses()
        );
        self.d
    }
}

/// A stretch of the viewer's stream: its first and last sequence, status before and after.
struct Window {
    first: u32,
    last: u32,
    before: Value,
    after: Value,
}

impl Window {
    fn delta(&self, key: &str) -> u64 {
        u64_at(eye_status(&self.after, 0), key) - u64_at(eye_status(&self.before, 0), key)
    }

    /// Frames the viewer got in this window, and how many it should have. Ticks the synthetic
    /// sensor's own thread slept through are not the daemon's doing; everything else lost
    /// (a starved camera, encoder drops, a skipped viewer) is.
    fn frames(&self, units: &[Unit]) -> (u64, u64) {
        let got = units.iter().filter(|u| u.header.sequence > self.first && u.header.sequence <= self.last).count();
        (got as u64, (self.last - self.first) as u64 - self.delta("camera_skipped"))
    }

    fn losses(&self) -> String {
        let d = |k| self.delta(k);
        format!(
            "{} the sensor skipped, {} starved, {} encoder drops, {} viewer drops",
            d("camera_skipped"),
            d("camera_starved"),
            d("encoder_drops"),
            d("drops")
        )
    }
}

/// Stops the RSS sampler however `judge` ends (an attack's assertion may panic).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Send `data` (again and again when `repeat`) until the attack's time is up, as one byte
/// stream: a partial write goes on where it stopped, so frames and lines stay whole. Writes that
/// block (the daemon stopped reading, as it should) just wait for their timeout. Bytes sent.
fn keep_writing(w: &mut impl Write, data: &[u8], repeat: bool, until: Instant) -> u64 {
    let (mut at, mut total) = (0, 0u64);
    while Instant::now() < until && at < data.len() {
        match w.write(&data[at..]) {
            Ok(0) => break,
            Ok(k) => {
                total += k as u64;
                at += k;
                if repeat && at == data.len() {
                    at = 0;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break, // the daemon closed it
        }
    }
    total
}

/// Hold a connection open, doing nothing, until the attack's time is up.
fn hold_until(until: Instant) {
    let clock = Timer::new(false).unwrap();
    clock.set_periodic(Duration::from_millis(50)).unwrap();
    while Instant::now() < until {
        clock.expirations();
    }
}

/// Read and throw away whatever comes, on a thread, until the peer closes; bytes read.
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    })
}

fn pipelined_gets(n: usize) -> Vec<u8> {
    b"GET /controls.js HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(n)
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn pipelined_requests_never_read_cost_a_bounded_queue() {
    Watched::start(&[]).judge("http pipelining, unread", |d| {
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        let until = Instant::now() + ATTACK;
        keep_writing(&mut s, &pipelined_gets(100), true, until);
        hold_until(until);
    });
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn pipelined_requests_read_as_fast_as_served_leave_the_viewer_its_frames() {
    Watched::start(&[]).judge("http pipelining, read", |d| {
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        let reader = drain(s.try_clone().unwrap());
        let sent = keep_writing(&mut s, &pipelined_gets(100), true, Instant::now() + ATTACK);
        s.shutdown(std::net::Shutdown::Both).unwrap();
        let read = reader.join().unwrap();
        assert!(
            read > 1_000_000,
            "responses were served meanwhile: {sent} bytes sent, {read} read\n{}",
            d.log().lines().filter(|l| !l.contains("DEBUG")).collect::<Vec<_>>().join("\n")
        );
    });
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn control_websocket_lines_with_replies_never_read() {
    Watched::start(&[]).judge("/control flood, unread", |d| {
        let ws = WsClient::connect(d.addr, "/control");
        let mut s = ws.0.stream.try_clone().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        // 190 messages of 64 KiB of `a` lines: under the message limit and the frame rate.
        let message = encode_masked(true, Opcode::Text, &b"a\n".repeat(32 * 1024 - 8), [9, 8, 7, 6]);
        let until = Instant::now() + ATTACK;
        keep_writing(&mut s, &message.repeat(190), false, until);
        hold_until(until);
        drop(ws);
    });
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn unix_socket_lines_with_replies_never_read() {
    Watched::start(&[]).judge("unix flood, unread", |d| {
        let mut s = UnixStream::connect(&d.control).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        let until = Instant::now() + ATTACK;
        keep_writing(&mut s, &b"a\n".repeat(16 * 1024), true, until);
        hold_until(until);
        // The robot's own connection still steers meanwhile.
        assert!(d.ctl("look 0 0.1 0").starts_with("ok seq="));
    });
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn a_hundred_thousand_lines_per_write_cost_linear_time() {
    Watched::start(&[]).judge("unix line flood", |d| {
        let mut s = UnixStream::connect(&d.control).unwrap();
        let reader = drain(s.try_clone().unwrap());
        let burst = b"a\n".repeat(100_000);
        let clock = Timer::new(false).unwrap();
        clock.set_periodic(Duration::from_millis(500)).unwrap();
        let until = Instant::now() + ATTACK;
        while Instant::now() < until {
            s.write_all(&burst).unwrap();
            clock.expirations();
        }
        s.shutdown(std::net::Shutdown::Both).unwrap();
        reader.join().unwrap();
    });
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn wrong_tokens_are_held_back_and_logged_once_per_burst() {
    let w = Watched::start(&["--token", "the-right-token-0123"]);
    let d = w.judge("token guessing", |d| {
        let mut ws = WsClient::connect(d.addr, "/control");
        let mut s = ws.0.stream.try_clone().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        let guesses = encode_masked(true, Opcode::Text, &b"auth wrong-guess\n".repeat(50), [1, 2, 3, 4]);
        let clock = Timer::new(false).unwrap();
        clock.set_periodic(Duration::from_millis(100)).unwrap();
        let until = Instant::now() + ATTACK;
        while Instant::now() < until {
            let _ = s.write_all(&guesses); // 500 guesses a second, under the frame limit
            clock.expirations();
        }
        // Each guess is checked only when its address's back-off (100 ms, doubling) is over:
        // about five in four seconds, the rest refused unchecked.
        ws.0.stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut checked = 0;
        while let Ok(Some(Msg::Text(t))) = ws.0.recv() {
            checked += t.lines().filter(|l| *l == "err forbidden wrong token").count();
        }
        assert!((1..=10).contains(&checked), "{checked} of 2000 guesses checked");
    });
    let warnings = d.log().lines().filter(|l| l.contains("WARN") && l.contains("wrong token")).count();
    assert!(warnings <= 3, "wrong tokens are logged once per burst, not per guess: {warnings} lines\n{}", d.log());
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn fifty_thousand_pings_in_one_write_are_counted_one_by_one() {
    Watched::start(&[]).judge("ping flood", |d| {
        let until = Instant::now() + ATTACK;
        let mut s = control_from(d.addr, std::net::Ipv4Addr::LOCALHOST).expect("upgraded");
        s.write_all(&encode_masked(true, Opcode::Ping, b"p", [1, 2, 3, 4]).repeat(50_000)).unwrap();
        // Read the raw answer to the end: pongs (unmasked, payload `p`), then a close frame.
        let mut got = Vec::new();
        let end = s.read_to_end(&mut got);
        let timed_out = end
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        assert!(!timed_out, "the flooding connection is closed: {end:?}");
        let pongs = got.windows(3).filter(|w| *w == [0x8a, 0x01, b'p']).count();
        // A close frame, if one got through: a socket closed with unread input (the rest of
        // the pings) is reset, and the reset may overtake it.
        let close = got
            .windows(4)
            .position(|w| w[0] == 0x88 && w[1] >= 2)
            .map(|i| u16::from_be_bytes([got[i + 2], got[i + 3]]));
        assert!(close.is_none_or(|c| c == 1008), "closed for the flood: {close:?}");
        assert!(pongs <= 250, "the frame budget (burst 200) is counted per frame: {pongs} pongs");
        hold_until(until);
    });
}

/// A WebSocket upgrade on `/control` from the loopback address `from`, held open.
fn control_from(addr: SocketAddr, from: std::net::Ipv4Addr) -> Option<TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).ok()?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0))).ok()?;
    let SocketAddr::V4(v4) = addr else { panic!("v4") };
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).ok()?;
    let mut s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET /control HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    head.starts_with(b"HTTP/1.1 101").then_some(s)
}

#[test]
#[ignore = "volume attack: make test-hostile"]
fn the_network_at_every_limit_never_locks_the_robot_out() {
    Watched::start(&[]).judge("every network limit full", |d| {
        // Thirty /control sockets from each of nine loopback addresses: under the per-address
        // cap, over the total. The viewer and these hold every network slot there is.
        let mut held = Vec::new();
        for host in 2..=10u8 {
            for _ in 0..30 {
                held.extend(control_from(d.addr, std::net::Ipv4Addr::new(127, 0, 0, host)));
            }
        }
        assert!(held.len() >= 250, "{} upgrades taken", held.len());
        let refused = control_from(d.addr, std::net::Ipv4Addr::new(127, 0, 0, 11));
        assert!(refused.is_none(), "the network is full");
        // The robot's controller steers over its own socket all the while, at 50 commands/s
        // on one connection, as a control loop would; and a new connection still gets in.
        assert!(d.ctl("status").starts_with("ok {"), "the control socket accepts");
        let robot = UnixStream::connect(&d.control).unwrap();
        let replies = watch_lines(robot.try_clone().unwrap());
        let mut robot = robot;
        let clock = Timer::new(false).unwrap();
        clock.set_periodic(Duration::from_millis(20)).unwrap();
        let until = Instant::now() + ATTACK;
        let mut steered = 0;
        while Instant::now() < until {
            let x = if steered % 2 == 0 { 0.1 } else { -0.1 };
            robot.write_all(format!("look 0 {x} 0\n").as_bytes()).unwrap();
            let reply = replies.recv_timeout(Duration::from_secs(5)).expect("a reply");
            assert!(reply.starts_with("ok seq="), "{reply}");
            steered += 1;
            clock.expirations();
        }
        assert!(steered > 50, "{steered} commands answered");
        drop(held);
    });
}
