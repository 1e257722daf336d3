//! Shared test harness: start the real daemon on an ephemeral loopback port, talk HTTP,
//! WebSocket and the control socket to it, and decode what it sends with ffmpeg.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pieyes::stream::wire::VideoHeader;

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub control: PathBuf,
    pub log: Arc<Mutex<String>>,
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
fn start_timeout() -> Duration {
    Duration::from_secs(if emulated() { 60 } else { 20 })
}

/// Collect a just-spawned daemon's stderr (piped) into a shared log, and wait until it says
/// where it listens; a daemon that does not within the start-up timeout is killed, and the
/// test fails with its log.
pub fn follow_log(child: &mut Child) -> (SocketAddr, Arc<Mutex<String>>) {
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap().to_string());
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = match rx.recv_timeout(start_timeout()) {
        Ok(a) => a.parse().unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("daemon did not start; log:\n{}", log.lock().unwrap());
        }
    };
    (addr, log)
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
        let mut child = pieyes_command()
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
            .expect("spawn pieyes");
        let (addr, log) = follow_log(&mut child);
        Daemon { child, addr, control, log, _dir: dir }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
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
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
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

/// Collects one eye's access units on a thread until stopped.
pub struct Recorder {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Unit>>,
}

impl Recorder {
    /// Subscribe and wait until the first unit arrived (so later commands are seen).
    pub fn start(addr: SocketAddr, eye: u8) -> Recorder {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut ws = pieyes::cli::ws_client::WsClient::connect(addr, &format!("/cam{eye}"), "").expect("connect");
            let mut units = Vec::new();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                match ws.next_unit().expect("read") {
                    Some((header, annexb)) => {
                        units.push(Unit { header, annexb });
                        if units.len() == 1 {
                            let _ = tx.send(());
                        }
                    }
                    None => break,
                }
            }
            units
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("first frame");
        Recorder { stop, handle }
    }

    pub fn stop(self) -> Vec<Unit> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap()
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
