//! `status`, `/metrics` and the video hello: the controller's commanded state next to what the
//! pipeline measured, in one place, so the three cannot disagree. Pure formatting over values.

use super::Controller;
use crate::camera::CameraInfo;
use crate::histogram::Histogram;
use crate::json;
use crate::metrics::{Metrics, rss_bytes};
use crate::stats::EyeStats;
use crate::sys::clock::process_cpu_us;

/// What the pipeline measured, lent to the reports.
pub struct Measured<'a> {
    pub eyes: Vec<EyeMeasured<'a>>,
    /// Every video viewer, of either eye.
    pub viewers: Vec<ViewerMeasured<'a>>,
    /// Open connections of every kind (the one asking included).
    pub clients: usize,
    /// Connections refused by the limits.
    pub refused: u64,
    /// The frame taps (also counted in `clients`).
    pub taps: Option<&'a crate::tap::TapBook>,
    pub started_us: u64,
}

pub struct EyeMeasured<'a> {
    pub info: &'a CameraInfo,
    pub encoder: &'a str,
    pub encoder_cpu: Option<usize>,
    /// Threads (slices) encoding one picture (`--encoder-threads`).
    pub encoder_threads: u16,
    /// RFC 6381 codec string from the latest SPS.
    pub codec: Option<&'a str>,
    pub stats: &'a EyeStats,
    pub camera_state: String,
    pub encoder_state: String,
    pub camera_starved: u64,
}

pub struct ViewerMeasured<'a> {
    pub eye: u8,
    pub peer: &'a str,
    pub dropped: u64,
    pub encoded_to_sent: &'a Histogram,
}

fn ms(h: &Histogram, q: f64) -> f64 {
    h.quantile(q) as f64 / 1000.0
}

fn latency_json(s: &EyeStats) -> String {
    json::Obj::new()
        .num("capture_queued_p50", ms(&s.capture_to_queued, 0.5))
        .num("capture_queued_p99", ms(&s.capture_to_queued, 0.99))
        .num("queued_encoded_p50", ms(&s.queued_to_encoded, 0.5))
        .num("queued_encoded_p99", ms(&s.queued_to_encoded, 0.99))
        .num("encode_cpu_p50", ms(&s.encode_cpu, 0.5))
        .num("encode_cpu_p99", ms(&s.encode_cpu, 0.99))
        .num("capture_encoded_p50", ms(&s.capture_to_encoded, 0.5))
        .num("capture_encoded_p99", ms(&s.capture_to_encoded, 0.99))
        .num("capture_sent_p50", ms(&s.capture_to_sent, 0.5))
        .num("capture_sent_p99", ms(&s.capture_to_sent, 0.99))
        .int("sent_samples", s.capture_to_sent.count())
        .finish()
}

/// The `status` report: one JSON object (README "Status").
pub fn status_json(c: &Controller, m: &Measured<'_>, now_us: u64) -> String {
    let eyes = m.eyes.iter().enumerate().map(|(i, e)| {
        let (info, s) = (e.info, e.stats);
        let (sequence, crop) = c.last_frame(i as u8);
        let viewers = m.viewers.iter().filter(|v| v.eye as usize == i);
        json::Obj::new()
            .int("eye", i as u64)
            .str("camera", &info.id)
            .str("encoder", e.encoder)
            .raw("encoder_cpu", &e.encoder_cpu.map_or("null".into(), |c| c.to_string()))
            .int("encoder_threads", e.encoder_threads as u64)
            .opt_str("codec", e.codec)
            .raw("output", &json::array([info.output.w, info.output.h].map(|v| v.to_string())))
            .raw("sensor", &json::rect(info.sensor))
            .raw("crop", &json::rect(crop))
            .bool("crop_supported", info.crop_supported)
            .opt_str("sensor_mode", info.sensor_mode.as_deref())
            .raw("sequence", &sequence.map_or("null".into(), |s| s.to_string()))
            .str("flip", c.eyes[i].flip.name())
            .num("fps", s.fps)
            .num("bitrate", s.bitrate)
            .int("bitrate_target", c.eyes[i].encoder.bitrate_bps as u64)
            .int("frames", s.encoded)
            .int("captured", s.captured)
            .int("keyframes", s.keyframes)
            .int("bytes", s.bytes)
            .int("drops", s.viewer_drops)
            .int("encoder_drops", s.encoder_drops)
            .int("surplus", s.surplus)
            .int("camera_starved", e.camera_starved)
            .int("camera_failures", s.camera_failures)
            .int("camera_skipped", s.camera_skipped)
            .int("encoder_errors", s.encoder_errors)
            .str("camera_state", &e.camera_state)
            .str("encoder_state", &e.encoder_state)
            .num("encode_ms", if s.encoded > 0 { s.encode_cpu_us as f64 / s.encoded as f64 / 1000.0 } else { 0.0 })
            .int("viewers", viewers.clone().count() as u64)
            .raw("latency_ms", &latency_json(s))
            .raw(
                "viewer_latency_ms",
                &json::array(viewers.map(|v| {
                    let h = v.encoded_to_sent;
                    json::Obj::new()
                        .str("peer", v.peer)
                        .int("dropped", v.dropped)
                        .num("encoded_sent_p50", ms(h, 0.5))
                        .num("encoded_sent_p99", ms(h, 0.99))
                        .int("sent", h.count())
                        .finish()
                })),
            )
            .finish()
    });
    json::Obj::new()
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("rss_mb", rss_bytes() as f64 / 1048576.0)
        .int("allocations", crate::sys::alloc_count::allocations())
        .num("uptime_s", now_us.saturating_sub(m.started_us) as f64 / 1e6)
        .int("now_us", now_us)
        .int("fps_target", c.fps as u64)
        .bool("paused", c.paused)
        .int("clients", m.clients as u64)
        .raw("taps", &taps_json(m))
        .str("state_file", &c.state_path.display().to_string())
        .raw("state", &c.state_view().to_json())
        .raw("eyes", &json::array(eyes))
        .raw("stereo", &stereo_json(c))
        .finish()
}

/// Each frame tap: which eyes, how often, what size, frames sent and skipped per eye, the
/// sequence it holds of each eye.
fn taps_json(m: &Measured<'_>) -> String {
    let Some(book) = m.taps else { return "[]".into() };
    json::array(book.iter().map(|(id, t)| {
        let per_eye = |f: &dyn Fn(usize) -> String| json::array((0..2).map(f));
        json::Obj::new()
            .int("client", id)
            .raw("eyes", &json::array(t.spec.eyes.eyes().iter().map(|e| e.to_string())))
            .int("every", t.spec.every as u64)
            .opt_str("size", t.spec.size.map(|s| s.to_string()).as_deref())
            .raw("sent", &per_eye(&|e| t.counts[e].sent.to_string()))
            .raw("skipped", &per_eye(&|e| t.counts[e].skipped.to_string()))
            .raw("held", &per_eye(&|e| t.held[e].map_or("null".into(), |h| h.seq.to_string())))
            .finish()
    }))
}

/// How the two eyes' frames line up in time: the sync the cameras have, and the skew of the
/// frames paired by capture timestamp (`null` with one eye).
fn stereo_json(c: &Controller) -> String {
    if c.eyes.len() < 2 {
        return "null".into();
    }
    let p = &c.pairing;
    let ms = |us: u64| us as f64 / 1000.0;
    json::Obj::new()
        .str("sync", &c.sync)
        .int("pairs", p.pairs)
        .raw("unpaired", &json::array(p.unpaired.map(|v| v.to_string())))
        .num("skew_ms_last", p.last.map_or(f64::NAN, |l| l.skew_us as f64 / 1000.0))
        .num("skew_ms_p50", ms(p.skew.quantile(0.5)))
        .num("skew_ms_p99", ms(p.skew.quantile(0.99)))
        .num("skew_ms_max", ms(p.skew.max()))
        .finish()
}

/// `/metrics`: Prometheus text format.
pub fn metrics_text(c: &Controller, m: &Measured<'_>, now_us: u64) -> String {
    let mut out = Metrics::new();
    out.gauge(
        "pieyes_uptime_seconds",
        "Seconds since start-up.",
        &[],
        now_us.saturating_sub(m.started_us) as f64 / 1e6,
    );
    out.gauge("pieyes_resident_memory_bytes", "Resident set size.", &[], rss_bytes() as f64);
    out.counter(
        "pieyes_allocations_total",
        "Heap allocations made by the process's Rust code.",
        &[],
        crate::sys::alloc_count::allocations() as f64,
    );
    out.counter("pieyes_cpu_seconds_total", "CPU time of the whole process.", &[], process_cpu_us() as f64 / 1e6);
    out.gauge("pieyes_clients", "Open connections of every kind.", &[], m.clients as f64);
    out.counter("pieyes_refused_connections_total", "Connections refused by the limits.", &[], m.refused as f64);
    out.gauge("pieyes_paused", "1 while capture is paused.", &[], c.paused as u8 as f64);
    if let Some(book) = m.taps {
        out.gauge("pieyes_taps", "Frame taps on the control socket.", &[], book.iter().count() as f64);
        for (i, t) in book.totals.iter().enumerate() {
            let eye = i.to_string();
            let l: &[(&str, &str)] = &[("eye", &eye)];
            out.counter("pieyes_tap_frames_sent_total", "Frames sent to taps.", l, t.sent as f64);
            out.counter("pieyes_tap_frames_skipped_total", "Frames taps wanted and were skipped.", l, t.skipped as f64);
        }
    }
    for (i, e) in m.eyes.iter().enumerate() {
        let eye = i.to_string();
        let l: &[(&str, &str)] = &[("eye", &eye)];
        let s = e.stats;
        out.gauge("pieyes_fps", "Frames encoded per second, last second.", l, s.fps);
        out.gauge("pieyes_bitrate_bps", "Bits per second sent by the encoder, last second.", l, s.bitrate);
        out.counter("pieyes_frames_captured_total", "Frames captured.", l, s.captured as f64);
        out.counter("pieyes_frames_encoded_total", "Frames encoded.", l, s.encoded as f64);
        out.counter("pieyes_keyframes_total", "IDR frames encoded.", l, s.keyframes as f64);
        out.counter("pieyes_bytes_encoded_total", "Bytes of H.264 produced.", l, s.bytes as f64);
        for (kind, v) in [
            ("viewer", s.viewer_drops),
            ("encoder_busy", s.encoder_drops),
            ("camera_starved", e.camera_starved),
            ("camera_failed", s.camera_failures),
            ("camera_skipped", s.camera_skipped),
            ("encoder_error", s.encoder_errors),
        ] {
            out.counter(
                "pieyes_frames_dropped_total",
                "Frames lost, by where.",
                &[("eye", &eye), ("kind", kind)],
                v as f64,
            );
        }
        let viewers: Vec<&ViewerMeasured<'_>> = m.viewers.iter().filter(|v| v.eye as usize == i).collect();
        out.gauge("pieyes_viewers", "Video viewers connected.", l, viewers.len() as f64);
        out.counter("pieyes_encode_cpu_seconds_total", "CPU time spent encoding.", l, s.encode_cpu_us as f64 / 1e6);
        out.gauge("pieyes_camera_ok", "1 while the camera delivers.", l, (e.camera_state == "ok") as u8 as f64);
        out.gauge("pieyes_encoder_ok", "1 while the encoder delivers.", l, (e.encoder_state == "ok") as u8 as f64);
        out.histogram_us(
            "pieyes_capture_to_encoded_seconds",
            "Capture to access unit ready.",
            l,
            &s.capture_to_encoded,
            5,
        );
        out.histogram_us(
            "pieyes_capture_to_sent_seconds",
            "Capture to last byte written, every viewer.",
            l,
            &s.capture_to_sent,
            5,
        );
        let mut merged = Histogram::new();
        viewers.iter().for_each(|v| merged.merge(v.encoded_to_sent));
        out.histogram_us(
            "pieyes_encoded_to_sent_seconds",
            "Access unit ready to last byte written, current viewers.",
            l,
            &merged,
            5,
        );
    }
    out.finish()
}

/// The first message on a video WebSocket: what the stream is, at the frame rate in force.
pub fn hello_json(c: &Controller, eye: u8, info: &CameraInfo, codec: Option<&str>) -> String {
    json::Obj::new()
        .str("type", "hello")
        .int("version", crate::stream::wire::VERSION as u64)
        .int("eye", eye as u64)
        .opt_str("codec", codec)
        .int("width", info.output.w as u64)
        .int("height", info.output.h as u64)
        .int("fps", c.fps as u64)
        .raw("sensor", &json::rect(info.sensor))
        .int("header_len", crate::stream::wire::HEADER_LEN as u64)
        .bool("https", c.https)
        .finish()
}

/// The status message a viewer gets when its eye's health changes.
pub fn health_message(eye: u8, camera: &str, encoder: &str) -> String {
    json::Obj::new().str("type", "status").int("eye", eye as u64).str("camera", camera).str("encoder", encoder).finish()
}
