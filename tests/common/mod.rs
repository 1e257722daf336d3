//! Shared test harness: start the real daemon on an ephemeral loopback port, talk HTTP,
//! WebSocket and the control socket to it, and decode what it sends with ffmpeg. Every wait is
//! for a condition with a deadline (`waiting`).
#![allow(dead_code)]

mod waiting;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pieyes::stream::wire::VideoHeader;
pub use serde_json::Value;
pub use waiting::{Log, wait_until};

/// The small rig most tests run: 320x240 eyes from a 640x360 synthetic sensor (cheap to
/// encode, room to crop).
pub const SMALL: &[&str] = &["--size", "320x240", "--sensor", "640x360"];

/// `SMALL` and more flags.
pub fn small(extra: &[&'static str]) -> Vec<&'static str> {
    SMALL.iter().chain(extra).copied().collect()
}

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub control: PathBuf,
    pub log: Arc<Log>,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pieyes-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pieyes` as a `Command`. When the tests are cross-compiled (`make aarch64`), the binary is
/// for another architecture: `PIEYES_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`,
/// the same words as cargo's target runner) is put in front of it. Unset or empty: run it directly.
pub fn pieyes_command() -> Command {
    let bin = env!("CARGO_BIN_EXE_pieyes");
    let runner = std::env::var("PIEYES_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// True when the daemon runs under an emulator (`PIEYES_TEST_RUNNER` set, as by `make aarch64`).
pub fn emulated() -> bool {
    std::env::var("PIEYES_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// How long to wait for the daemon to say it listens. Under an emulator (`PIEYES_TEST_RUNNER`)
/// start-up is several times slower, so allow more there.
pub fn start_timeout() -> Duration {
    Duration::from_secs(if emulated() { 60 } else { 20 })
}

/// Follow a just-spawned daemon's stderr (piped) and wait until it listens (`waiting::follow_log`
/// with the start-up timeout).
pub fn follow_log(child: &mut Child) -> (SocketAddr, Arc<Log>) {
    waiting::follow_log(child, start_timeout())
}

impl Daemon {
    /// Start `pieyes` with the given extra flags; waits until it listens.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with_env(args, &[])
    }

    /// `start` with extra environment variables. systemd's notify variables are never inherited
    /// from the test's own environment: only those given here reach the daemon.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let dir = TempDir::new("daemon");
        let state = dir.0.join("state.conf");
        Self::spawn(args, env, dir, &state)
    }

    /// Start with a given state file (which may outlive this daemon, for restart tests).
    pub fn start_with_state(args: &[&str], dir: TempDir, state: &Path) -> Daemon {
        Self::spawn(args, &[], dir, state)
    }

    fn spawn(args: &[&str], env: &[(&str, &std::ffi::OsStr)], dir: TempDir, state: &Path) -> Daemon {
        let control = dir.0.join("ctl.sock");
        let start = || {
            pieyes_command()
                .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--control"])
                .arg(&control)
                .arg("--state")
                .arg(state)
                .args(args)
                .env("PIEYES_LOG", "debug")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_USEC")
                .env_remove("WATCHDOG_PID")
                .envs(env.iter().copied())
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn pieyes")
        };
        let mut child = start();
        let (addr, log) = match waiting::try_follow_log(&mut child, start_timeout()) {
            Ok(started) => started,
            // Under qemu-user a spawned process has been seen to print nothing at all for a
            // minute (make aarch64's sd_notify test, once): the emulated test forks while its
            // other threads run, which qemu-user does not always survive. A daemon that printed
            // nothing never ran pieyes' code, so it is started once more; one that said
            // anything fails as it is.
            Err(e) if e.silent && emulated() => {
                eprintln!("the daemon printed nothing, trying once more: {}", e.message);
                child = start();
                waiting::follow_log(&mut child, start_timeout())
            }
            Err(e) => panic!("{}", e.message),
        };
        Daemon { child, addr, control, log, _dir: dir }
    }

    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Wait until a log line contains `needle`, at most `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        self.log.wait_for(needle, limit)
    }

    /// `status`, parsed.
    pub fn status(&self) -> Value {
        parse_reply_json(&self.ctl("status"))
    }

    /// Send one control line over the Unix socket, return the reply line.
    pub fn ctl(&self, line: &str) -> String {
        let mut s = UnixStream::connect(&self.control).expect("connect control socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    }

    pub fn signal(&self, sig: i32) {
        let sig = nix::sys::signal::Signal::try_from(sig).expect("a signal number");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).expect("kill");
    }

    /// Wait for exit, with a deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP exchange: send `req` bytes, read until the server closes or `timeout`.
pub fn http_raw(addr: SocketAddr, req: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// GET with `Connection: close`: (status, head, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let raw = http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(10),
    );
    split_response(&raw)
}

pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[end + 4..].to_vec())
}

/// The JSON of an `ok {…}` reply (`status`, `watch`'s first line after `ok watching `).
pub fn parse_reply_json(reply: &str) -> Value {
    let json = reply.trim_start_matches("ok ").trim_start_matches("watching ");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {reply}"))
}

/// A JSON document (a hello, `/status`, `record`'s summary).
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// An unsigned number at `key` of `v` (panics with the document when absent).
pub fn u64_at(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no unsigned {key} in {v}"))
}

/// A number at `key` of `v`.
pub fn f64_at(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// Eye `eye`'s entry of a `status` document.
pub fn eye_status(status: &Value, eye: usize) -> &Value {
    &status["eyes"][eye]
}

/// The sum of `key` over both eyes of a `status` document.
pub fn eyes_sum(status: &Value, key: &str) -> u64 {
    status["eyes"].as_array().expect("eyes").iter().map(|e| u64_at(e, key)).sum()
}

pub use pieyes::cli::ws_client::Msg;

/// The library's client with test-friendly panics.
pub struct WsClient(pub pieyes::cli::ws_client::WsClient);

impl WsClient {
    pub fn connect(addr: SocketAddr, path: &str) -> WsClient {
        Self::connect_with(addr, path, "")
    }
    pub fn connect_with(addr: SocketAddr, path: &str, extra_headers: &str) -> WsClient {
        WsClient(pieyes::cli::ws_client::WsClient::connect(addr, path, extra_headers).expect("websocket connect"))
    }
    pub fn recv(&mut self) -> Option<Msg> {
        self.0.recv().expect("websocket read")
    }
    pub fn send_text(&mut self, t: &str) {
        self.0.send_text(t).unwrap()
    }
    pub fn send_raw(&mut self, b: &[u8]) {
        self.0.stream.write_all(b).unwrap()
    }
    pub fn command(&mut self, t: &str) -> String {
        self.0.command(t).expect("command reply")
    }
}

/// One received video message.
pub struct Unit {
    pub header: VideoHeader,
    pub annexb: Vec<u8>,
}

/// Subscribe to an eye and collect `n` access units (after the hello). Returns (hello, units).
pub fn collect_units(addr: SocketAddr, eye: u8, n: usize) -> (String, Vec<Unit>) {
    let mut ws = WsClient::connect(addr, &format!("/cam{eye}"));
    let hello = match ws.recv() {
        Some(Msg::Text(t)) => t,
        _ => panic!("expected a hello"),
    };
    let mut units = Vec::new();
    while units.len() < n {
        match ws.recv() {
            Some(Msg::Binary(b)) => {
                let (h, payload) = VideoHeader::parse(&b).expect("video header");
                units.push(Unit { header: h, annexb: payload.to_vec() });
            }
            Some(_) => {}
            None => panic!("stream ended after {} units", units.len()),
        }
    }
    (hello, units)
}

pub fn write_h264(path: &Path, units: &[Unit]) {
    let mut f = std::fs::File::create(path).unwrap();
    for u in units {
        f.write_all(&u.annexb).unwrap();
    }
}

/// ffprobe's view of the first video stream: (profile, width, height, level).
pub fn ffprobe(path: &Path) -> (String, u32, u32, i32) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=profile,width,height,level",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed by `make test`");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").to_string();
    (get("profile"), get("width").parse().unwrap(), get("height").parse().unwrap(), get("level").parse().unwrap_or(0))
}

/// Decode an Annex-B file with ffmpeg into I420 frames; asserts no decode errors.
pub fn decode_i420(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("ffmpeg is installed by `make test`");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "ffmpeg reported decode errors: {}", String::from_utf8_lossy(&out.stderr));
    let frame = (w * h * 3 / 2) as usize;
    assert_eq!(out.stdout.len() % frame, 0);
    out.stdout.chunks(frame).map(|c| c.to_vec()).collect()
}

/// What a `Recorder` has received so far; waiters wake on each message.
#[derive(Default)]
struct Received {
    got: Mutex<(Vec<Unit>, Vec<String>)>,
    grew: Condvar,
}

/// Collects one eye's access units (and its text messages) on a thread until stopped.
pub struct Recorder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    received: Arc<Received>,
    handle: std::thread::JoinHandle<()>,
}

impl Recorder {
    /// Subscribe and wait until the first unit arrived (so later commands are seen).
    pub fn start(addr: SocketAddr, eye: u8) -> Recorder {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let received = Arc::new(Received::default());
        let (s, r) = (stop.clone(), received.clone());
        let handle = std::thread::spawn(move || {
            let mut ws = pieyes::cli::ws_client::WsClient::connect(addr, &format!("/cam{eye}"), "").expect("connect");
            // Wake now and then to see `stop`, also when the eye sends nothing (a stalled camera).
            ws.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let msg = match ws.recv() {
                    Ok(Some(Msg::Close(_))) | Ok(None) => break,
                    Ok(Some(m)) => m,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(e) => panic!("eye {eye}: {e}"),
                };
                let mut got = r.got.lock().unwrap();
                match msg {
                    Msg::Binary(b) => {
                        let (header, payload) = VideoHeader::parse(&b).expect("video header");
                        got.0.push(Unit { header, annexb: payload.to_vec() });
                    }
                    Msg::Text(t) => got.1.push(t),
                    Msg::Close(_) => unreachable!(),
                }
                r.grew.notify_all();
            }
        });
        let rec = Recorder { stop, received, handle };
        assert!(rec.wait_for(start_timeout(), |u| !u.is_empty()), "no frame from eye {eye}");
        rec
    }

    /// Wait until the units received so far satisfy `cond`, at most `limit`; whether they did.
    pub fn wait_for(&self, limit: Duration, mut cond: impl FnMut(&[Unit]) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut got = self.received.got.lock().unwrap();
        loop {
            if cond(&got.0) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            got = self.received.grew.wait_timeout(got, end - now).unwrap().0;
        }
    }

    /// Wait until a frame of sequence `seq` or later has arrived (frames a loaded machine
    /// drops are skipped over), at most `limit`.
    pub fn wait_for_sequence(&self, seq: u32, limit: Duration) -> bool {
        self.wait_for(limit, |u| u.last().is_some_and(|u| u.header.sequence >= seq))
    }

    /// Wait until `n` more units than now have arrived, at most `limit`.
    pub fn wait_for_more(&self, n: usize, limit: Duration) -> bool {
        let have = self.received.got.lock().unwrap().0.len();
        self.wait_for(limit, |u| u.len() >= have + n)
    }

    /// The newest unit's header.
    pub fn last_header(&self) -> VideoHeader {
        self.received.got.lock().unwrap().0.last().expect("a unit").header
    }

    pub fn stop(self) -> Vec<Unit> {
        self.stop_with_texts().0
    }

    /// Stop; the units and the text messages (hello, health) received.
    pub fn stop_with_texts(self) -> (Vec<Unit>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap();
        std::mem::take(&mut *self.received.got.lock().unwrap())
    }
}

/// Decode units with ffmpeg and read each picture's stamp, checking the stamp agrees with
/// the wire header (a repeated stamp means the encoder dropped the stamp's macroblocks).
pub fn decode_stamped(units: &[Unit], w: u32, h: u32) -> Vec<(pieyes::camera::stamp::Stamp, Vec<u8>)> {
    let dir = TempDir::new("decode");
    let path = dir.0.join("s.h264");
    write_h264(&path, units);
    let frames = decode_i420(&path, w, h);
    assert_eq!(frames.len(), units.len());
    frames
        .into_iter()
        .zip(units)
        .map(|(f, u)| {
            let s = pieyes::camera::stamp::Stamp::read(&f, w, w as usize).expect("stamp readable");
            assert_eq!((s.sequence, s.crop), (u.header.sequence, u.header.crop), "stamp agrees with header");
            (s, f)
        })
        .collect()
}

/// PSNR of a decoded frame against the synthetic scene rendered through `crop`.
pub fn scene_psnr(
    scene: &pieyes::camera::scene::Scene,
    eye: u8,
    t_us: u64,
    crop: pieyes::camera::Rect,
    flip: pieyes::camera::Flip,
    frame: &[u8],
    out: pieyes::camera::Size,
) -> f64 {
    let layout = pieyes::camera::I420Layout::new(out);
    let mut expect = vec![0u8; layout.frame_len()];
    scene.render(eye, t_us, crop, layout, &mut expect, &mut Vec::new());
    pieyes::camera::flip_i420(layout, &mut expect, flip);
    let band = pieyes::camera::stamp::band_height(out.w) as usize;
    psnr(&frame[..layout.y_len()], &expect[..layout.y_len()], out.w as usize, band)
}

/// Mean squared error → PSNR (dB) between two luma planes, skipping the first `skip_rows`.
pub fn psnr(a: &[u8], b: &[u8], w: usize, skip_rows: usize) -> f64 {
    let (a, b) = (&a[skip_rows * w..], &b[skip_rows * w..]);
    let mse: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { 99.0 } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// Every line the daemon writes on a Unix control connection, as they come (a thread reads
/// them), so a test can wait for one with a deadline (`recv_timeout`).
pub fn watch_lines(stream: std::os::unix::net::UnixStream) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
