//! Carrying out control commands against the daemon's state, and the status report.

use super::Daemon;
use crate::camera::clamp_crop;
use crate::control::command::{CmdError, Command, help_text};
use crate::histogram::Histogram;
use crate::json;
use crate::sys::clock::monotonic_us;

pub(super) fn execute(d: &mut Daemon, cmd: Command, now: u64) -> Result<String, CmdError> {
    match cmd {
        Command::Status => Ok(format!("ok {}", status_json(d, now))),
        Command::Help => Ok(format!("ok {}", help_text())),
        Command::Clock => Ok(format!("ok clock={}", monotonic_us())),
        Command::Keyframe => {
            for e in &mut d.eyes {
                e.keyframes.request();
            }
            Ok("ok keyframe".into())
        }
        Command::Crop { target, rect } => {
            let eyes = target.eyes();
            if eyes.iter().any(|&i| i as usize >= d.eyes.len()) {
                return Err(CmdError::new("no-eye", "that eye has no camera"));
            }
            // The first sequence not yet requested by any of the eyes: both land on it.
            let seq = eyes
                .iter()
                .map(|&i| d.eyes[i as usize].next_unrequested_sequence())
                .max_by(|a, b| (a.wrapping_sub(*b) as i32).cmp(&0))
                .expect("at least one eye");
            let mut reply = format!("ok seq={seq}");
            for &i in eyes {
                let e = &mut d.eyes[i as usize];
                let info = e.camera.info();
                let applied = clamp_crop(rect, info.sensor, info.min_crop);
                e.schedule.set_from(seq, applied);
                reply.push_str(&format!(" crop{i}={applied}"));
            }
            crate::debug!("crop {target:?} {rect} → {reply}");
            Ok(reply)
        }
    }
}

fn latency_json(encoded: &Histogram, sent: &Histogram) -> String {
    let ms = |h: &Histogram, q: f64| h.quantile(q) as f64 / 1000.0;
    json::Obj::new()
        .num("capture_encoded_p50", ms(encoded, 0.5))
        .num("capture_encoded_p99", ms(encoded, 0.99))
        .num("capture_sent_p50", ms(sent, 0.5))
        .num("capture_sent_p99", ms(sent, 0.99))
        .int("sent_samples", sent.count())
        .finish()
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
            .opt_str("codec", e.codec.as_deref())
            .raw("output", &json::array([info.output.w, info.output.h].map(|v| v.to_string())))
            .raw(
                "sensor",
                &json::array([info.sensor.x, info.sensor.y, info.sensor.w, info.sensor.h].map(|v| v.to_string())),
            )
            .raw("crop", &json::array([c.x, c.y, c.w, c.h].map(|v| v.to_string())))
            .raw("sequence", &e.last_sequence.map_or("null".into(), |s| s.to_string()))
            .num("fps", s.fps)
            .num("bitrate", s.bitrate)
            .int("frames", s.encoded)
            .int("captured", s.captured)
            .int("keyframes", s.keyframes)
            .int("bytes", s.bytes)
            .int("drops", s.viewer_drops)
            .int("encoder_drops", s.encoder_drops)
            .int("camera_starved", e.camera.starved_frames())
            .int("camera_failures", s.camera_failures)
            .int("encoder_errors", s.encoder_errors)
            .num("encode_ms", if s.encoded > 0 { s.encode_cpu_us as f64 / s.encoded as f64 / 1000.0 } else { 0.0 })
            .int("viewers", e.viewers.len() as u64)
            .raw("latency_ms", &latency_json(&s.capture_to_encoded, &s.capture_to_sent))
            .finish()
    });
    json::Obj::new()
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("uptime_s", (now.saturating_sub(d.started_us)) as f64 / 1e6)
        .int("now_us", now)
        .int("fps_target", d.cfg.fps as u64)
        .int("bitrate_target", d.cfg.bitrate as u64)
        .int("clients", d.clients.len() as u64)
        .raw("eyes", &json::array(eyes))
        .finish()
}
