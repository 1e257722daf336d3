//! One eye's pipeline as the loop drives it: camera requests out, completed frames into the
//! encoder, access units out as shared packets, buffers back to the camera.

use std::sync::Arc;

use crate::camera::{Camera, Completed, Controls, Flip, FrameBuffer, FrameStatus, Rect, Request, clamp_crop};
use crate::encoder::{EncodeJob, Encoded, Encoder, EncoderConfig, h264};
use crate::eyes::geometry::{Geometry, Pose};
use crate::eyes::timeline::{Aim, Timeline};
use crate::histogram::Histogram;
use crate::stream::keyframe::KeyframeGate;
use crate::stream::wire::Packet;

/// Requests kept queued in the camera. One is enough for a camera that completes a frame per
/// tick and keeps eye movements within two frames of the command (a deeper queue would carry
/// stale crops); real cameras that need more say so through `Eye::new`.
pub const SYNTHETIC_REQUEST_DEPTH: usize = 1;
/// Frames allowed inside the encoder at once; past that a frame is dropped at the source
/// rather than queued, so a slow encoder costs frames, never latency.
pub const MAX_ENCODER_BACKLOG: usize = 2;
/// Forced IDRs at most this often per eye.
pub const MIN_FORCED_IDR_INTERVAL_US: u64 = 500_000;

#[derive(Debug, Default, Clone)]
pub struct EyeStats {
    pub captured: u64,
    pub camera_failures: u64,
    pub encoded: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub encoder_errors: u64,
    /// Frames dropped before the encoder because it was still busy.
    pub encoder_drops: u64,
    /// Frames not delivered to a viewer (slow viewers skipped to a keyframe), all viewers.
    pub viewer_drops: u64,
    pub encode_cpu_us: u64,
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
    /// The current encoder error, logged when it starts and when it clears.
    encoder_error: Option<String>,
    completed: Vec<Completed>,
    encoded: Vec<Encoded>,
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
            encoder_error: None,
            completed: Vec::new(),
            encoded: Vec::new(),
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
            if let Err((req, e)) = self.camera.queue_request(Request { buffer, controls: Controls { crop } }) {
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
            if let FrameStatus::Failed(why) = &c.status {
                self.stats.camera_failures += 1;
                crate::debug!("eye {}: frame {} failed: {why}", self.index, c.meta.sequence);
                self.free.push(c.buffer);
                continue;
            }
            self.stats.captured += 1;
            if c.meta.crop != self.last_crop || self.last_sequence.is_none() {
                self.events.push(format!("event crop eye={} seq={} crop={}", self.index, c.meta.sequence, c.meta.crop));
            }
            self.last_crop = c.meta.crop;
            self.last_sequence = Some(c.meta.sequence);
            if self.encoder.in_flight() >= MAX_ENCODER_BACKLOG {
                self.stats.encoder_drops += 1;
                self.free.push(c.buffer);
                continue;
            }
            let job = EncodeJob { buffer: c.buffer, meta: c.meta, force_idr: self.keyframes.take(now_us) };
            if let Err((job, e)) = self.encoder.queue(job) {
                self.note_encoder_error(Some(e));
                self.free.push(job.buffer);
            }
        }
        self.completed = done;
        self.refill();
    }

    /// The encoder's completion fd was readable: buffers go home, access units become packets.
    pub fn on_encoder_ready(&mut self, packets: &mut Vec<Arc<Packet>>) {
        let mut done = std::mem::take(&mut self.encoded);
        self.encoder.drain(&mut done);
        for e in done.drain(..) {
            self.free.push(e.buffer);
            match e.result {
                Ok(au) => {
                    self.note_encoder_error(None);
                    self.stats.encoded += 1;
                    self.stats.bytes += au.annexb().len() as u64;
                    self.stats.encode_cpu_us += e.cpu_us;
                    self.stats.capture_to_encoded.record(e.done_us.saturating_sub(e.meta.capture_us));
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
                    self.note_encoder_error(Some(why));
                }
            }
        }
        self.encoded = done;
        self.refill();
    }

    fn note_encoder_error(&mut self, err: Option<String>) {
        match (&self.encoder_error, &err) {
            (None, Some(e)) => crate::error!("eye {}: encoder error: {e}", self.index),
            (Some(_), None) => crate::info!("eye {}: encoder recovered", self.index),
            _ => {}
        }
        self.encoder_error = err;
    }
}
