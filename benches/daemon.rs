//! `make bench`: measured figures for 2 eyes × 960x1080 @ 30 fps, synthetic camera.
//!
//! - encoder alone: OpenH264 with the daemon's settings on the same synthetic frames, one
//!   thread, CPU time per frame (the floor the daemon is measured against);
//! - daemon with one viewer per eye: the release binary, CPU per frame and its ratio to the
//!   encoder alone (whole process, and without the synthetic camera's thread, which on a Pi
//!   is the ISP's work), RSS, capture→sent (daemon histogram) and capture→received (client).
//!
//! Prints a table and writes JSON to bench/results/. `PIEYES_BENCH_SECONDS` (default 20) sets
//! the measured window.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pieyes::camera::scene::Scene;
use pieyes::camera::stamp::Stamp;
use pieyes::camera::{FrameBuffer, FrameLayout, I420Layout, Rect, Size, full_view};
use pieyes::client::WsClient;
use pieyes::encoder::EncoderConfig;
use pieyes::encoder::picture::Scratch;
use pieyes::encoder::software::{encode_one, new_h264_encoder};
use pieyes::histogram::Histogram;
use pieyes::json::{self, Obj};
use pieyes::sys::clock::{monotonic_us, thread_cpu_us};
use pieyes::sys::shm::SharedMemory;

const OUT: Size = Size { w: 960, h: 1080 };
const SENSOR: Size = Size { w: 2304, h: 1296 };
const FPS: u32 = 30;
const BITRATE: u32 = 3_000_000;

fn ms(us: f64) -> f64 {
    us / 1000.0
}

/// OpenH264 alone on the synthetic frames the daemon would produce.
fn encoder_alone() -> (f64, f64, f64, u64) {
    let layout = I420Layout::new(OUT);
    let scene = Scene::new(SENSOR, 24);
    let crop = full_view(Rect::new(0, 0, SENSOR.w, SENSOR.h), OUT);
    let cfg = EncoderConfig { width: OUT.w, height: OUT.h, fps: FPS, bitrate_bps: BITRATE, gop_frames: 2 * FPS };
    let mut enc = new_h264_encoder(&cfg).expect("encoder");
    let mut buf = FrameBuffer {
        index: 0,
        memory: SharedMemory::memfd("bench", layout.frame_len()).unwrap(),
        layout: FrameLayout::i420(OUT),
    };
    let mut xmap = Vec::new();
    let mut scratch = Scratch::default();
    let mut h = Histogram::new();
    let mut bytes = 0u64;
    let frames = 300u32;
    for i in 0..frames {
        let t = i as u64 * 1_000_000 / FPS as u64;
        scene.render((i % 2) as u8, t, crop, layout, buf.pixels_mut(), &mut xmap);
        Stamp { eye: 0, sequence: i, capture_us: t, crop }.paint(layout, buf.pixels_mut());
        let c0 = thread_cpu_us();
        let au = encode_one(&mut enc, &buf, false, &mut scratch).expect("encode");
        h.record(thread_cpu_us() - c0);
        bytes += au.annexb().len() as u64;
    }
    (h.mean(), h.quantile(0.5) as f64, h.quantile(0.99) as f64, bytes * 8 * FPS as u64 / frames as u64)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// utime + stime of a /proc stat file, in µs.
fn cpu_us(stat: &Path) -> f64 {
    let s = std::fs::read_to_string(stat).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks * 1e6 / clock_ticks()
}

fn thread_stat(pid: u32, name: &str) -> Option<PathBuf> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = t.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == name {
            return Some(dir.join("stat"));
        }
    }
    None
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

fn json_number(s: &str, key: &str) -> f64 {
    let k = format!("\"{key}\":");
    s.find(&k)
        .map(|i| &s[i + k.len()..])
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

struct DaemonProc {
    child: Child,
    addr: std::net::SocketAddr,
    control: PathBuf,
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.control);
    }
}

fn start_daemon() -> DaemonProc {
    let control = std::env::temp_dir().join(format!("pieyes-bench-{}.sock", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pieyes"))
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--fps", &FPS.to_string(), "--control"])
        .arg(&control)
        .arg("--state")
        .arg(control.with_extension("state"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pieyes");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("daemon output").expect("read");
        if let Some(rest) = l.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep draining the log
    DaemonProc { child, addr, control }
}

fn ctl(control: &Path, line: &str) -> String {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(control).expect("control socket");
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut r = String::new();
    BufReader::new(s).read_line(&mut r).unwrap();
    r
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench probing for test names
    }
    let secs: u64 = std::env::var("PIEYES_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("pieyes bench: 2 eyes × {OUT} @ {FPS} fps, {BITRATE} bit/s, {cores} cores, {secs} s window");

    let (enc_mean, enc_p50, enc_p99, enc_bps) = encoder_alone();

    let d = start_daemon();
    let pid = d.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = (0..2u8)
        .map(|eye| {
            let (addr, stop) = (d.addr, stop.clone());
            std::thread::spawn(move || {
                let mut ws = WsClient::connect(addr, &format!("/cam{eye}"), "").expect("viewer connects");
                let mut h = Histogram::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match ws.next_unit() {
                        Ok(Some((hdr, _))) => {
                            h.record(monotonic_us().saturating_sub(hdr.capture_us));
                            n += 1;
                        }
                        _ => break,
                    }
                }
                (n, h)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3)); // warm-up: encoders settled, viewers joined
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let cam_stat = thread_stat(pid, "synthetic-cam");
    let frames = |s: &str| json_number(s, "frames");
    let s0 = ctl(&d.control, "status");
    let (cpu0, cam0, t0) = (cpu_us(&stat), cam_stat.as_deref().map_or(0.0, cpu_us), Instant::now());
    let f0: f64 = s0.split("\"eye\":").skip(1).map(frames).sum();
    std::thread::sleep(Duration::from_secs(secs));
    let s1 = ctl(&d.control, "status");
    let (cpu1, cam1, wall) = (cpu_us(&stat), cam_stat.as_deref().map_or(0.0, cpu_us), t0.elapsed().as_secs_f64());
    let f1: f64 = s1.split("\"eye\":").skip(1).map(frames).sum();
    let rss_kb = status_kb(pid, "VmRSS:");
    let hwm_kb = status_kb(pid, "VmHWM:");
    stop.store(true, Ordering::Relaxed);
    let mut recv = Histogram::new();
    let mut received = 0;
    drop(d); // closes the viewers' sockets too
    for v in viewers {
        let (n, h) = v.join().unwrap();
        received += n;
        recv.merge(&h);
    }
    let eyes: Vec<&str> = s1.split("\"eye\":").skip(1).collect();
    let sent_p50 = eyes.iter().map(|e| json_number(e, "capture_sent_p50")).fold(0.0, f64::max);
    let sent_p99 = eyes.iter().map(|e| json_number(e, "capture_sent_p99")).fold(0.0, f64::max);
    let drops: f64 = eyes.iter().map(|e| json_number(e, "drops") + json_number(e, "encoder_drops")).sum();

    let frames_window = f1 - f0;
    let cpu_per_frame = (cpu1 - cpu0) / frames_window;
    let cpu_per_frame_no_cam = (cpu1 - cpu0 - (cam1 - cam0)) / frames_window;
    let cpu_share = (cpu1 - cpu0) / (wall * 1e6);

    let rows = [
        ("encoder alone: CPU per frame (mean)", format!("{:.2} ms", ms(enc_mean))),
        ("encoder alone: CPU per frame p50 / p99", format!("{:.2} / {:.2} ms", ms(enc_p50), ms(enc_p99))),
        ("encoder alone: bitrate", format!("{:.2} Mbit/s", enc_bps as f64 / 1e6)),
        (
            "daemon: frames encoded in window (2 eyes)",
            format!("{frames_window:.0} ({:.1} fps/eye)", frames_window / wall / 2.0),
        ),
        ("daemon: CPU per frame (whole process)", format!("{:.2} ms", ms(cpu_per_frame))),
        ("daemon: CPU per frame without synthetic camera", format!("{:.2} ms", ms(cpu_per_frame_no_cam))),
        ("daemon / encoder alone (without camera)", format!("{:.2}×", cpu_per_frame_no_cam / enc_mean)),
        ("daemon / encoder alone (whole process)", format!("{:.2}×", cpu_per_frame / enc_mean)),
        (
            "daemon: CPU share",
            format!("{:.0}% of one core ({:.0}% of the machine)", cpu_share * 100.0, cpu_share * 100.0 / cores as f64),
        ),
        ("daemon: RSS now / peak", format!("{:.1} / {:.1} MB", rss_kb as f64 / 1024.0, hwm_kb as f64 / 1024.0)),
        ("server capture→sent p50 / p99", format!("{sent_p50:.1} / {sent_p99:.1} ms")),
        (
            "client capture→received p50 / p99",
            format!("{:.1} / {:.1} ms", ms(recv.quantile(0.5) as f64), ms(recv.quantile(0.99) as f64)),
        ),
        ("frames received by the 2 viewers / dropped", format!("{received} / {drops:.0}")),
    ];
    let width = rows.iter().map(|r| r.0.len()).max().unwrap();
    for (k, v) in &rows {
        println!("  {k:<width$}  {v}");
    }

    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let encoder = Obj::new()
        .num("cpu_ms_per_frame_mean", ms(enc_mean))
        .num("cpu_ms_per_frame_p50", ms(enc_p50))
        .num("cpu_ms_per_frame_p99", ms(enc_p99))
        .num("bitrate_bps", enc_bps as f64)
        .finish();
    let daemon = Obj::new()
        .num("window_s", wall)
        .num("frames", frames_window)
        .num("cpu_ms_per_frame", ms(cpu_per_frame))
        .num("cpu_ms_per_frame_without_camera", ms(cpu_per_frame_no_cam))
        .num("ratio_to_encoder", cpu_per_frame / enc_mean)
        .num("ratio_to_encoder_without_camera", cpu_per_frame_no_cam / enc_mean)
        .num("cpu_share_of_one_core", cpu_share)
        .num("rss_mb", rss_kb as f64 / 1024.0)
        .num("rss_peak_mb", hwm_kb as f64 / 1024.0)
        .num("capture_sent_p50_ms", sent_p50)
        .num("capture_sent_p99_ms", sent_p99)
        .num("capture_received_p50_ms", ms(recv.quantile(0.5) as f64))
        .num("capture_received_p99_ms", ms(recv.quantile(0.99) as f64))
        .num("frames_received", received as f64)
        .num("drops", drops)
        .finish();
    let doc = Obj::new()
        .str("commit", &commit)
        .str("date", &date)
        .int("cores", cores as u64)
        .str("config", &format!("2 eyes x {OUT} @ {FPS} fps, {BITRATE} bit/s, synthetic camera"))
        .raw("encoder_alone", &encoder)
        .raw("daemon_1_viewer", &daemon)
        .raw("table", &json::array(rows.iter().map(|(k, v)| json::array([json::escape(k), json::escape(v)]))))
        .finish();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}-{commit}.json", date.replace(':', "")));
    std::fs::write(&file, &doc).unwrap();
    std::fs::write(dir.join("latest.json"), &doc).unwrap();
    println!("written: {} (and latest.json)", file.display());
}
