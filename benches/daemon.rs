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
//! - eye movement: `look` over the Unix socket → first frame with the new crop at a viewer.
//! - browser: headless Chromium, run next by `make bench` (tests/browser/latency.bench.mjs)
//!   and merged into the same JSON.

mod support;

use std::time::{Duration, Instant};

use pieyes::camera::scene::Scene;
use pieyes::camera::stamp::Stamp;
use pieyes::camera::{FrameBuffer, FrameLayout, I420Layout, Rect, Size, full_view};
use pieyes::cli::ws_client::WsClient;
use pieyes::config::EncoderCpus;
use pieyes::encoder::EncoderConfig;
use pieyes::encoder::picture::Scratch;
use pieyes::encoder::software::{encode_one, new_h264_encoder};
use pieyes::histogram::Histogram;
use pieyes::json::{self, Obj};
use pieyes::sys::clock::{monotonic_us, thread_cpu_us};
use pieyes::sys::shm::SharedMemory;
use support::*;

const OUT: Size = Size { w: 960, h: 1080 };
const SENSOR: Size = Size { w: 2304, h: 1296 };
const FPS: u32 = 30;
const BITRATE: u32 = 3_000_000;

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

/// OpenH264 alone, both eyes: one thread per eye, a frame every 1/30 s for `frames` frames, the
/// frames the daemon renders, each thread on the CPU the daemon's encoder of that eye would use.
/// The first `skip` frames (a new encoder's start-up and rate-control settling) are not counted.
fn encode_paced(scene: &std::sync::Arc<Scene>, frames: u32, skip: u32) -> (Histogram, Histogram, u64) {
    let threads: Vec<_> = (0..2u8)
        .map(|eye| {
            let scene = scene.clone();
            std::thread::spawn(move || {
                // The daemon's default placement (--encoder-cpus auto): one CPU per eye.
                let allowed = pieyes::sys::thread::allowed_cpus().expect("affinity");
                if let Some(cpu) = EncoderCpus::Auto.cpu_for(eye, &allowed) {
                    pieyes::sys::thread::pin_to_cpu(cpu).expect("pin");
                }
                let layout = I420Layout::new(OUT);
                let crop = full_view(Rect::new(0, 0, SENSOR.w, SENSOR.h), OUT);
                let cfg =
                    EncoderConfig { width: OUT.w, height: OUT.h, fps: FPS, bitrate_bps: BITRATE, gop_frames: 2 * FPS };
                let mut enc = new_h264_encoder(&cfg).expect("encoder");
                let mut buf = FrameBuffer {
                    index: 0,
                    memory: SharedMemory::memfd("bench", layout.frame_len()).unwrap(),
                    layout: FrameLayout::i420(OUT),
                };
                let (mut xmap, mut scratch) = (Vec::new(), Scratch::default());
                let (mut cpu, mut wall, mut bytes) = (Histogram::new(), Histogram::new(), 0u64);
                let start = monotonic_us();
                let ticks = Ticks::new(start, Duration::from_micros(1_000_000 / FPS as u64));
                for i in 0..frames {
                    let t = start + i as u64 * 1_000_000 / FPS as u64;
                    ticks.wait();
                    scene.render(eye, t, crop, layout, buf.pixels_mut(), &mut xmap);
                    Stamp { eye, sequence: i, capture_us: t, crop }.paint(layout, buf.pixels_mut());
                    let (c0, w0) = (thread_cpu_us(), monotonic_us());
                    let au = encode_one(&mut enc, &buf, false, &mut scratch).expect("encode");
                    if i < skip {
                        continue;
                    }
                    cpu.record(thread_cpu_us() - c0);
                    wall.record(monotonic_us() - w0);
                    bytes += au.annexb().len() as u64;
                }
                (cpu, wall, bytes)
            })
        })
        .collect();
    let (mut cpu, mut wall, mut bytes) = (Histogram::new(), Histogram::new(), 0);
    for t in threads {
        let (c, w, b) = t.join().unwrap();
        cpu.merge(&c);
        wall.merge(&w);
        bytes += b;
    }
    (cpu, wall, bytes)
}

/// The encoder alone for 10 s: the floor, and its p99.
fn encoder_alone(r: &mut Report) -> (f64, f64) {
    let frames = (300.0 * scale()) as u32;
    let scene = std::sync::Arc::new(Scene::new(SENSOR, 24));
    let (cpu, wall, bytes) = encode_paced(&scene, frames, 0);
    let mean = cpu.mean();
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
        let (cpu, _, _) = encode_paced(&scene, counted + FPS, FPS);
        alone_us += cpu.sum() as f64;
        alone_frames += cpu.count() as f64;
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

fn daemon_one_viewer(r: &mut Report, enc_mean_us: f64, enc_wall_p99: f64) {
    let d = start_daemon(&[]);
    let mut v = Viewers::connect(d.addr, 1, 2, 0);
    v.run(secs(3.0)); // warm-up: encoders settled, viewers joined
    let w = Window::start(&d);
    v.latency = Histogram::new();
    v.run(secs(20.0));
    let res = w.end();
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench probing for test names
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
    if on("viewers") {
        many_viewers(&mut r, 50);
    }
    if on("stalled") {
        stalled_viewer(&mut r);
    }
    if on("eye") {
        eye_movement(&mut r);
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
