//! Bench plumbing: the daemon as a child process, its CPU per thread and memory from /proc,
//! and a lean many-connection viewer (one thread, poll()) that measures capture→received.
#![allow(dead_code)]

// The tests' way of following a daemon's log and waiting on conditions, shared.
#[path = "../../tests/common/waiting.rs"]
mod waiting;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pieyes::histogram::Histogram;
use pieyes::stream::wire::VideoHeader;
use pieyes::sys::clock::monotonic_us;
use pieyes::ws::frame::{self, Opcode, Role};
use pieyes::ws::handshake;
use serde_json::Value;
pub use waiting::{Log, wait_until};

pub fn ms(us: f64) -> f64 {
    us / 1000.0
}

pub struct DaemonProc {
    pub child: Child,
    pub addr: SocketAddr,
    pub control: PathBuf,
    pub log: std::sync::Arc<Log>,
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.control);
        let _ = std::fs::remove_file(self.control.with_extension("state"));
    }
}

pub fn start_daemon(extra: &[&str]) -> DaemonProc {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let control = std::env::temp_dir().join(format!("pieyes-bench-{}-{n}.sock", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pieyes"))
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--control"])
        .arg(&control)
        .arg("--state")
        .arg(control.with_extension("state"))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pieyes");
    let (addr, log) = waiting::follow_log(&mut child, Duration::from_secs(30));
    DaemonProc { child, addr, control, log }
}

pub fn ctl(control: &Path, line: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(control).expect("control socket");
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut r = String::new();
    BufReader::new(s).read_line(&mut r).unwrap();
    r
}

/// `status`, parsed.
pub fn status(control: &Path) -> Value {
    let reply = ctl(control, "status");
    serde_json::from_str(reply.trim_start_matches("ok ")).unwrap_or_else(|e| panic!("status not JSON ({e}): {reply}"))
}

/// A number of a status document (NaN when absent).
pub fn number(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The per-eye entries of a status document.
pub fn eyes(status: &Value) -> &[Value] {
    status["eyes"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Sum of a key over both eyes of a status document.
pub fn eyes_sum(status: &Value, key: &str) -> f64 {
    eyes(status).iter().map(|e| number(e, key)).sum()
}

/// Largest of an eye's `latency_ms` figure over both eyes.
pub fn eyes_latency_max(status: &Value, key: &str) -> f64 {
    eyes(status).iter().map(|e| number(&e["latency_ms"], key)).fold(0.0, f64::max)
}

/// Largest of a per-viewer figure (`viewer_latency_ms`) over every viewer of both eyes.
pub fn viewers_max(status: &Value, key: &str) -> f64 {
    eyes(status)
        .iter()
        .flat_map(|e| e["viewer_latency_ms"].as_array().cloned().unwrap_or_default())
        .map(|v| number(&v, key))
        .fold(0.0, f64::max)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// utime + stime of a /proc stat file, µs.
fn stat_cpu_us(stat: &Path) -> f64 {
    let s = std::fs::read_to_string(stat).unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let t: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    t * 1e6 / clock_ticks()
}

/// CPU µs of the whole process and of each thread by name.
pub fn cpu_by_thread(pid: u32) -> (f64, HashMap<String, f64>) {
    let mut threads = HashMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
            *threads.entry(name).or_insert(0.0) += stat_cpu_us(&t.path().join("stat"));
        }
    }
    (stat_cpu_us(&PathBuf::from(format!("/proc/{pid}/stat"))), threads)
}

pub fn status_kb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

/// A CPU/frames window over the daemon.
pub struct Window {
    pid: u32,
    control: PathBuf,
    t0: Instant,
    cpu0: (f64, HashMap<String, f64>),
    frames0: f64,
    allocations0: f64,
}

pub struct WindowResult {
    pub wall_s: f64,
    pub frames: f64,
    pub cpu_us: f64,
    pub camera_cpu_us: f64,
    pub loop_cpu_us: f64,
    pub encoder_cpu_us: f64,
    /// Heap allocations the daemon made in the window (its `status` counter).
    pub allocations: f64,
    pub status: Value,
}

impl Window {
    pub fn start(d: &DaemonProc) -> Window {
        let status = status(&d.control);
        Window {
            pid: d.child.id(),
            control: d.control.clone(),
            t0: Instant::now(),
            cpu0: cpu_by_thread(d.child.id()),
            frames0: eyes_sum(&status, "frames"),
            allocations0: status["allocations"].as_f64().unwrap_or(f64::NAN),
        }
    }

    pub fn end(self) -> WindowResult {
        let status = status(&self.control);
        let cpu1 = cpu_by_thread(self.pid);
        let d = |name: &str| cpu1.1.get(name).copied().unwrap_or(0.0) - self.cpu0.1.get(name).copied().unwrap_or(0.0);
        WindowResult {
            wall_s: self.t0.elapsed().as_secs_f64(),
            frames: eyes_sum(&status, "frames") - self.frames0,
            cpu_us: cpu1.0 - self.cpu0.0,
            camera_cpu_us: d("synthetic-cam"),
            loop_cpu_us: d("pieyes"),
            encoder_cpu_us: d("encoder-0") + d("encoder-1"),
            allocations: status["allocations"].as_f64().unwrap_or(f64::NAN) - self.allocations0,
            status,
        }
    }
}

/// One lean viewer connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    eye: u8,
    last_seq: Option<u32>,
    frames: u64,
    gaps: u64,
    stalled: bool,
    closed: bool,
}

/// Many viewers on one thread: connect (each from its own 127.0.0.x, under the per-address
/// limit), handshake, then poll and parse frames; `stalled` ones never read after the hello.
pub struct Viewers {
    conns: Vec<Conn>,
    pub latency: Histogram,
    pub per_eye_frames: [u64; 2],
    /// When Some: every frame the first viewer of each eye receives (see [`FrameSeen`]).
    pub frames_seen: Option<Vec<FrameSeen>>,
}

/// A frame as a viewer received it: its eye, capture time (µs), H.264 bytes, keyframe or not.
#[derive(Clone, Copy, Debug)]
pub struct FrameSeen {
    pub eye: u8,
    pub capture_us: u64,
    pub bytes: usize,
    pub keyframe: bool,
}

fn connect_from(addr: SocketAddr, local: u8) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, local, 0)).unwrap();
    let SocketAddr::V4(v4) = addr else { panic!("v4") };
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).unwrap();
    let s = TcpStream::from(fd);
    s.set_nodelay(true).unwrap();
    s
}

impl Viewers {
    /// `n` viewers per eye (`eyes` = 1 or 2), plus `stalled` extra viewers on eye 0.
    pub fn connect(addr: SocketAddr, n: usize, eyes: u8, stalled: usize) -> Viewers {
        let mut conns = Vec::new();
        for i in 0..(n * eyes as usize + stalled) {
            let eye = if i < n * eyes as usize { (i % eyes as usize) as u8 } else { 0 };
            let mut stream = connect_from(addr, 2 + (i / 16) as u8);
            let key = handshake::client_key([i as u8; 16]);
            stream
                .write_all(handshake::client_request(&addr.to_string(), &format!("/cam{eye}"), &key, "").as_bytes())
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                let k = stream.read(&mut chunk).unwrap();
                assert!(k > 0);
                buf.extend_from_slice(&chunk[..k]);
            };
            handshake::check_response(&buf[..end], &key).expect("upgraded");
            let is_stalled = i >= n * eyes as usize;
            if is_stalled {
                use nix::sys::socket::{setsockopt, sockopt};
                setsockopt(&stream, sockopt::RcvBuf, &4096).unwrap();
            }
            stream.set_nonblocking(true).unwrap();
            conns.push(Conn {
                stream,
                buf: buf[end..].to_vec(),
                eye,
                last_seq: None,
                frames: 0,
                gaps: 0,
                stalled: is_stalled,
                closed: false,
            });
        }
        Viewers { conns, latency: Histogram::new(), per_eye_frames: [0, 0], frames_seen: None }
    }

    /// Read and parse for `dur`.
    pub fn run(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        let mut chunk = vec![0u8; 256 * 1024];
        while Instant::now() < end {
            let active: Vec<usize> =
                (0..self.conns.len()).filter(|&i| !self.conns[i].stalled && !self.conns[i].closed).collect();
            let mut fds: Vec<PollFd> =
                active.iter().map(|&i| PollFd::new(self.conns[i].stream.as_fd(), PollFlags::POLLIN)).collect();
            let _ = poll(&mut fds, PollTimeout::from(50u16));
            let ready: Vec<usize> = fds
                .iter()
                .zip(&active)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, &i)| i)
                .collect();
            drop(fds);
            for i in ready {
                // The first connection of each eye logs what it receives.
                let first_of_eye = self.conns.iter().position(|o| o.eye == self.conns[i].eye) == Some(i);
                let c = &mut self.conns[i];
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => {
                            c.closed = true;
                            break;
                        }
                        Ok(k) => c.buf.extend_from_slice(&chunk[..k]),
                        Err(_) => break,
                    }
                }
                let now = monotonic_us();
                let mut used = 0;
                while let Ok(Some((f, n))) = frame::decode(&c.buf[used..], Role::Client, 64 << 20) {
                    used += n;
                    match f.opcode {
                        Opcode::Binary => {
                            if let Some((h, au)) = VideoHeader::parse(&f.payload) {
                                self.latency.record(now.saturating_sub(h.capture_us));
                                if first_of_eye && let Some(log) = self.frames_seen.as_mut() {
                                    log.push(FrameSeen {
                                        eye: h.eye,
                                        capture_us: h.capture_us,
                                        bytes: au.len(),
                                        keyframe: h.keyframe,
                                    });
                                }
                                if let Some(prev) = c.last_seq {
                                    c.gaps += h.sequence.wrapping_sub(prev).saturating_sub(1) as u64;
                                }
                                c.last_seq = Some(h.sequence);
                                c.frames += 1;
                                self.per_eye_frames[c.eye as usize] += 1;
                            }
                        }
                        Opcode::Ping => {
                            let _ =
                                c.stream.write_all(&frame::encode_masked(true, Opcode::Pong, &f.payload, [1, 2, 3, 4]));
                        }
                        Opcode::Close => c.closed = true,
                        _ => {}
                    }
                }
                c.buf.drain(..used);
            }
        }
    }

    /// Frames missing between the first and last frame received, healthy viewers only.
    pub fn healthy_gaps(&self) -> u64 {
        self.conns.iter().filter(|c| !c.stalled).map(|c| c.gaps).sum()
    }

    pub fn healthy_count(&self) -> usize {
        self.conns.iter().filter(|c| !c.stalled).count()
    }
}

/// A frame clock: ticks at absolute CLOCK_MONOTONIC times on a timerfd, as a camera's frames
/// come (what the encoder-alone scenario paces itself by, and where a command is timed).
pub struct Ticks(pieyes::sys::timer::Timer);

impl Ticks {
    /// Every `period`, the first at `first_us`.
    pub fn new(first_us: u64, period: Duration) -> Ticks {
        let t = pieyes::sys::timer::Timer::new(false).expect("timerfd");
        t.set_periodic_from(first_us.max(1), period).expect("timerfd_settime");
        Ticks(t)
    }

    /// Wait for the next tick (at once if it has passed).
    pub fn wait(&self) {
        self.0.expirations();
    }
}
