//! `make bench`: measured figures for 2 eyes × 960x1080 @ 30 fps, synthetic camera, printed as
//! a table and written as JSON to bench/results/ (with the machine's core count and commit).
//!
//! Scenarios (each a fixed time; `PIEYES_BENCH_SCALE` multiplies the times, default 1):
//! - encoder alone: OpenH264 with the daemon's settings on the same synthetic frames, two
//!   threads paced at 30 fps like the daemon's — CPU per frame, the floor;
//! - daemon, 1 viewer per eye: CPU per frame (without the synthetic camera's thread, which on
//!   a Pi is the ISP's work) and its ratio to the encoder alone; RSS; capture→sent p50/p99;
//! - 50 viewers per eye on loopback (a lean client of our own): all frames received?
//!   capture→sent p99, CPU, RSS;
//! - one stalled viewer among 10 healthy: the healthy ones' p99 and drops before and after,
//!   the stalled one skipped then disconnected, RSS bounded;
//! - keyframes: `--keyframe-size small`'s frame sizes and bitrate as a viewer sees them, and
//!   what each keyframe mode costs the picture (PSNR of the IDR and the frames after it);
//! - eye movement: `look` over the Unix socket → first frame with the new crop at a viewer.
//! - frame taps: `tap both` (zero-copy) and `tap both size 240x270` at 30 fps, each frame
//!   mapped, read and released by a client thread: the daemon's CPU with and without (windows
//!   alternating), the ratio, and capture → tap line received.
//! - aarch64: OpenH264's CPU per frame in an aarch64 build of this bench under qemu-aarch64
//!   (`make bench` cross-builds it) against this native build, as a ratio only;
//! - browser: headless Chromium, run next by `make bench` (tests/browser/latency.bench.mjs)
//!   and merged into the same JSON.

mod support;

use std::time::{Duration, Instant};

use pieyes::camera::scene::Scene;
use pieyes::camera::stamp::Stamp;
use pieyes::camera::{FrameBuffer, FrameLayout, I420Layout, Rect, Size, full_view};
use pieyes::cli::ws_client::WsClient;
use pieyes::config::{EncoderCpus, EncoderThreads};
use pieyes::encoder::EncoderConfig;
use pieyes::encoder::picture::Scratch;
use pieyes::encoder::software::{Tuning, VBV_FRAMES, encode_one, new_h264_encoder};
use pieyes::histogram::Histogram;
use pieyes::json::{self, Obj};
use pieyes::sys::clock::{monotonic_us, thread_cpu_us};
use pieyes::sys::shm::SharedMemory;
use support::*;

const OUT: Size = Size { w: 960, h: 1080 };
const SENSOR: Size = Size { w: 2304, h: 1296 };
const FPS: u32 = 30;
const BITRATE: u32 = 3_000_000;
/// The daemon's default GOP: 2 s.
const EYE_GOP: u32 = 2 * FPS;

/// One eye's encoder as the daemon configures it by default.
fn eye_config() -> EncoderConfig {
    EncoderConfig { width: OUT.w, height: OUT.h, fps: FPS, bitrate_bps: BITRATE, gop_frames: EYE_GOP }
}

/// `--encoder-threads auto` on this machine.
static THREADS_HERE: std::sync::LazyLock<u16> = std::sync::LazyLock::new(|| {
    EncoderThreads::Auto.resolve(pieyes::sys::thread::allowed_cpus().map(|c| c.len()).unwrap_or(1), 2)
});

struct Report {
    rows: Vec<(String, String)>,
    json: Vec<(String, String)>,
}

impl Report {
    fn row(&mut self, k: &str, v: String) {
        println!("  {k:<58} {v}");
        self.rows.push((k.into(), v));
    }
    fn section(&mut self, name: &str, obj: String) {
        self.json.push((name.into(), obj));
    }
}

fn scale() -> f64 {
    std::env::var("PIEYES_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s * scale())
}

/// OpenH264 alone: one thread per eye (`eyes` of them), a frame every 1/30 s for `frames`
/// frames, the frames the daemon renders, each thread on the CPU the daemon's encoder of that
/// eye would use, each picture in `threads` slices. The first `skip` frames (a new encoder's
/// start-up and rate-control settling) are not counted.
struct Paced {
    cpu: Histogram,
    wall: Histogram,
    bytes: u64,
    /// Per eye: (frame index, bytes, keyframe) of every counted frame.
    sizes: Vec<Vec<(u32, usize, bool)>>,
    /// The whole process's CPU over the counted frames (with OpenH264's slice threads, which
    /// the per-thread `cpu` does not see).
    process_cpu_us: f64,
}

impl Paced {
    /// CPU per frame: the encoding threads' own, or the process's when slices run on the pool.
    fn cpu_mean_us(&self, threads: u16) -> f64 {
        if threads > 1 { self.process_cpu_us / self.cpu.count().max(1) as f64 } else { self.cpu.mean() }
    }
}

fn encode_paced(scene: &std::sync::Arc<Scene>, frames: u32, skip: u32, eyes: u8, threads: u16) -> Paced {
    let workers: Vec<_> = (0..eyes)
        .map(|eye| {
            let scene = scene.clone();
            std::thread::spawn(move || {
                let cfg = eye_config();
                // As the daemon does: the encoder (and OpenH264's slice threads) first, then the
                // eye's own thread on its CPU (--encoder-cpus auto).
                let mut enc = new_h264_encoder(&cfg, Tuning { threads, ..Tuning::default() }, 1.0).expect("encoder");
                let allowed = pieyes::sys::thread::allowed_cpus().expect("affinity");
                if let Some(cpu) = EncoderCpus::Auto.cpu_for(eye, &allowed) {
                    pieyes::sys::thread::pin_to_cpu(cpu).expect("pin");
                }
                let (mut source, mut scratch) = (Frames::new(), Scratch::default());
                let (mut cpu, mut wall, mut bytes, mut sizes) = (Histogram::new(), Histogram::new(), 0u64, Vec::new());
                let mut cpu_span = (0.0, 0.0);
                let start = monotonic_us();
                let ticks = Ticks::new(start, Duration::from_micros(1_000_000 / FPS as u64));
                for i in 0..frames {
                    let t = start + i as u64 * 1_000_000 / FPS as u64;
                    ticks.wait();
                    let buf = source.next(&scene, eye, i, t);
                    let (c0, w0) = (thread_cpu_us(), monotonic_us());
                    if i == skip {
                        cpu_span.0 = process_cpu_us();
                    }
                    let au = encode_one(&mut enc, buf, false, &mut scratch).expect("encode");
                    if i < skip {
                        continue;
                    }
                    cpu.record(thread_cpu_us() - c0);
                    wall.record(monotonic_us() - w0);
                    bytes += au.annexb().len() as u64;
                    sizes.push((i, au.annexb().len(), au.keyframe));
                }
                cpu_span.1 = process_cpu_us();
                (cpu, wall, bytes, sizes, cpu_span)
            })
        })
        .collect();
    let mut p =
        Paced { cpu: Histogram::new(), wall: Histogram::new(), bytes: 0, sizes: Vec::new(), process_cpu_us: 0.0 };
    let mut span = (f64::MAX, 0.0f64);
    for t in workers {
        let (c, w, b, s, (c0, c1)) = t.join().unwrap();
        p.cpu.merge(&c);
        p.wall.merge(&w);
        p.bytes += b;
        p.sizes.push(s);
        span = (span.0.min(c0), span.1.max(c1));
    }
    p.process_cpu_us = span.1 - span.0;
    p
}

/// CPU time of this process's threads named like OpenH264's pool (`thread_cpu_us` sees only
/// the calling thread; the slice threads' time is read from /proc).
fn process_cpu_us() -> f64 {
    cpu_by_thread(std::process::id()).0
}

/// The encoder alone for 10 s: the floor, and its p99.
fn encoder_alone(r: &mut Report) -> (f64, f64) {
    let frames = (300.0 * scale()) as u32;
    let scene = std::sync::Arc::new(Scene::new(SENSOR, 24));
    let p = encode_paced(&scene, frames, 0, 2, *THREADS_HERE);
    let mean = p.cpu_mean_us(*THREADS_HERE);
    let (cpu, wall, bytes) = (p.cpu, p.wall, p.bytes);
    r.row(
        "encoder alone: CPU per frame mean / p50 / p99",
        format!("{:.2} / {:.2} / {:.2} ms", ms(mean), ms(cpu.quantile(0.5) as f64), ms(cpu.quantile(0.99) as f64)),
    );
    r.row(
        "encoder alone: encode time p50 / p99 (wall)",
        format!("{:.2} / {:.2} ms", ms(wall.quantile(0.5) as f64), ms(wall.quantile(0.99) as f64)),
    );
    let bps = bytes as f64 * 8.0 * FPS as f64 / (2.0 * frames as f64);
    r.row("encoder alone: bitrate per eye", format!("{:.2} Mbit/s", bps / 1e6));
    r.section(
        "encoder_alone",
        Obj::new()
            .num("cpu_ms_per_frame_mean", ms(mean))
            .num("cpu_ms_per_frame_p50", ms(cpu.quantile(0.5) as f64))
            .num("cpu_ms_per_frame_p99", ms(cpu.quantile(0.99) as f64))
            .num("encode_wall_ms_p99", ms(wall.quantile(0.99) as f64))
            .num("bitrate_bps", bps)
            .int("frames", 2 * frames as u64)
            .finish(),
    );
    (mean, wall.quantile(0.99) as f64)
}

/// Daemon CPU per frame (without the synthetic camera) over the encoder alone's, measured in
/// alternating windows: this shared machine's speed drifts by several percent between runs a
/// minute apart, more than the difference measured. Each round pauses the daemon, runs a new
/// encoder alone for 5 s and counts the last 4, resumes the daemon, lets a second pass (the
/// keyframe after resuming), then measures the daemon for 4 s; the ratio is of the sums. Both
/// sides' counted frames hold the same share of periodic keyframes.
fn interleaved_ratio(d: &DaemonProc, v: &mut Viewers) -> (f64, u32) {
    const ROUNDS: u32 = 4;
    let each = secs(4.0);
    let scene = std::sync::Arc::new(Scene::new(SENSOR, 24));
    let (mut alone_us, mut alone_frames, mut daemon_us, mut daemon_frames) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..ROUNDS {
        assert!(ctl(&d.control, "pause").starts_with("ok"));
        wait_quiet(d);
        let counted = (each.as_secs_f64() * FPS as f64) as u32;
        let p = encode_paced(&scene, counted + FPS, FPS, 2, *THREADS_HERE);
        alone_us += p.cpu_mean_us(*THREADS_HERE) * p.cpu.count() as f64;
        alone_frames += p.cpu.count() as f64;
        assert!(ctl(&d.control, "resume").starts_with("ok"));
        v.run(secs(1.0));
        let w = Window::start(d);
        v.run(each);
        let res = w.end();
        daemon_us += res.cpu_us - res.camera_cpu_us;
        daemon_frames += res.frames;
    }
    ((daemon_us / daemon_frames) / (alone_us / alone_frames), ROUNDS)
}

/// After `pause`: wait until the daemon's encoders have gone quiet (no frame encoded for
/// 100 ms, three frame times), so that the encoder alone has the CPUs to itself.
fn wait_quiet(d: &DaemonProc) {
    let mut last = (f64::NAN, Instant::now());
    let quiet = wait_until(Duration::from_secs(5), || {
        let encoded = eyes_sum(&status(&d.control), "frames");
        if encoded != last.0 {
            last = (encoded, Instant::now());
        }
        last.1.elapsed() >= Duration::from_millis(100)
    });
    assert!(quiet, "the daemon kept encoding after pause");
}

/// Frame sizes and bitrate as a viewer saw them, per eye: the largest frame against the VBV
/// cap (a frame interval's share of `VBV_FRAMES` frames) and its time on a 10 Mbit/s link, and
/// the bitrate's error over every 10 s window (capture time, 1 s steps).
fn rate_rows(r: &mut Report, label: &str, seen: &[FrameSeen]) -> String {
    let cap = VBV_FRAMES as f64 * BITRATE as f64 / FPS as f64 / 8.0;
    let mut obj = Obj::new().num("vbv_cap_bytes", cap);
    for eye in 0..2u8 {
        let frames: Vec<&FrameSeen> = seen.iter().filter(|f| f.eye == eye).collect();
        if frames.is_empty() {
            continue;
        }
        let largest = frames.iter().max_by_key(|f| f.bytes).unwrap();
        let idr: Vec<f64> = frames.iter().filter(|f| f.keyframe).map(|f| f.bytes as f64).collect();
        let p: Vec<f64> = frames.iter().filter(|f| !f.keyframe).map(|f| f.bytes as f64).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (t0, t1) = (frames[0].capture_us, frames[frames.len() - 1].capture_us);
        let mut errors = Vec::new();
        let mut start = t0;
        while start + 10_000_000 <= t1 + 1 {
            let bits: f64 = frames
                .iter()
                .filter(|f| f.capture_us >= start && f.capture_us < start + 10_000_000)
                .map(|f| f.bytes as f64 * 8.0)
                .sum();
            errors.push(bits / 10.0 / BITRATE as f64 - 1.0);
            start += 1_000_000;
        }
        let worst = errors.iter().copied().fold(0.0f64, |a, e| if e.abs() > a.abs() { e } else { a });
        r.row(
            &format!("{label} eye {eye}: largest frame (VBV cap {:.1} kB) / its time at 10 Mbit/s", cap / 1e3),
            format!(
                "{:.1} kB ({}) = {:.2}× cap / {:.1} ms",
                largest.bytes as f64 / 1e3,
                if largest.keyframe { "IDR" } else { "P" },
                largest.bytes as f64 / cap,
                largest.bytes as f64 * 8.0 / 10e6 * 1e3
            ),
        );
        r.row(
            &format!("{label} eye {eye}: IDR mean / P mean"),
            format!("{:.1} / {:.1} kB ({:.1}×)", mean(&idr) / 1e3, mean(&p) / 1e3, mean(&idr) / mean(&p).max(1.0)),
        );
        r.row(
            &format!("{label} eye {eye}: bitrate error over 10 s windows (1 s steps), worst"),
            if errors.is_empty() {
                "run shorter than 10 s".to_string()
            } else {
                format!(
                    "{:+.1} % over {} windows (target ±5 %; all: {:+.1} … {:+.1} %)",
                    worst * 100.0,
                    errors.len(),
                    errors.iter().copied().fold(f64::MAX, f64::min) * 100.0,
                    errors.iter().copied().fold(f64::MIN, f64::max) * 100.0
                )
            },
        );
        obj = obj
            .num(&format!("eye{eye}_largest_frame_bytes"), largest.bytes as f64)
            .bool(&format!("eye{eye}_largest_is_idr"), largest.keyframe)
            .num(&format!("eye{eye}_largest_ms_at_10mbit"), largest.bytes as f64 * 8.0 / 10e6 * 1e3)
            .num(&format!("eye{eye}_idr_mean_bytes"), mean(&idr))
            .num(&format!("eye{eye}_p_mean_bytes"), mean(&p))
            .num(&format!("eye{eye}_worst_10s_window_error"), worst)
            .int(&format!("eye{eye}_10s_windows"), errors.len() as u64);
    }
    obj.finish()
}

/// `--keyframe-size small`: frame sizes and bitrate as a viewer saw them over 20 s, as for the
/// default keyframes in `daemon`.
fn small_keyframes(r: &mut Report) {
    let d = start_daemon(&["--keyframe-size", "small"]);
    let mut v = Viewers::connect(d.addr, 1, 2, 0);
    v.run(secs(3.0)); // warm-up: encoders settled, viewers joined
    v.frames_seen = Some(Vec::new());
    v.run(secs(20.0));
    let seen = v.frames_seen.take().unwrap_or_default();
    let rate = rate_rows(r, "--keyframe-size small", &seen);
    r.section("rate_small_keyframes", rate);
}

/// What a small keyframe costs the picture: one eye's frames, encoded in this process as the
/// daemon encodes them (full and small keyframes, a GOP of 2 s), decoded by ffmpeg and
/// compared with the rendered scene. Per keyframe mode: the luma PSNR of the IDRs and of the
/// frames after them, against the settled picture (the last quarter of each GOP), and how many
/// frames it takes to reach 30 dB (a picture to steer by) and to come back within 1 dB of it.
/// The first two IDRs are left out: a small encoder gives them the top QP by design (nothing
/// yet predicts their size).
fn keyframe_quality(r: &mut Report) {
    const GOP: u32 = EYE_GOP;
    let gops = ((4.0 * scale()).round() as u32).max(1) + 2;
    let scene = Scene::new(SENSOR, 24);
    let band = pieyes::camera::stamp::band_height(OUT.w) as usize;
    let dir = std::env::temp_dir().join(format!("pieyes-bench-kq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut obj = Obj::new();
    for (label, small_idr) in [("full", false), ("small", true)] {
        let cfg = eye_config();
        let mut enc = new_h264_encoder(&cfg, Tuning { small_idr, ..Tuning::default() }, 1.0).expect("encoder");
        let (mut source, mut scratch) = (Frames::new(), Scratch::default());
        let path = dir.join(format!("{label}.h264"));
        let mut stream = Vec::new();
        let mut keyframes = Vec::new();
        let t = |i: u32| i as u64 * 1_000_000 / FPS as u64;
        for i in 0..gops * GOP {
            let au = encode_one(&mut enc, source.next(&scene, 0, i, t(i)), false, &mut scratch).expect("encode");
            stream.extend_from_slice(au.annexb());
            keyframes.push(au.keyframe);
        }
        std::fs::write(&path, &stream).unwrap();
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "h264", "-i"])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
            .output()
            .expect("ffmpeg is installed by `make bench`'s deps");
        assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
        let (frame_len, y_len) = (source.layout.frame_len(), source.layout.y_len());
        assert_eq!(out.stdout.len(), frame_len * keyframes.len(), "{label}: one decoded picture per frame");
        // PSNR by frames since the last IDR, over every GOP but the first two.
        let mut by_offset = vec![Vec::new(); GOP as usize];
        let mut since = 0usize;
        for (i, (decoded, &key)) in out.stdout.chunks(frame_len).zip(&keyframes).enumerate() {
            since = if key { 0 } else { since + 1 };
            if i < 2 * GOP as usize || since >= by_offset.len() {
                continue;
            }
            let expect = &source.next(&scene, 0, i as u32, t(i as u32)).pixels()[..y_len];
            by_offset[since].push(luma_psnr(&decoded[..y_len], expect, OUT.w as usize, band));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let at: Vec<f64> = by_offset.iter().map(|v| mean(v)).collect();
        let settled = mean(&at[3 * at.len() / 4..]);
        let back = at.iter().position(|&p| p >= settled - 1.0).unwrap_or(at.len());
        let to_30 = at.iter().position(|&p| p >= 30.0).unwrap_or(at.len());
        let ms = |frames: usize| frames as f64 * 1000.0 / FPS as f64;
        r.row(
            &format!("keyframes {label}: PSNR of the IDR / +1 / +2 / +4 / +8 frames / settled"),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} / {:.1} / {settled:.1} dB; 30 dB after {to_30} frame(s) ({:.0} ms), within 1 dB of settled after {back} ({:.0} ms)",
                at[0],
                at[1],
                at[2],
                at[4],
                at[8],
                ms(to_30),
                ms(back)
            ),
        );
        obj = obj
            .num(&format!("{label}_idr_psnr_db"), at[0])
            .num(&format!("{label}_plus1_psnr_db"), at[1])
            .num(&format!("{label}_plus2_psnr_db"), at[2])
            .num(&format!("{label}_plus4_psnr_db"), at[4])
            .num(&format!("{label}_plus8_psnr_db"), at[8])
            .num(&format!("{label}_settled_psnr_db"), settled)
            .int(&format!("{label}_frames_to_30db"), to_30 as u64)
            .int(&format!("{label}_frames_to_settle"), back as u64)
            .int(&format!("{label}_idrs_counted"), by_offset[0].len() as u64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    r.section("keyframe_quality", obj.finish());
}

/// Luma PSNR (dB) of `a` against `b`, rows of `w`, the first `skip_rows` (the stamp) left out.
fn luma_psnr(a: &[u8], b: &[u8], w: usize, skip_rows: usize) -> f64 {
    let (a, b) = (&a[skip_rows * w..], &b[skip_rows * w..]);
    let se: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 { 99.0 } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// `--encoder-threads`: one eye, 1 vs 2 slices/threads, OpenH264 alone (encode time) and the
/// daemon with one viewer (capture→sent), as ratios.
fn encoder_threads(r: &mut Report) {
    let frames = (300.0 * scale()) as u32;
    let scene = std::sync::Arc::new(Scene::new(SENSOR, 24));
    let mut alone = Vec::new();
    for threads in [1u16, 2] {
        let p = encode_paced(&scene, frames + FPS, FPS, 1, threads);
        r.row(
            &format!("encoder alone, one eye, {threads} thread(s): encode p50 / p99 (wall), CPU/frame"),
            format!(
                "{:.2} / {:.2} ms, {:.2} ms",
                ms(p.wall.quantile(0.5) as f64),
                ms(p.wall.quantile(0.99) as f64),
                ms(p.cpu_mean_us(threads))
            ),
        );
        alone.push(p);
    }
    let q = |p: &Paced, x| p.wall.quantile(x) as f64;
    let (r50, r99) = (q(&alone[1], 0.5) / q(&alone[0], 0.5), q(&alone[1], 0.99) / q(&alone[0], 0.99));
    let cpu_ratio = alone[1].cpu_mean_us(2) / alone[0].cpu_mean_us(1);
    r.row(
        "encoder alone, one eye: 2 threads / 1, encode p50 / p99; CPU",
        format!("{r50:.2}× / {r99:.2}×; {cpu_ratio:.2}×"),
    );
    let mut sent = Vec::new();
    for threads in ["1", "2"] {
        let d = start_daemon(&["--mono", "--encoder-threads", threads]);
        let mut v = Viewers::connect(d.addr, 1, 1, 0);
        v.run(secs(3.0));
        let w = Window::start(&d);
        v.run(secs(10.0));
        let res = w.end();
        let s50 = eyes_latency_max(&res.status, "capture_sent_p50");
        let s99 = eyes_latency_max(&res.status, "capture_sent_p99");
        let e99 = eyes_latency_max(&res.status, "capture_encoded_p99");
        let shown = number(&eyes(&res.status)[0], "encoder_threads");
        r.row(
            &format!("daemon --mono --encoder-threads {threads}: capture→sent p50 / p99 (status shows {shown})"),
            format!("{s50:.1} / {s99:.1} ms (capture→encoded p99 {e99:.1})"),
        );
        sent.push((s50, s99));
    }
    r.row(
        "daemon one eye: capture→sent 2 threads / 1, p50 / p99",
        format!("{:.2}× / {:.2}×", sent[1].0 / sent[0].0, sent[1].1 / sent[0].1),
    );
    r.section(
        "encoder_threads",
        Obj::new()
            .num("alone_1_thread_p50_ms", ms(q(&alone[0], 0.5)))
            .num("alone_1_thread_p99_ms", ms(q(&alone[0], 0.99)))
            .num("alone_2_threads_p50_ms", ms(q(&alone[1], 0.5)))
            .num("alone_2_threads_p99_ms", ms(q(&alone[1], 0.99)))
            .num("alone_p50_ratio", r50)
            .num("alone_p99_ratio", r99)
            .num("alone_cpu_ratio", cpu_ratio)
            .num("daemon_1_thread_sent_p50_ms", sent[0].0)
            .num("daemon_1_thread_sent_p99_ms", sent[0].1)
            .num("daemon_2_threads_sent_p50_ms", sent[1].0)
            .num("daemon_2_threads_sent_p99_ms", sent[1].1)
            .finish(),
    );
}

/// Resident memory with 2 eyes and 10 viewers per eye: the total, and where it is, from
/// /proc/PID/smaps: each mapping's Rss summed by kind. OpenH264's pictures are large
/// anonymous mappings (glibc serves allocations over its mmap threshold with their own
/// mmap); the camera's frames are the memfd mappings; [heap] is glibc's main arena.
fn memory(r: &mut Report) {
    let (rss, hwm, kinds) = daemon_memory(&[]);
    r.row("2 eyes, 10 viewers each: RSS now / peak", format!("{rss:.1} / {hwm:.1} MB (target ≤ 30)"));
    let mut obj = Obj::new().num("rss_mb", rss).num("rss_peak_mb", hwm);
    for (kind, kb) in &kinds {
        r.row(&format!("  RSS of {}", kind.label()), format!("{:.1} MB", kb / 1024.0));
        obj = obj.num(&format!("{}_mb", kind.key()), kb / 1024.0);
    }
    // Small keyframes fill fewer pages of OpenH264's bitstream buffers.
    let (rss, hwm, _) = daemon_memory(&["--keyframe-size", "small"]);
    r.row("  the same with --keyframe-size small: RSS now / peak", format!("{rss:.1} / {hwm:.1} MB"));
    obj = obj.num("rss_small_keyframes_mb", rss).num("rss_peak_small_keyframes_mb", hwm);
    // OpenH264 alone, in a fresh process: the RSS one encoder adds, made and 5 frames encoded.
    // (In this process, what earlier scenarios freed would be reused and hide its pages: glibc
    // raises its mmap threshold after large blocks are freed.)
    let exe = std::env::current_exe().unwrap();
    let one = child_figure(exe.to_str().unwrap(), &[], "openh264-rss");
    let frame_len = I420Layout::new(OUT).frame_len();
    r.row(
        "  one eye's OpenH264 encoder (measured alone, after 5 frames)",
        format!("{:.1} MB (a 960x1080 I420 picture is {:.2} MB)", one / 1024.0, frame_len as f64 / 1048576.0),
    );
    r.section("memory", obj.num("openh264_one_eye_mb", one / 1024.0).finish());
}

/// The daemon with `args`, 2 eyes and 10 viewers each for 8 s: its RSS now and at peak (MB),
/// and where it is (kB by kind).
fn daemon_memory(args: &[&str]) -> (f64, f64, Vec<(MemKind, f64)>) {
    let d = start_daemon(args);
    let mut v = Viewers::connect(d.addr, 10, 2, 0);
    v.run(secs(8.0));
    let pid = d.child.id();
    (status_kb(pid, "VmRSS:") / 1024.0, status_kb(pid, "VmHWM:") / 1024.0, smaps_by_kind(pid))
}

/// Synthetic frames at the bench's size, rendered and stamped into one memfd buffer, as the
/// daemon's camera hands them to an encoder.
struct Frames {
    layout: I420Layout,
    crop: Rect,
    buf: FrameBuffer,
    xmap: Vec<u32>,
}

impl Frames {
    fn new() -> Frames {
        let layout = I420Layout::new(OUT);
        let buf = FrameBuffer {
            index: 0,
            memory: SharedMemory::memfd("bench", layout.frame_len()).unwrap(),
            layout: FrameLayout::i420(OUT),
        };
        Frames { layout, crop: full_view(Rect::new(0, 0, SENSOR.w, SENSOR.h), OUT), buf, xmap: Vec::new() }
    }

    /// Frame `sequence` of `eye`, captured at `t_us`.
    fn next(&mut self, scene: &Scene, eye: u8, sequence: u32, t_us: u64) -> &FrameBuffer {
        let (layout, crop) = (self.layout, self.crop);
        scene.render(eye, t_us, crop, layout, self.buf.pixels_mut(), &mut self.xmap);
        Stamp { eye, sequence, capture_us: t_us, crop }.paint(layout, self.buf.pixels_mut());
        &self.buf
    }
}

/// This process's resident set, kB.
fn self_rss_kb() -> f64 {
    status_kb(std::process::id(), "VmRSS:")
}

/// What a mapping in /proc/PID/smaps holds, as the memory breakdown counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MemKind {
    CameraFrames,
    Heap,
    Stack,
    AnonLarge,
    AnonSmall,
    Binary,
    SharedLibraries,
    Other,
}

impl MemKind {
    fn of(name: &str, size: u64) -> MemKind {
        match name {
            n if n.starts_with("/memfd:") => MemKind::CameraFrames,
            "[heap]" => MemKind::Heap,
            n if n.starts_with("[stack") => MemKind::Stack,
            "" if size >= 1 << 20 => MemKind::AnonLarge,
            "" => MemKind::AnonSmall,
            n if n.contains("pieyes") => MemKind::Binary,
            n if n.starts_with('/') => MemKind::SharedLibraries,
            _ => MemKind::Other, // [vdso], [vvar], …
        }
    }

    /// The row's words in the printed table.
    fn label(self) -> &'static str {
        match self {
            MemKind::CameraFrames => "camera frames (memfd)",
            MemKind::Heap => "[heap] (malloc main arena)",
            MemKind::Stack => "[stack]",
            MemKind::AnonLarge => "anonymous mappings >= 1 MB (OpenH264 pictures, thread arenas, stacks)",
            MemKind::AnonSmall => "anonymous mappings < 1 MB",
            MemKind::Binary => "the pieyes binary",
            MemKind::SharedLibraries => "shared libraries",
            MemKind::Other => "other ([vdso], [vvar], …)",
        }
    }

    /// The field's name in the results file: one per kind.
    fn key(self) -> &'static str {
        match self {
            MemKind::CameraFrames => "camera_frames",
            MemKind::Heap => "heap",
            MemKind::Stack => "stack",
            MemKind::AnonLarge => "anonymous_large",
            MemKind::AnonSmall => "anonymous_small",
            MemKind::Binary => "binary",
            MemKind::SharedLibraries => "shared_libraries",
            MemKind::Other => "other",
        }
    }
}

/// Rss of each mapping of `pid`, summed by kind, largest first.
fn smaps_by_kind(pid: u32) -> Vec<(MemKind, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut sums: std::collections::BTreeMap<MemKind, f64> = Default::default();
    let mut kind = MemKind::Other;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (a, b) = first.split_once('-').unwrap();
            let size = u64::from_str_radix(b, 16).unwrap_or(0) - u64::from_str_radix(a, 16).unwrap_or(0);
            kind = MemKind::of(f.get(5).copied().unwrap_or(""), size);
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let kb: f64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0.0);
            *sums.entry(kind).or_default() += kb;
        }
    }
    let mut v: Vec<(MemKind, f64)> = sums.into_iter().filter(|(_, kb)| *kb > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

fn daemon_one_viewer(r: &mut Report, enc_mean_us: f64, enc_wall_p99: f64) {
    let d = start_daemon(&[]);
    let mut v = Viewers::connect(d.addr, 1, 2, 0);
    v.run(secs(3.0)); // warm-up: encoders settled, viewers joined
    let w = Window::start(&d);
    v.latency = Histogram::new();
    v.frames_seen = Some(Vec::new());
    v.run(secs(20.0));
    let res = w.end();
    let seen = v.frames_seen.take().unwrap_or_default();
    let pid = d.child.id();
    let (rss, hwm) = (status_kb(pid, "VmRSS:") / 1024.0, status_kb(pid, "VmHWM:") / 1024.0);
    let per_frame = res.cpu_us / res.frames;
    let no_cam = (res.cpu_us - res.camera_cpu_us) / res.frames;
    let sent_p50 = eyes_latency_max(&res.status, "capture_sent_p50");
    let sent_p99 = eyes_latency_max(&res.status, "capture_sent_p99");
    let enc_p99 = eyes_latency_max(&res.status, "capture_encoded_p99");
    let cq_p99 = eyes_latency_max(&res.status, "capture_queued_p99");
    let qe_p99 = eyes_latency_max(&res.status, "queued_encoded_p99");
    let cpu_p99 = eyes_latency_max(&res.status, "encode_cpu_p99");
    let es_p99 = viewers_max(&res.status, "encoded_sent_p99");
    let received = (ms(v.latency.quantile(0.5) as f64), ms(v.latency.quantile(0.99) as f64));
    let rate = rate_rows(r, "daemon 1 viewer", &seen);
    r.section("rate", rate);
    let (ratio, rounds) = interleaved_ratio(&d, &mut v);
    r.row(
        "daemon 1 viewer: frames encoded (2 eyes)",
        format!("{:.0} in {:.1} s ({:.1} fps/eye)", res.frames, res.wall_s, res.frames / res.wall_s / 2.0),
    );
    r.row("daemon 1 viewer: CPU per frame, whole process", format!("{:.2} ms", ms(per_frame)));
    r.row("daemon 1 viewer: CPU per frame without synthetic camera", format!("{:.2} ms", ms(no_cam)));
    r.row(
        "  of which encoder threads / poll loop",
        format!("{:.2} / {:.3} ms", ms(res.encoder_cpu_us / res.frames), ms(res.loop_cpu_us / res.frames)),
    );
    r.row("daemon / encoder alone (without camera), this window", format!("{:.3}×", no_cam / enc_mean_us));
    r.row(
        &format!("daemon / encoder alone (without camera), {rounds} alternating rounds"),
        format!("{ratio:.3}× (target ≤ 1.10)"),
    );
    r.row("daemon CPU share", format!("{:.0}% of one core", res.cpu_us / res.wall_s / 1e4));
    r.row("daemon RSS now / peak", format!("{rss:.1} / {hwm:.1} MB"));
    r.row(
        "daemon heap allocations per frame (whole process, incl. status polls)",
        format!("{:.2}", res.allocations / res.frames),
    );
    r.row(
        "server capture→sent p50 / p99",
        format!(
            "{sent_p50:.1} / {sent_p99:.1} ms (target p99 ≤ encoder alone p99 + 2 = {:.1})",
            ms(enc_wall_p99) + 2.0
        ),
    );
    r.row(
        "  p99 of: capture→queued / queued→encoded / encoded→sent",
        format!("{cq_p99:.1} / {qe_p99:.1} / {es_p99:.1} ms (capture→encoded {enc_p99:.1})"),
    );
    r.row(
        "  daemon's encode CPU per frame p99 / encoder alone's",
        format!("{cpu_p99:.1} / {:.1} ms", ms(enc_wall_p99)),
    );
    r.row("client capture→received p50 / p99", format!("{:.1} / {:.1} ms", received.0, received.1));
    r.section(
        "daemon_1_viewer",
        Obj::new()
            .num("window_s", res.wall_s)
            .num("frames", res.frames)
            .num("cpu_ms_per_frame", ms(per_frame))
            .num("cpu_ms_per_frame_without_camera", ms(no_cam))
            .num("encoder_threads_ms_per_frame", ms(res.encoder_cpu_us / res.frames))
            .num("loop_ms_per_frame", ms(res.loop_cpu_us / res.frames))
            .num("camera_ms_per_frame", ms(res.camera_cpu_us / res.frames))
            .num("ratio_to_encoder_alone", ratio)
            .int("ratio_rounds", rounds as u64)
            .num("ratio_to_encoder_alone_single_window", no_cam / enc_mean_us)
            .num("ratio_to_encoder_alone_whole_process", per_frame / enc_mean_us)
            .num("cpu_share_of_one_core", res.cpu_us / res.wall_s / 1e6)
            .num("rss_mb", rss)
            .num("rss_peak_mb", hwm)
            .num("allocations_per_frame", res.allocations / res.frames)
            .num("capture_encoded_p99_ms", enc_p99)
            .num("capture_queued_p99_ms", cq_p99)
            .num("queued_encoded_p99_ms", qe_p99)
            .num("encode_cpu_p99_ms", cpu_p99)
            .num("encoded_sent_p99_ms", es_p99)
            .num("capture_sent_p50_ms", sent_p50)
            .num("capture_sent_p99_ms", sent_p99)
            .num("capture_received_p50_ms", received.0)
            .num("capture_received_p99_ms", received.1)
            .num("drops", eyes_sum(&res.status, "drops") + eyes_sum(&res.status, "encoder_drops"))
            .finish(),
    );
}

fn many_viewers(r: &mut Report, n: usize) {
    let d = start_daemon(&[]);
    let mut v = Viewers::connect(d.addr, n, 2, 0);
    v.run(secs(3.0));
    let w = Window::start(&d);
    let drops0 = eyes_sum(&status(&d.control), "drops");
    let gaps0 = v.healthy_gaps();
    v.latency = Histogram::new();
    v.run(secs(15.0));
    let res = w.end();
    let pid = d.child.id();
    let rss = status_kb(pid, "VmRSS:") / 1024.0;
    let drops = eyes_sum(&res.status, "drops") - drops0;
    let gaps = v.healthy_gaps() - gaps0;
    let lost_at_source = eyes_sum(&res.status, "encoder_drops")
        + eyes_sum(&res.status, "camera_starved")
        + eyes_sum(&res.status, "camera_skipped");
    let sent_p99 = eyes_latency_max(&res.status, "capture_sent_p99");
    r.row(
        &format!("{n} viewers × 2 eyes: heap allocations per frame"),
        format!("{:.2} (with 1 viewer: see above; fan-out shares one packet)", res.allocations / res.frames),
    );
    r.row(
        &format!("{n} viewers × 2 eyes: viewer drops (skips) in window"),
        format!("{drops:.0} (frames lost before fan-out: {lost_at_source:.0})"),
    );
    r.row(&format!("{n} viewers × 2 eyes: sequence gaps seen by clients"), format!("{gaps}"));
    r.row(
        &format!("{n} viewers × 2 eyes: capture→sent p99 / client capture→received p99"),
        format!("{sent_p99:.1} / {:.1} ms", ms(v.latency.quantile(0.99) as f64)),
    );
    r.row(
        &format!("{n} viewers × 2 eyes: daemon CPU share / RSS"),
        format!("{:.0}% of one core / {rss:.1} MB", res.cpu_us / res.wall_s / 1e4),
    );
    r.section(
        &format!("viewers_{n}"),
        Obj::new()
            .int("viewers_per_eye", n as u64)
            .num("viewer_drops", drops)
            .int("client_sequence_gaps", gaps)
            .num("frames_lost_before_fanout", lost_at_source)
            .num("capture_sent_p99_ms", sent_p99)
            .num("capture_received_p99_ms", ms(v.latency.quantile(0.99) as f64))
            .num("cpu_share_of_one_core", res.cpu_us / res.wall_s / 1e6)
            .num("rss_mb", rss)
            .finish(),
    );
}

fn stalled_viewer(r: &mut Report) {
    let d = start_daemon(&["--viewer-timeout", "5"]);
    let mut healthy = Viewers::connect(d.addr, 10, 1, 0);
    healthy.run(secs(3.0));
    healthy.latency = Histogram::new();
    let g0 = healthy.healthy_gaps();
    healthy.run(secs(8.0));
    let (base_p99, base_gaps) = (healthy.latency.quantile(0.99), healthy.healthy_gaps() - g0);
    let lost = |d: &DaemonProc| {
        let s = status(&d.control);
        let e0 = &eyes(&s)[0];
        number(e0, "encoder_drops") + number(e0, "camera_starved") + number(e0, "camera_skipped")
    };
    let lost0 = lost(&d);
    let rss_before = status_kb(d.child.id(), "VmRSS:") / 1024.0;
    let stalled = Viewers::connect(d.addr, 0, 1, 1);
    healthy.latency = Histogram::new();
    let g1 = healthy.healthy_gaps();
    let t0 = Instant::now();
    let mut peak_rss: f64 = 0.0;
    while t0.elapsed() < secs(10.0) {
        healthy.run(Duration::from_millis(500));
        peak_rss = peak_rss.max(status_kb(d.child.id(), "VmRSS:") / 1024.0);
    }
    let (p99, gaps) = (healthy.latency.quantile(0.99), healthy.healthy_gaps() - g1);
    // Gaps every viewer sees alike come from frames lost before fan-out (the machine is busy);
    // skips are what the fan-out did to a healthy viewer, read from the daemon per viewer.
    let source_lost = lost(&d) - lost0;
    let log = d.log.text();
    let stalled_line = log.lines().find(|l| l.contains("stuck: no progress")).unwrap_or("").to_string();
    let skipped: u64 = stalled_line
        .split(" dropped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Disconnected: the daemon counts only the 10 healthy viewers on eye 0 again (its side of
    // the socket is closed; ours may still hold data the kernel could not deliver).
    let status = status(&d.control);
    let disconnected = number(&eyes(&status)[0], "viewers") == 10.0 && stalled_line.contains("stuck");
    let healthy_skips: f64 = eyes(&status)
        .iter()
        .flat_map(|e| e["viewer_latency_ms"].as_array().cloned().unwrap_or_default())
        .map(|v| number(&v, "dropped"))
        .sum();
    drop(stalled);
    r.row(
        "10 healthy viewers: p99 capture→received before / with a stalled one",
        format!("{:.1} / {:.1} ms", ms(base_p99 as f64), ms(p99 as f64)),
    );
    r.row(
        "10 healthy viewers: gaps before / with a stalled one; skips",
        format!("{base_gaps} / {gaps} (frames lost before fan-out ×10: {:.0}); {healthy_skips:.0}", source_lost * 10.0),
    );
    r.row(
        "stalled viewer: frames skipped, then disconnected",
        format!("{skipped}, {}", if disconnected { "yes" } else { "NO" }),
    );
    r.row("daemon RSS before / peak with the stalled viewer", format!("{rss_before:.1} / {peak_rss:.1} MB"));
    r.section(
        "stalled_viewer",
        Obj::new()
            .num("healthy_p99_before_ms", ms(base_p99 as f64))
            .num("healthy_p99_with_stalled_ms", ms(p99 as f64))
            .int("healthy_gaps_before", base_gaps)
            .int("healthy_gaps_with_stalled", gaps)
            .num("frames_lost_before_fanout_with_stalled", source_lost)
            .num("healthy_viewer_skips", healthy_skips)
            .int("stalled_frames_skipped", skipped)
            .bool("stalled_disconnected", disconnected)
            .num("rss_before_mb", rss_before)
            .num("rss_peak_mb", peak_rss)
            .finish(),
    );
}

fn eye_movement(r: &mut Report) {
    let d = start_daemon(&[]);
    let mut ws = WsClient::connect(d.addr, "/cam0", "").expect("viewer");
    for _ in 0..30 {
        ws.next_unit().unwrap();
    }
    let (mut frames_late, mut ms_late) = (Histogram::new(), Histogram::new());
    let n = (20.0 * scale()).max(4.0) as usize;
    for i in 0..n {
        // Wait for a frame, then a random-ish phase inside the frame interval (on the clock
        // the frames are stamped by).
        let (last, _) = ws.next_unit().unwrap().unwrap();
        Ticks::new(monotonic_us() + (i as u64 * 7919) % 33_000, Duration::from_secs(1)).wait();
        let x = if i % 2 == 0 { 0.6 } else { -0.6 };
        let t0 = monotonic_us();
        let reply = ctl(&d.control, &format!("look 0 {x} 0"));
        let crop = reply.split_whitespace().find_map(|t| t.strip_prefix("crop0=")).unwrap().to_string();
        loop {
            let (h, _) = ws.next_unit().unwrap().unwrap();
            if h.crop.to_string() == crop {
                // Frames that arrived after the command and still showed the old view (the one
                // before it, `last`, was already on its way when the command was sent).
                frames_late.record((h.sequence - last.sequence - 1) as u64 * 1000);
                ms_late.record(monotonic_us() - t0);
                break;
            }
        }
    }
    let f = |q| frames_late.quantile(q) as f64 / 1000.0;
    r.row(
        "eye movement: old-view frames after the command, p50 / max",
        format!("{:.0} / {:.0} (target ≤ 2)", f(0.5), frames_late.max() as f64 / 1000.0),
    );
    r.row(
        "eye movement: command → first new frame received, p50 / max",
        format!("{:.1} / {:.1} ms", ms(ms_late.quantile(0.5) as f64), ms(ms_late.max() as f64)),
    );
    r.section(
        "eye_movement",
        Obj::new()
            .int("commands", n as u64)
            .num("frames_p50", f(0.5))
            .num("frames_max", frames_late.max() as f64 / 1000.0)
            .num("ms_p50", ms(ms_late.quantile(0.5) as f64))
            .num("ms_max", ms(ms_late.max() as f64))
            .finish(),
    );
}

/// A tap client on its own thread: every frame mapped read-only, a byte of each plane read,
/// released at once; capture → line received recorded.
struct TapReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Histogram, u64)>,
}

impl TapReader {
    fn start(control: &std::path::Path, how: &str) -> TapReader {
        use pieyes::cli::tap_client::{TapClient, TapMsg};
        use std::os::fd::AsFd;
        let mut t = TapClient::connect(control).expect("tap");
        t.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        t.send(how).unwrap();
        assert!(t.reply().unwrap().starts_with("ok tap"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut latency, mut sum) = (Histogram::new(), 0u64);
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let (line, fd) = match t.next_msg() {
                    Ok(TapMsg::Frame(line, fd)) => (line, fd),
                    Ok(TapMsg::Reply(_)) => continue,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(e) => panic!("tap: {e}"),
                };
                let at = monotonic_us();
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                latency.record(at.saturating_sub(v["capture_us"].as_u64().unwrap()));
                let m = pieyes::sys::shm::Mapping::read_only(fd.as_fd(), v["size"].as_u64().unwrap() as usize).unwrap();
                for off in v["offset"].as_array().unwrap() {
                    sum += m.as_slice()[off.as_u64().unwrap() as usize] as u64;
                }
                drop(m);
                t.send(&format!("release {} {}", v["seq"], v["eye"])).unwrap();
            }
            let _ = t.send("untap");
            (latency, sum)
        });
        TapReader { stop, handle }
    }

    fn stop(self) -> Histogram {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap().0
    }
}

/// Frame taps on both eyes at 30 fps: the daemon's CPU per frame without a tap, with a
/// zero-copy tap and with a downscaled one, in alternating windows; capture → tap line.
fn taps(r: &mut Report) {
    let d = start_daemon(&[]);
    let mut v = Viewers::connect(d.addr, 1, 2, 0);
    v.run(secs(3.0));
    const ROUNDS: usize = 3;
    let kinds = [("none", None), ("zero-copy", Some("tap both")), ("size 240x270", Some("tap both size 240x270"))];
    // Per kind: CPU µs (whole process, without the synthetic camera), loop thread µs, frames.
    let mut cpu = [(0.0f64, 0.0f64, 0.0f64); 3];
    let mut latency = [Histogram::new(), Histogram::new(), Histogram::new()];
    let mut sent = [0.0f64; 3];
    let mut skipped = [0.0f64; 3];
    // The daemon's own capture→queued p50 (the point a frame reaches the loop), the worst window.
    let mut queued_p50 = [0.0f64; 3];
    for _ in 0..ROUNDS {
        for (k, (_, how)) in kinds.iter().enumerate() {
            let reader = how.map(|h| TapReader::start(&d.control, h));
            v.run(secs(1.0));
            let w = Window::start(&d);
            let t0 = w_status_taps(&d);
            v.run(secs(5.0));
            let res = w.end();
            let t1 = w_status_taps(&d);
            sent[k] += t1.0 - t0.0;
            queued_p50[k] = queued_p50[k].max(eyes_latency_max(&res.status, "capture_queued_p50"));
            skipped[k] += t1.1 - t0.1;
            cpu[k].0 += res.cpu_us - res.camera_cpu_us;
            cpu[k].1 += res.loop_cpu_us;
            cpu[k].2 += res.frames;
            if let Some(rd) = reader {
                latency[k].merge(&rd.stop());
            }
        }
    }
    let per = |k: usize| cpu[k].0 / cpu[k].2;
    let loop_per = |k: usize| cpu[k].1 / cpu[k].2;
    let mut obj = Obj::new().int("rounds", ROUNDS as u64);
    for (k, (name, _)) in kinds.iter().enumerate() {
        let q = |p| ms(latency[k].quantile(p) as f64);
        r.row(
            &format!("tap {name}: daemon CPU per frame (no camera) / loop thread"),
            format!("{:.3} / {:.3} ms, ratio to no tap {:.3}×", ms(per(k)), ms(loop_per(k)), per(k) / per(0)),
        );
        if k > 0 {
            r.row(
                &format!("tap {name}: frames sent / skipped, capture→line p50 / p99"),
                format!(
                    "{:.0} / {:.0}, {:.2} / {:.2} ms (daemon's capture→queued p50 {:.1} ms)",
                    sent[k],
                    skipped[k],
                    q(0.5),
                    q(0.99),
                    queued_p50[k]
                ),
            );
        }
        let key = name.replace([' ', '-'], "_");
        obj = obj.raw(
            &key,
            &Obj::new()
                .num("cpu_ms_per_frame_without_camera", ms(per(k)))
                .num("loop_ms_per_frame", ms(loop_per(k)))
                .num("ratio_to_no_tap", per(k) / per(0))
                .num("frames_sent", sent[k])
                .num("frames_skipped", skipped[k])
                .num("capture_line_p50_ms", q(0.5))
                .num("capture_line_p99_ms", q(0.99))
                .num("capture_queued_p50_ms", queued_p50[k])
                .finish(),
        );
    }
    r.section("taps", obj.finish());
}

/// Frames sent to and skipped by taps so far (both eyes, /metrics' counters via status).
fn w_status_taps(d: &DaemonProc) -> (f64, f64) {
    let st = status(&d.control);
    let sum = |k: &str| {
        st["taps"]
            .as_array()
            .map(|a| {
                a.iter().flat_map(|t| t[k].as_array().cloned().unwrap_or_default()).filter_map(|v| v.as_f64()).sum()
            })
            .unwrap_or(0.0)
    };
    (sum("sent"), sum("skipped"))
}

/// The child's side of `aarch64_under_qemu`: one eye's OpenH264 (1 thread, the daemon's
/// settings) encoding the synthetic frames back to back; the encode's own CPU per frame (µs),
/// the first `skip` frames (start-up) not counted.
fn encode_one_eye_child(frames: u32, skip: u32) -> f64 {
    let scene = Scene::new(SENSOR, 24);
    let cfg = eye_config();
    let mut enc = new_h264_encoder(&cfg, Tuning::default(), 1.0).expect("encoder");
    let (mut source, mut scratch) = (Frames::new(), Scratch::default());
    let mut cpu_us = 0u64;
    for i in 0..frames {
        let buf = source.next(&scene, 0, i, i as u64 * 1_000_000 / FPS as u64);
        let c0 = thread_cpu_us();
        encode_one(&mut enc, buf, false, &mut scratch).expect("encode");
        if i >= skip {
            cpu_us += thread_cpu_us() - c0;
        }
    }
    cpu_us as f64 / (frames - skip) as f64
}

/// The child's side of `memory`: the RSS (kB) one eye's OpenH264 adds to a fresh process, made
/// (with `--encoder-threads auto`'s slices) and 5 frames encoded. The bench's own frame buffer
/// is drawn once before the baseline: its pages are not the encoder's.
fn openh264_rss_child() -> f64 {
    let scene = Scene::new(SENSOR, 24);
    let (mut source, mut scratch) = (Frames::new(), Scratch::default());
    source.next(&scene, 0, 0, 0);
    let before = self_rss_kb();
    let cfg = eye_config();
    let mut enc = new_h264_encoder(&cfg, Tuning { threads: *THREADS_HERE, ..Tuning::default() }, 1.0).expect("encoder");
    for i in 0..5u32 {
        let buf = source.next(&scene, 0, i, i as u64 * 33_333);
        encode_one(&mut enc, buf, false, &mut scratch).expect("encode");
    }
    self_rss_kb() - before
}

/// Runs `program args` as a bench child doing `what` (PIEYES_BENCH_CHILD) and returns the
/// figure it prints.
fn child_figure(program: &str, args: &[&str], what: &str) -> f64 {
    let out = std::process::Command::new(program)
        .args(args)
        .env("PIEYES_BENCH_CHILD", what)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{program} {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("figure "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{program}: no figure in {text:?}"))
}

/// A bench child (PIEYES_BENCH_CHILD set): `encode FRAMES SKIP` or `openh264-rss`; prints
/// `figure <value>`.
fn child(what: &str) {
    let words: Vec<&str> = what.split_whitespace().collect();
    let figure = match words.as_slice() {
        ["encode", frames, skip] => encode_one_eye_child(frames.parse().unwrap(), skip.parse().unwrap()),
        ["openh264-rss"] => openh264_rss_child(),
        _ => panic!("PIEYES_BENCH_CHILD={what:?}: unknown"),
    };
    println!("figure {figure}");
}

/// The per-frame encode cost of the aarch64 build (OpenH264's NEON code) under qemu-aarch64,
/// relative to this machine's native build (its x86 assembly), in alternating rounds of the
/// same child run by each. Only the ratio means anything: qemu's speed tells nothing of a
/// Cortex-A76's (README, *On a Pi 5*). `make bench` sets PIEYES_BENCH_AARCH64 (the aarch64
/// bench binary) and PIEYES_BENCH_AARCH64_RUNNER (qemu with the sysroot's libraries).
fn aarch64_under_qemu(r: &mut Report) {
    const LABEL: &str = "aarch64 build under qemu / native: OpenH264 CPU per frame (one eye, 1 thread)";
    let (Ok(bin), Ok(runner)) = (std::env::var("PIEYES_BENCH_AARCH64"), std::env::var("PIEYES_BENCH_AARCH64_RUNNER"))
    else {
        r.row(LABEL, "not run: PIEYES_BENCH_AARCH64 / _RUNNER unset (`make bench` sets them)".into());
        return;
    };
    let (frames, skip) = (((60.0 * scale()) as u32).max(10) + 10, 10);
    let what = format!("encode {frames} {skip}");
    let native_exe = std::env::current_exe().unwrap();
    let native_exe = native_exe.to_str().unwrap();
    let mut words = runner.split_whitespace();
    let qemu = words.next().expect("a runner command");
    let qemu_args: Vec<&str> = words.chain([bin.as_str()]).collect();
    let (mut native, mut emulated) = (0.0, 0.0);
    const ROUNDS: u32 = 2;
    for _ in 0..ROUNDS {
        native += child_figure(native_exe, &[], &what);
        emulated += child_figure(qemu, &qemu_args, &what);
    }
    let ratio = emulated / native;
    r.row(LABEL, format!("{ratio:.1}× ({ROUNDS} alternating rounds of {} frames each)", frames - skip));
    r.section("aarch64_qemu", Obj::new().num("cpu_ratio_to_native", ratio).int("rounds", ROUNDS as u64).finish());
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench probing for test names
    }
    if let Ok(what) = std::env::var("PIEYES_BENCH_CHILD") {
        return child(&what);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("pieyes bench: 2 eyes × {OUT} @ {FPS} fps, {BITRATE} bit/s per eye, {cores} cores, scale {}", scale());
    let mut r = Report { rows: Vec::new(), json: Vec::new() };
    // PIEYES_BENCH_ONLY=name,… runs a subset (for working on one scenario; results not saved).
    let only = std::env::var("PIEYES_BENCH_ONLY").unwrap_or_default();
    let on = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let (enc, enc_p99) = if on("encoder") || on("daemon") { encoder_alone(&mut r) } else { (0.0, 0.0) };
    if on("daemon") {
        daemon_one_viewer(&mut r, enc, enc_p99);
    }
    if on("keyframes") {
        small_keyframes(&mut r);
        keyframe_quality(&mut r);
    }
    if on("threads") {
        encoder_threads(&mut r);
    }
    if on("memory") {
        memory(&mut r);
    }
    if on("viewers") {
        many_viewers(&mut r, 50);
    }
    if on("stalled") {
        stalled_viewer(&mut r);
    }
    if on("eye") {
        eye_movement(&mut r);
    }
    if on("taps") {
        taps(&mut r);
    }
    if on("aarch64") {
        aarch64_under_qemu(&mut r);
    }
    if !only.is_empty() {
        return;
    }

    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(String::from))
        .unwrap_or_default();
    let mut doc = Obj::new()
        .str("commit", &commit)
        .str("date", &date)
        .int("cores", cores as u64)
        .str("cpu", &cpu_model)
        .str("config", &format!("2 eyes x {OUT} @ {FPS} fps, {BITRATE} bit/s per eye, synthetic camera"))
        .num("scale", scale());
    for (k, v) in &r.json {
        doc = doc.raw(k, v);
    }
    let doc = doc
        .raw("table", &json::array(r.rows.iter().map(|(k, v)| json::array([json::escape(k), json::escape(v)]))))
        .finish();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}-{commit}.json", date.replace(':', "")));
    std::fs::write(&file, &doc).unwrap();
    std::fs::write(dir.join("latest.json"), &doc).unwrap();
    println!("written: {} (and latest.json)", file.display());
}
