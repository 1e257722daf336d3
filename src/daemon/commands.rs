//! Carrying out control commands against the daemon's state, the status report, and the
//! commanded-state snapshot that `watch` connections receive.

use super::Daemon;
use crate::camera::Flip;
use crate::config::gop_frames;
use crate::control::command::{CmdError, Command, Target, help_text, num};
use crate::control::state_file::{self, SavedEye, SavedState};
use crate::eyes::geometry::Pose;
use crate::eyes::timeline::{Aim, Segment};
use crate::histogram::Histogram;
use crate::inject::Kind;
use crate::json;
use crate::metrics::{Metrics, rss_bytes};
use crate::sys::clock::monotonic_us;
use crate::sys::clock::process_cpu_us;

fn check_eyes(d: &Daemon, target: Target) -> Result<&'static [u8], CmdError> {
    let eyes = target.eyes();
    if eyes.iter().any(|&i| i as usize >= d.eyes.len()) {
        return Err(CmdError::new("no-eye", "that eye has no camera"));
    }
    Ok(eyes)
}

/// The first sequence not yet requested by any of `eyes`: a change lands on it in all of
/// them, on the same capture tick.
fn common_sequence(d: &Daemon, eyes: &[u8]) -> u32 {
    eyes.iter()
        .map(|&i| d.eyes[i as usize].next_unrequested_sequence())
        .max_by(|a, b| (a.wrapping_sub(*b) as i32).cmp(&0))
        .expect("at least one eye")
}

/// The sequence from which a change applies to eye `i`: the common one when the eyes share a
/// frame clock; otherwise the eye's own (free-running cameras number their frames apart, and
/// the same number is not the same moment).
fn start_sequence(d: &Daemon, i: u8, common: u32) -> u32 {
    if d.shared_clock { common } else { d.eyes[i as usize].next_unrequested_sequence() }
}

/// ` seqN=S` for an eye whose start differs from the reply's `seq=` (free-running cameras).
fn own_seq(i: u8, s: u32, first: u32) -> String {
    if s == first { String::new() } else { format!(" seq{i}={s}") }
}

fn frames_for(d: &Daemon, over_ms: u32) -> u32 {
    if over_ms == 0 { 0 } else { ((over_ms as u64 * d.fps as u64).div_ceil(1000) as u32).max(1) }
}

fn pose_text(p: Pose) -> String {
    format!("{},{},{}", num(p.x), num(p.y), num(p.zoom))
}

/// Plan a pose change for `eyes` and describe it: `ok seq=S [until=E] cropN=… viewN=x,y,zoom …`.
fn plan(d: &mut Daemon, eyes: &[u8], over_ms: u32, change: impl Fn(Pose) -> Pose) -> String {
    let common = common_sequence(d, eyes);
    let seq = start_sequence(d, eyes[0], common);
    let frames = frames_for(d, over_ms);
    let mut reply = format!("ok seq={seq}");
    if frames > 1 {
        reply.push_str(&format!(" until={}", seq.wrapping_add(frames - 1)));
    }
    let mut verge = 0.0;
    for &i in eyes {
        let s = start_sequence(d, i, common);
        let e = &mut d.eyes[i as usize];
        let cur = e.timeline.target_pose(&e.geometry, e.flip);
        let to = e.geometry.clamp(change(cur));
        let (g, flip) = (e.geometry, e.flip);
        e.timeline.move_to(s, to, frames, &g, flip);
        verge = to.verge;
        reply.push_str(&format!("{} crop{i}={} view{i}={}", own_seq(i, s, seq), e.target_crop(), pose_text(to)));
    }
    reply.push_str(&format!(" verge={}", num(verge)));
    reply
}

pub(super) fn execute(d: &mut Daemon, cmd: Command, now: u64) -> Result<String, CmdError> {
    let reply = match cmd {
        Command::Status => return Ok(format!("ok {}", status_json(d, now))),
        Command::Help => return Ok(format!("ok {}", help_text())),
        Command::Clock => return Ok(format!("ok clock={}", monotonic_us())),
        Command::Watch | Command::Auth(_) => unreachable!("handled per connection"),
        Command::Keyframe => {
            for e in &mut d.eyes {
                e.keyframes.request();
            }
            return Ok("ok keyframe".into());
        }
        Command::Look { target, x, y, over_ms } => {
            let eyes = check_eyes(d, target)?;
            plan(d, eyes, over_ms, |p| Pose { x, y, ..p })
        }
        Command::Move { target, dx, dy, over_ms } => {
            let eyes = check_eyes(d, target)?;
            plan(d, eyes, over_ms, |p| Pose { x: p.x + dx, y: p.y + dy, ..p })
        }
        Command::Zoom { target, zoom, over_ms } => {
            let eyes = check_eyes(d, target)?;
            plan(d, eyes, over_ms, |p| Pose { zoom, ..p })
        }
        Command::Verge { d: v, over_ms } => {
            let eyes = check_eyes(d, Target::Both)?;
            plan(d, eyes, over_ms, |p| Pose { verge: v, ..p })
        }
        Command::Offset { eye, dx, dy } => {
            let eyes = check_eyes(d, Target::Eye(eye))?;
            let seq = start_sequence(d, eye, common_sequence(d, eyes));
            let e = &mut d.eyes[eye as usize];
            e.offset = (dx, dy);
            format!("ok seq={seq} crop{eye}={} offset{eye}={dx},{dy}", e.target_crop())
        }
        Command::Crop { target, rect } => {
            let eyes = check_eyes(d, target)?;
            let common = common_sequence(d, eyes);
            let seq = start_sequence(d, eyes[0], common);
            let mut reply = format!("ok seq={seq}");
            for &i in eyes {
                let s = start_sequence(d, i, common);
                let e = &mut d.eyes[i as usize];
                let applied = e.crop_of(Aim::Raw(rect));
                e.timeline.set_from(s, Segment::Hold(Aim::Raw(applied)));
                reply.push_str(&format!("{} crop{i}={applied}", own_seq(i, s, seq)));
            }
            reply
        }
        Command::Flip { target, flip } => {
            let eyes = check_eyes(d, target)?;
            for &i in eyes {
                let e = &mut d.eyes[i as usize];
                e.camera.set_flip(flip).map_err(|err| CmdError::new("camera", err.to_string()))?;
                e.flip = flip;
                e.keyframes.request();
                d.pending_events.push(format!("event flip eye={i} flip={}", flip.name()));
            }
            format!("ok flip={}", flip.name())
        }
        Command::Pause => {
            set_paused(d, true);
            "ok paused".into()
        }
        Command::Resume => {
            set_paused(d, false);
            "ok resumed".into()
        }
        Command::Fps(fps) => {
            for e in &mut d.eyes {
                e.camera.set_fps(fps).map_err(|err| CmdError::new("camera", err.to_string()))?;
                e.encoder_cfg.fps = fps;
                e.encoder_cfg.gop_frames = gop_frames(d.cfg.gop_seconds, fps);
                e.encoder.configure(e.encoder_cfg);
            }
            d.fps = fps;
            d.pairing.set_period(1_000_000 / fps as u64);
            format!("ok fps={fps}")
        }
        Command::Bitrate { target, bps } => {
            let eyes = check_eyes(d, target)?;
            for &i in eyes {
                let e = &mut d.eyes[i as usize];
                e.encoder_cfg.bitrate_bps = bps;
                e.encoder.configure(e.encoder_cfg);
            }
            format!("ok bitrate={bps}")
        }
        Command::Save => {
            let path = d.cfg.state.clone();
            let result = if d.faults.active(Kind::StateFull, 0, now).is_some() {
                Err(std::io::Error::from_raw_os_error(libc::ENOSPC)) // injected: the disk is full
            } else {
                state_file::save_atomic(&path, &state_file::format(&saved_state(d)))
            };
            match result {
                Ok(()) => {
                    crate::info!("saved state to {}", path.display());
                    d.pending_events.push(format!("event saved path={}", path.display()));
                    format!("ok saved path={}", path.display())
                }
                Err(e) => {
                    crate::error!("cannot save state to {}: {e}", path.display());
                    return Err(CmdError::new("save-failed", format!("{}: {e}", path.display())));
                }
            }
        }
    };
    d.pending_events.push(format!("event state {}", state_json(d)));
    Ok(reply)
}

fn set_paused(d: &mut Daemon, paused: bool) {
    if d.paused == paused {
        return;
    }
    d.paused = paused;
    for e in &mut d.eyes {
        e.paused = paused;
        if !paused {
            e.keyframes.request();
            e.refill();
        }
    }
    crate::info!("capture {}", if paused { "paused" } else { "resumed" });
    d.pending_events.push(format!("event {}", if paused { "pause" } else { "resume" }));
}

/// What `save` writes: the commanded view (not a pursuit's midpoint) and the calibration.
pub(super) fn saved_state(d: &Daemon) -> SavedState {
    let mut s = SavedState::defaults(d.fps, d.cfg.bitrate);
    for (i, e) in d.eyes.iter().enumerate().take(2) {
        let pose = e.timeline.target_pose(&e.geometry, e.flip);
        s.eyes[i] = SavedEye { offset: e.offset, pose, flip: e.flip, bitrate: e.encoder_cfg.bitrate_bps };
        s.vergence = pose.verge;
    }
    s
}

/// The commanded state, as the viewer's controls show it.
pub(super) fn state_json(d: &Daemon) -> String {
    let eyes = d.eyes.iter().map(|e| {
        let p = e.timeline.target_pose(&e.geometry, e.flip);
        let c = e.target_crop();
        json::Obj::new()
            .int("eye", e.index as u64)
            .num("x", p.x)
            .num("y", p.y)
            .num("zoom", p.zoom)
            .raw("offset", &json::array([e.offset.0, e.offset.1].map(|v| v.to_string())))
            .str("flip", e.flip.name())
            .int("bitrate", e.encoder_cfg.bitrate_bps as u64)
            .raw("crop", &json::array([c.x, c.y, c.w, c.h].map(|v| v.to_string())))
            .bool("raw_crop", matches!(e.timeline.target(), Aim::Raw(_)))
            .num("max_zoom", e.geometry.zoom_limit())
            .finish()
    });
    let verge = d.eyes.first().map_or(0.0, |e| e.timeline.target_pose(&e.geometry, e.flip).verge);
    json::Obj::new()
        .bool("paused", d.paused)
        .bool("token_required", d.token.is_some())
        .int("fps", d.fps as u64)
        .num("verge", verge)
        .raw("eyes", &json::array(eyes))
        .finish()
}

fn latency_json(s: &super::eye::EyeStats) -> String {
    let ms = |h: &Histogram, q: f64| h.quantile(q) as f64 / 1000.0;
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

/// Every viewer's encoded→sent histogram of one eye, merged.
fn viewers_encoded_to_sent(d: &Daemon, eye: usize) -> Histogram {
    let mut h = Histogram::new();
    for id in &d.eyes[eye].viewers {
        if let Some(c) = d.clients.get(id) {
            h.merge(&c.encoded_to_sent);
        }
    }
    h
}

/// `/metrics`: Prometheus text format.
pub(super) fn metrics_text(d: &Daemon, now: u64) -> String {
    let mut m = Metrics::new();
    m.gauge("pieyes_uptime_seconds", "Seconds since start-up.", &[], now.saturating_sub(d.started_us) as f64 / 1e6);
    m.gauge("pieyes_resident_memory_bytes", "Resident set size.", &[], rss_bytes() as f64);
    m.counter("pieyes_cpu_seconds_total", "CPU time of the whole process.", &[], process_cpu_us() as f64 / 1e6);
    m.gauge("pieyes_clients", "Open connections of every kind.", &[], d.clients.len() as f64);
    m.counter("pieyes_refused_connections_total", "Connections refused by the limits.", &[], d.refused as f64);
    m.gauge("pieyes_paused", "1 while capture is paused.", &[], d.paused as u8 as f64);
    for (i, e) in d.eyes.iter().enumerate() {
        let eye = i.to_string();
        let l: &[(&str, &str)] = &[("eye", &eye)];
        let s = &e.stats;
        m.gauge("pieyes_fps", "Frames encoded per second, last second.", l, s.fps);
        m.gauge("pieyes_bitrate_bps", "Bits per second sent by the encoder, last second.", l, s.bitrate);
        m.counter("pieyes_frames_captured_total", "Frames captured.", l, s.captured as f64);
        m.counter("pieyes_frames_encoded_total", "Frames encoded.", l, s.encoded as f64);
        m.counter("pieyes_keyframes_total", "IDR frames encoded.", l, s.keyframes as f64);
        m.counter("pieyes_bytes_encoded_total", "Bytes of H.264 produced.", l, s.bytes as f64);
        for (kind, v) in [
            ("viewer", s.viewer_drops),
            ("encoder_busy", s.encoder_drops),
            ("camera_starved", e.camera.starved_frames()),
            ("camera_failed", s.camera_failures),
            ("camera_skipped", s.camera_skipped),
            ("encoder_error", s.encoder_errors),
        ] {
            m.counter(
                "pieyes_frames_dropped_total",
                "Frames lost, by where.",
                &[("eye", &eye), ("kind", kind)],
                v as f64,
            );
        }
        m.gauge("pieyes_viewers", "Video viewers connected.", l, e.viewers.len() as f64);
        m.counter("pieyes_encode_cpu_seconds_total", "CPU time spent encoding.", l, s.encode_cpu_us as f64 / 1e6);
        m.gauge(
            "pieyes_camera_ok",
            "1 while the camera delivers.",
            l,
            (e.camera_health.describe() == "ok") as u8 as f64,
        );
        m.gauge(
            "pieyes_encoder_ok",
            "1 while the encoder delivers.",
            l,
            (e.encoder_health.describe() == "ok") as u8 as f64,
        );
        m.histogram_us(
            "pieyes_capture_to_encoded_seconds",
            "Capture to access unit ready.",
            l,
            &s.capture_to_encoded,
            5,
        );
        m.histogram_us(
            "pieyes_capture_to_sent_seconds",
            "Capture to last byte written, every viewer.",
            l,
            &s.capture_to_sent,
            5,
        );
        let viewers = viewers_encoded_to_sent(d, i);
        m.histogram_us(
            "pieyes_encoded_to_sent_seconds",
            "Access unit ready to last byte written, current viewers.",
            l,
            &viewers,
            5,
        );
    }
    m.finish()
}

pub(super) fn status_json(d: &Daemon, now: u64) -> String {
    let eyes = d.eyes.iter().map(|e| {
        let info = e.camera.info();
        let c = e.last_crop;
        let s = &e.stats;
        json::Obj::new()
            .int("eye", e.index as u64)
            .str("camera", &info.id)
            .str("encoder", e.encoder.name())
            .raw("encoder_cpu", &e.encoder.cpu().map_or("null".into(), |c| c.to_string()))
            .opt_str("codec", e.codec.as_deref())
            .raw("output", &json::array([info.output.w, info.output.h].map(|v| v.to_string())))
            .raw(
                "sensor",
                &json::array([info.sensor.x, info.sensor.y, info.sensor.w, info.sensor.h].map(|v| v.to_string())),
            )
            .raw("crop", &json::array([c.x, c.y, c.w, c.h].map(|v| v.to_string())))
            .bool("crop_supported", info.crop_supported)
            .raw("sequence", &e.last_sequence.map_or("null".into(), |s| s.to_string()))
            .str("flip", e.flip.name())
            .num("fps", s.fps)
            .num("bitrate", s.bitrate)
            .int("bitrate_target", e.encoder_cfg.bitrate_bps as u64)
            .int("frames", s.encoded)
            .int("captured", s.captured)
            .int("keyframes", s.keyframes)
            .int("bytes", s.bytes)
            .int("drops", s.viewer_drops)
            .int("encoder_drops", s.encoder_drops)
            .int("surplus", s.surplus)
            .int("camera_starved", e.camera.starved_frames())
            .int("camera_failures", s.camera_failures)
            .int("camera_skipped", s.camera_skipped)
            .int("encoder_errors", s.encoder_errors)
            .str("camera_state", &e.camera_health.describe())
            .str("encoder_state", &e.encoder_health.describe())
            .num("encode_ms", if s.encoded > 0 { s.encode_cpu_us as f64 / s.encoded as f64 / 1000.0 } else { 0.0 })
            .int("viewers", e.viewers.len() as u64)
            .raw("latency_ms", &latency_json(s))
            .raw(
                "viewer_latency_ms",
                &json::array(e.viewers.iter().filter_map(|id| d.clients.get(id)).map(|c| {
                    let h = &c.encoded_to_sent;
                    let dropped = match &c.role {
                        super::client::Role::Video { sub, .. } => sub.dropped,
                        _ => 0,
                    };
                    json::Obj::new()
                        .str("peer", &c.peer)
                        .int("dropped", dropped)
                        .num("encoded_sent_p50", h.quantile(0.5) as f64 / 1000.0)
                        .num("encoded_sent_p99", h.quantile(0.99) as f64 / 1000.0)
                        .int("sent", h.count())
                        .finish()
                })),
            )
            .finish()
    });
    json::Obj::new()
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("rss_mb", rss_bytes() as f64 / 1048576.0)
        .num("uptime_s", (now.saturating_sub(d.started_us)) as f64 / 1e6)
        .int("now_us", now)
        .int("fps_target", d.fps as u64)
        .bool("paused", d.paused)
        .int("clients", d.clients.len() as u64)
        .str("state_file", &d.cfg.state.display().to_string())
        .raw("state", &state_json(d))
        .raw("eyes", &json::array(eyes))
        .raw("stereo", &stereo_json(d))
        .finish()
}

/// How the two eyes' frames line up in time: the sync the cameras have, and the skew of the
/// frames paired by capture timestamp (`null` with one eye).
fn stereo_json(d: &Daemon) -> String {
    if d.eyes.len() < 2 {
        return "null".into();
    }
    let p = &d.pairing;
    let ms = |us: u64| us as f64 / 1000.0;
    json::Obj::new()
        .str("sync", d.sync)
        .int("pairs", p.pairs)
        .raw("unpaired", &json::array(p.unpaired.map(|v| v.to_string())))
        .num("skew_ms_last", p.last.map_or(f64::NAN, |l| l.skew_us as f64 / 1000.0))
        .num("skew_ms_p50", ms(p.skew.quantile(0.5)))
        .num("skew_ms_p99", ms(p.skew.quantile(0.99)))
        .num("skew_ms_max", ms(p.skew.max()))
        .finish()
}

/// Apply a saved (or default) state at start-up.
pub(super) fn apply_saved(d: &mut Daemon, s: &SavedState) {
    for (i, e) in d.eyes.iter_mut().enumerate() {
        let saved = s.eyes[i.min(1)];
        e.offset = saved.offset;
        if saved.flip != Flip::None {
            match e.camera.set_flip(saved.flip) {
                Ok(()) => e.flip = saved.flip,
                Err(err) => crate::warn!("eye {i}: cannot restore flip {}: {err}", saved.flip.name()),
            }
        }
        let pose = e.geometry.clamp(Pose { verge: s.vergence, ..saved.pose });
        e.timeline.set_from(e.next_unrequested_sequence(), Segment::Hold(Aim::Pose(pose)));
        if saved.bitrate != e.encoder_cfg.bitrate_bps {
            e.encoder_cfg.bitrate_bps = saved.bitrate;
            e.encoder.configure(e.encoder_cfg);
        }
    }
}
