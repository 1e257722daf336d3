//! One eye's pipeline as the loop drives it: camera requests out, completed frames into the
//! encoder, access units out as shared packets, buffers back to the camera.

use std::sync::Arc;

use crate::camera::{Camera, Completed, Controls, Flip, FrameBuffer, FrameStatus, Rect, Request, clamp_crop};
use crate::encoder::{EncodeJob, Encoded, Encoder, EncoderConfig, h264};
use crate::eyes::geometry::{Geometry, Pose};
use crate::eyes::timeline::{Aim, Timeline};
use crate::health::{Change, Health};
use crate::histogram::Histogram;
use crate::stream::keyframe::KeyframeGate;
use crate::stream::wire::Packet;
use crate::sys::clock::monotonic_us;

/// Requests kept queued in the camera. One is enough for a camera that completes a frame per
/// tick and keeps eye movements within two frames of the command (a deeper queue would carry
/// stale crops); real cameras that need more say so through `Eye::new`.
pub const SYNTHETIC_REQUEST_DEPTH: usize = 1;
/// Frames allowed inside the encoder at once. One: a frame that finds the encoder busy is
/// dropped at the source rather than queued behind another, so a slow encoder costs frames,
/// never latency — and each eye needs only two frame buffers (one capturing, one encoding).
pub const MAX_ENCODER_BACKLOG: usize = 1;
/// An encoder holding frames this long without answering is reported as stalled.
pub const ENCODER_STALL_US: u64 = 2_000_000;

/// At most `fps` frames a second go to the encoder, by capture time: a frame is taken when it is
/// no earlier than a quarter period before its slot, so a camera at the rate (with jitter) loses
/// nothing and a faster one is thinned to the rate.
#[derive(Clone, Debug, Default)]
pub struct RateLimit {
    due_us: Option<u64>,
}

impl RateLimit {
    pub fn take(&mut self, capture_us: u64, fps: u32) -> bool {
        let p = 1_000_000 / fps.max(1) as u64;
        let due = self.due_us.unwrap_or(0);
        if capture_us + p / 4 < due {
            return false;
        }
        self.due_us = Some(if capture_us > due + p { capture_us + p } else { due + p });
        true
    }
}

/// A camera that has delivered nothing for five frame times (at least a second) is stalled.
pub fn camera_stall_us(fps: u32) -> u64 {
    (5_000_000 / fps.max(1) as u64).max(1_000_000)
}

/// Forced IDRs at most this often per eye.
pub const MIN_FORCED_IDR_INTERVAL_US: u64 = 500_000;

#[derive(Debug, Default, Clone)]
pub struct EyeStats {
    pub captured: u64,
    pub camera_failures: u64,
    /// Frames the camera never captured although a request was queued for them.
    pub camera_skipped: u64,
    pub encoded: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub encoder_errors: u64,
    /// Frames dropped before the encoder because it was still busy.
    pub encoder_drops: u64,
    /// Frames beyond the configured rate, not encoded (a camera that ignores the frame rate:
    /// libcamera 0.4's virtual camera fills requests as fast as they come).
    pub surplus: u64,
    /// Frames not delivered to a viewer (slow viewers skipped to a keyframe), all viewers.
    pub viewer_drops: u64,
    pub encode_cpu_us: u64,
    /// The encoder's CPU time per frame, µs (its work, apart from waiting for a core).
    pub encode_cpu: Histogram,
    /// Capture → the frame handed to the encoder (the camera's own delay plus the loop's), µs.
    pub capture_to_queued: Histogram,
    /// Handed to the encoder → access unit ready (waiting plus encoding), µs.
    pub queued_to_encoded: Histogram,
    /// Capture → access unit ready, µs.
    pub capture_to_encoded: Histogram,
    /// Capture → last byte written to a viewer's socket, µs (every viewer, every frame).
    pub capture_to_sent: Histogram,
    /// Measured over the last second.
    pub fps: f64,
    pub bitrate: f64,
    window_start_us: u64,
    window_frames: u64,
    window_bytes: u64,
}

impl EyeStats {
    /// Refresh fps/bitrate once a second.
    pub fn tick(&mut self, now_us: u64) {
        if self.window_start_us == 0 {
            self.window_start_us = now_us;
            return;
        }
        let dt = now_us.saturating_sub(self.window_start_us);
        if dt >= 1_000_000 {
            self.fps = (self.encoded - self.window_frames) as f64 * 1e6 / dt as f64;
            self.bitrate = (self.bytes - self.window_bytes) as f64 * 8e6 / dt as f64;
            self.window_start_us = now_us;
            self.window_frames = self.encoded;
            self.window_bytes = self.bytes;
        }
    }
}

pub struct Eye {
    pub index: u8,
    pub camera: Box<dyn Camera>,
    pub encoder: Box<dyn Encoder>,
    request_depth: usize,
    free: Vec<FrameBuffer>,
    /// Where this eye is told to look, frame by frame.
    pub timeline: Timeline,
    pub geometry: Geometry,
    /// Calibration offset, sensor pixels.
    pub offset: (i32, i32),
    pub flip: Flip,
    pub encoder_cfg: EncoderConfig,
    /// While paused no requests are queued: the camera captures nothing for this eye.
    pub paused: bool,
    /// Event lines for `watch` connections (crop applied, …), drained by the daemon.
    pub events: Vec<String>,
    pub keyframes: KeyframeGate,
    pub stats: EyeStats,
    /// RFC 6381 codec string from the latest SPS.
    pub codec: Option<String>,
    /// Client ids of this eye's viewers.
    pub viewers: Vec<u64>,
    /// Crop and sequence of the newest captured frame.
    pub last_crop: Rect,
    pub last_sequence: Option<u32>,
    /// Whether the camera and the encoder are delivering; changes go to `health_changes`.
    pub camera_health: Health,
    pub encoder_health: Health,
    /// Health changes for the daemon to log, announce to `watch` and to this eye's viewers.
    pub health_changes: Vec<(&'static str, Change)>,
    rate: RateLimit,
    /// (sequence, capture µs) of good frames since the daemon last took them (stereo pairing).
    pub captured_times: Vec<(u32, u64)>,
    completed: Vec<Completed>,
    encoded: Vec<Encoded>,
    /// When each frame inside the encoder was handed to it (sequence, µs).
    queued_at: std::collections::VecDeque<(u32, u64)>,
}

impl Eye {
    pub fn new(
        index: u8,
        mut camera: Box<dyn Camera>,
        encoder: Box<dyn Encoder>,
        encoder_cfg: EncoderConfig,
        request_depth: usize,
        geometry: Geometry,
        initial: Pose,
    ) -> Eye {
        let free = camera.take_buffers();
        let initial_crop = geometry.crop(index, initial, (0, 0), Flip::None);
        Eye {
            index,
            camera,
            encoder,
            request_depth,
            free,
            timeline: Timeline::new(Aim::Pose(initial)),
            geometry,
            offset: (0, 0),
            flip: Flip::None,
            encoder_cfg,
            paused: false,
            events: Vec::new(),
            keyframes: KeyframeGate::new(MIN_FORCED_IDR_INTERVAL_US),
            stats: EyeStats::default(),
            codec: None,
            viewers: Vec::new(),
            last_crop: initial_crop,
            last_sequence: None,
            camera_health: Health::new(camera_stall_us(30), monotonic_us()),
            encoder_health: Health::new(ENCODER_STALL_US, monotonic_us()),
            health_changes: Vec::new(),
            captured_times: Vec::new(),
            rate: RateLimit::default(),
            completed: Vec::new(),
            encoded: Vec::new(),
            queued_at: std::collections::VecDeque::with_capacity(8),
        }
    }

    /// The crop for an aim, with this eye's calibration and flip.
    pub fn crop_of(&self, aim: Aim) -> Rect {
        match aim {
            Aim::Pose(p) => self.geometry.crop(self.index, p, self.offset, self.flip),
            Aim::Raw(r) => clamp_crop(r, self.geometry.sensor, self.geometry.min_crop),
        }
    }

    /// The crop the eye is commanded to end up at.
    pub fn target_crop(&self) -> Rect {
        self.crop_of(self.timeline.target())
    }

    /// Keep the camera's request queue at its depth, each request carrying the crop planned
    /// for the sequence it will capture. Call once after start-up state is applied.
    pub fn refill(&mut self) {
        while !self.paused && self.camera.queued() < self.request_depth {
            let Some(buffer) = self.free.pop() else {
                return;
            };
            let seq = self.camera.next_sequence();
            let aim = self.timeline.at(seq);
            let crop = self.crop_of(aim);
            if let Err(rejected) = self.camera.queue_request(Request { buffer, controls: Controls { crop } }) {
                let (req, e) = *rejected;
                crate::warn!("eye {}: cannot queue a request: {e}", self.index);
                self.free.push(req.buffer);
                return;
            }
        }
    }

    /// The sequence from which a change made now can take effect for this eye.
    pub fn next_unrequested_sequence(&self) -> u32 {
        self.camera.next_sequence()
    }

    /// The camera's completion fd was readable.
    pub fn on_camera_ready(&mut self, now_us: u64) {
        let mut done = std::mem::take(&mut self.completed);
        self.camera.drain_completed(&mut done);
        for c in done.drain(..) {
            if c.status == FrameStatus::Skipped {
                self.stats.camera_skipped += 1;
                self.free.push(c.buffer);
                continue;
            }
            if let FrameStatus::Failed(why) = &c.status {
                self.stats.camera_failures += 1;
                if let Some(ch) = self.camera_health.failed(why, now_us) {
                    self.health_changes.push(("camera", ch));
                }
                self.free.push(c.buffer);
                continue;
            }
            if let Some(ch) = self.camera_health.ok(now_us) {
                self.health_changes.push(("camera", ch));
            }
            self.stats.captured += 1;
            self.captured_times.push((c.meta.sequence, c.meta.capture_us));
            if c.meta.crop != self.last_crop || self.last_sequence.is_none() {
                self.events.push(format!("event crop eye={} seq={} crop={}", self.index, c.meta.sequence, c.meta.crop));
            }
            self.last_crop = c.meta.crop;
            self.last_sequence = Some(c.meta.sequence);
            if !self.rate.take(c.meta.capture_us, self.encoder_cfg.fps) {
                self.stats.surplus += 1;
                self.free.push(c.buffer);
                continue;
            }
            if self.encoder.in_flight() >= MAX_ENCODER_BACKLOG {
                self.stats.encoder_drops += 1;
                self.free.push(c.buffer);
                continue;
            }
            self.stats.capture_to_queued.record(now_us.saturating_sub(c.meta.capture_us));
            if self.queued_at.len() >= 8 {
                self.queued_at.pop_front();
            }
            self.queued_at.push_back((c.meta.sequence, now_us));
            let job = EncodeJob { buffer: c.buffer, meta: c.meta, force_idr: self.keyframes.take(now_us) };
            if let Err(rejected) = self.encoder.queue(job) {
                let (job, e) = *rejected;
                self.keyframes.refused(job.force_idr);
                if let Some(ch) = self.encoder_health.failed(&e, now_us) {
                    self.health_changes.push(("encoder", ch));
                }
                self.free.push(job.buffer);
            }
        }
        self.completed = done;
        self.refill();
    }

    /// The encoder's completion fd was readable: buffers go home, access units become packets.
    pub fn on_encoder_ready(&mut self, packets: &mut Vec<Arc<Packet>>, now_us: u64) {
        let mut done = std::mem::take(&mut self.encoded);
        self.encoder.drain(&mut done);
        for e in done.drain(..) {
            self.free.push(e.buffer);
            self.keyframes.came_out(matches!(&e.result, Ok(au) if au.keyframe));
            match e.result {
                Ok(au) => {
                    if let Some(ch) = self.encoder_health.ok(now_us) {
                        // Frames were lost inside the encoder: viewers need a fresh IDR.
                        self.keyframes.request();
                        self.health_changes.push(("encoder", ch));
                    }
                    self.stats.encoded += 1;
                    self.stats.bytes += au.annexb().len() as u64;
                    self.stats.encode_cpu_us += e.cpu_us;
                    self.stats.encode_cpu.record(e.cpu_us);
                    self.stats.capture_to_encoded.record(e.done_us.saturating_sub(e.meta.capture_us));
                    if let Some(i) = self.queued_at.iter().position(|&(s, _)| s == e.meta.sequence) {
                        let (_, queued) = self.queued_at.remove(i).expect("found");
                        self.stats.queued_to_encoded.record(e.done_us.saturating_sub(queued));
                    }
                    if au.keyframe {
                        self.stats.keyframes += 1;
                        if let Some(c) = h264::codec_string(au.annexb()) {
                            if self.codec.as_deref() != Some(&c) {
                                crate::info!("eye {}: stream codec {c}", self.index);
                            }
                            self.codec = Some(c);
                        }
                    }
                    packets.push(Arc::new(Packet::new(au, e.meta, e.done_us)));
                }
                Err(why) => {
                    self.stats.encoder_errors += 1;
                    if let Some(ch) = self.encoder_health.failed(&why, now_us) {
                        self.health_changes.push(("encoder", ch));
                    }
                }
            }
        }
        self.encoded = done;
        self.refill();
    }

    /// Housekeeping: notice a camera that stopped delivering or an encoder that stopped
    /// answering.
    pub fn tick(&mut self, now_us: u64) {
        self.camera.tick(now_us);
        self.camera_health.set_stall_after(camera_stall_us(self.camera.info().fps));
        if let Some(ch) = self.camera_health.tick(!self.paused, now_us) {
            self.health_changes.push(("camera", ch));
        }
        if let Some(ch) = self.encoder_health.tick(self.encoder.in_flight() > 0, now_us) {
            self.health_changes.push(("encoder", ch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;

    fn kept(captures: impl Iterator<Item = u64>, fps: u32) -> Vec<u64> {
        let mut r = RateLimit::default();
        captures.filter(|&t| r.take(t, fps)).collect()
    }

    #[test]
    fn a_camera_at_the_rate_loses_nothing_even_with_jitter() {
        let p = 33_333;
        let times: Vec<u64> = (0..300u64).map(|i| 1_000_000 + i * p + (i * 7919 % 13) * 500).collect();
        assert_eq!(kept(times.iter().copied(), 30).len(), 300);
        // A slower camera is never thinned either.
        assert_eq!(kept((0..50u64).map(|i| i * 2 * p + (i % 3) * 1000), 30).len(), 50);
    }

    #[test]
    fn a_faster_camera_is_thinned_to_the_rate() {
        // 60 frames/s for 10 s, asked for 15: about 150 kept, evenly.
        let k = kept((0..600u64).map(|i| 5_000_000 + i * 16_667), 15);
        assert!((149..=151).contains(&k.len()), "{}", k.len());
        assert!(k.windows(2).all(|w| (w[1] - w[0]).abs_diff(66_667) <= 16_667), "even spacing");
    }
}
