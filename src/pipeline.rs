//! One eye's pipeline as the loop drives it: camera requests out (each with the crop the
//! controller plans for its sequence), completed frames into the encoder, access units out as
//! shared packets, buffers back to the camera. What to do with each frame (its crop, whether
//! it is encoded, whether it is an IDR) is the controller's call; this moves the buffers and
//! measures. Frame taps see each frame before it moves on (`on_camera_ready`'s `tap`); a
//! buffer a tap holds waits (parked) until it is released, and taps hold only buffers the
//! camera and the encoder can spare.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::calibrate::grab::EyeGrab;
use crate::camera::{Camera, Completed, Controls, FrameBuffer, FrameStatus, Request};
use crate::controller::Controller;
use crate::controller::report::EyeMeasured;
use crate::encoder::{EncodeJob, Encoded, Encoder, h264};
use crate::health::{Change, Health};
use crate::stats::EyeStats;
use crate::stream::wire::Packet;
use crate::tap::frames::Offer;

/// Requests kept queued in the camera. One is enough for a camera that completes a frame per
/// tick and keeps eye movements within two frames of the command (a deeper queue would carry
/// stale crops); real cameras that need more say so through `Pipeline::new`.
pub const SYNTHETIC_REQUEST_DEPTH: usize = 1;
/// Frames allowed inside the encoder at once. One: a frame that finds the encoder busy is
/// dropped at the source rather than queued behind another, so a slow encoder costs frames,
/// never latency — and each eye needs only two frame buffers (one capturing, one encoding).
pub const MAX_ENCODER_BACKLOG: usize = 1;
/// An encoder holding frames this long without answering is reported as stalled.
pub const ENCODER_STALL_US: u64 = 2_000_000;

/// A camera that has delivered nothing for five frame times (at least a second) is stalled.
pub fn camera_stall_us(fps: u32) -> u64 {
    (5_000_000 / fps.max(1) as u64).max(1_000_000)
}

pub struct Pipeline {
    pub index: u8,
    pub camera: Box<dyn Camera>,
    pub encoder: Box<dyn Encoder>,
    request_depth: usize,
    free: Vec<FrameBuffer>,
    /// Buffers back from the encoder (or never encoded) that a tap still holds.
    parked: Vec<FrameBuffer>,
    /// Taps holding each buffer, by pool index.
    tap_holds: Vec<u32>,
    /// Buffers in the camera's pool.
    pool: usize,
    pub stats: EyeStats,
    /// RFC 6381 codec string from the latest SPS.
    pub codec: Option<String>,
    /// Whether the camera and the encoder are delivering; changes go to `health_changes`.
    pub camera_health: Health,
    pub encoder_health: Health,
    /// Health changes for the daemon to log, announce to `watch` and to this eye's viewers.
    pub health_changes: Vec<(&'static str, Change)>,
    completed: Vec<Completed>,
    encoded: Vec<Encoded>,
    /// When each frame inside the encoder was handed to it (sequence, µs).
    queued_at: VecDeque<(u32, u64)>,
    /// Luma copies for `calibrate`, taken from good frames while one waits.
    pub grab: EyeGrab,
}

impl Pipeline {
    /// What `status` and `/metrics` show of this eye.
    pub fn measured(&self) -> EyeMeasured<'_> {
        EyeMeasured {
            info: self.camera.info(),
            encoder: self.encoder.name(),
            encoder_cpu: self.encoder.cpu(),
            encoder_threads: self.encoder.threads(),
            codec: self.codec.as_deref(),
            stats: &self.stats,
            camera_state: self.camera_health.describe(),
            encoder_state: self.encoder_health.describe(),
            camera_starved: self.camera.starved_frames(),
        }
    }

    pub fn new(
        index: u8,
        mut camera: Box<dyn Camera>,
        encoder: Box<dyn Encoder>,
        request_depth: usize,
        now_us: u64,
    ) -> Self {
        let free = camera.take_buffers();
        Pipeline {
            index,
            camera,
            encoder,
            request_depth,
            pool: free.len(),
            free,
            parked: Vec::new(),
            tap_holds: Vec::new(),
            stats: EyeStats::default(),
            codec: None,
            camera_health: Health::new(camera_stall_us(30), now_us),
            encoder_health: Health::new(ENCODER_STALL_US, now_us),
            health_changes: Vec::new(),
            completed: Vec::new(),
            encoded: Vec::new(),
            queued_at: VecDeque::with_capacity(8),
            grab: EyeGrab::default(),
        }
    }

    /// Keep the camera's request queue at its depth, each request carrying the crop planned
    /// for the sequence it will capture. Nothing is queued while capture is paused.
    pub fn refill(&mut self, ctl: &mut Controller) {
        while !ctl.paused() && self.camera.queued() < self.request_depth {
            let Some(buffer) = self.free.pop() else {
                return;
            };
            let crop = ctl.crop_for(self.index, self.camera.next_sequence());
            if let Err(rejected) = self.camera.queue_request(Request { buffer, controls: Controls { crop } }) {
                let (req, e) = *rejected;
                crate::warn!("eye {}: cannot queue a request: {e}", self.index);
                self.give_back(req.buffer);
                return;
            }
        }
    }

    fn health(&mut self, what: &'static str, change: Option<Change>) {
        if let Some(ch) = change {
            self.health_changes.push((what, ch));
        }
    }

    /// A buffer done with by the camera or the encoder: free again, unless a tap holds it.
    fn give_back(&mut self, b: FrameBuffer) {
        if self.tap_holds.get(b.index).is_some_and(|&n| n > 0) {
            self.parked.push(b);
        } else {
            self.free.push(b);
        }
    }

    /// Whether a tap may hold one more buffer: the camera's queue and the encoder still have
    /// theirs (a buffer beyond the pool's spares is never taken: taps skip frames instead).
    fn tap_may_hold(&self) -> bool {
        let held = self.tap_holds.iter().filter(|&&n| n > 0).count();
        held + self.request_depth + MAX_ENCODER_BACKLOG < self.pool
    }

    /// A tap released buffer `index` (or went away holding it).
    pub fn tap_released(&mut self, ctl: &mut Controller, index: usize) {
        let Some(n) = self.tap_holds.get_mut(index) else { return };
        *n = n.saturating_sub(1);
        if *n == 0
            && let Some(i) = self.parked.iter().position(|b| b.index == index)
        {
            let b = self.parked.swap_remove(i);
            self.free.push(b);
            self.refill(ctl);
        }
    }

    /// The camera's completion fd was readable. `tap` sees each frame first and says how many
    /// taps now hold its buffer.
    pub fn on_camera_ready(&mut self, ctl: &mut Controller, now_us: u64, tap: &mut dyn FnMut(&Offer<'_>) -> u32) {
        let mut done = std::mem::take(&mut self.completed);
        self.camera.drain_completed(&mut done);
        for c in done.drain(..) {
            match &c.status {
                FrameStatus::Skipped => {
                    self.stats.camera_skipped += 1;
                    self.give_back(c.buffer);
                    continue;
                }
                FrameStatus::Failed(why) => {
                    self.stats.camera_failures += 1;
                    let ch = self.camera_health.failed(why, now_us);
                    self.health("camera", ch);
                    self.give_back(c.buffer);
                    continue;
                }
                FrameStatus::Ok => {}
            }
            let ch = self.camera_health.ok(now_us);
            self.health("camera", ch);
            self.stats.captured += 1;
            self.grab.offer(&c.meta, &c.buffer);
            if !ctl.frame_captured(&c.meta) {
                self.stats.surplus += 1;
                self.give_back(c.buffer);
                continue;
            }
            let holds = tap(&Offer { buffer: &c.buffer, meta: &c.meta, spare: self.tap_may_hold() });
            if holds > 0 {
                if self.tap_holds.len() <= c.buffer.index {
                    self.tap_holds.resize(c.buffer.index + 1, 0);
                }
                self.tap_holds[c.buffer.index] += holds;
            }
            if self.encoder.in_flight() >= MAX_ENCODER_BACKLOG {
                self.stats.encoder_drops += 1;
                self.give_back(c.buffer);
                continue;
            }
            self.stats.capture_to_queued.record(now_us.saturating_sub(c.meta.capture_us));
            if self.queued_at.len() >= 8 {
                self.queued_at.pop_front();
            }
            self.queued_at.push_back((c.meta.sequence, now_us));
            let job = EncodeJob { buffer: c.buffer, meta: c.meta, force_idr: ctl.take_keyframe(self.index, now_us) };
            if let Err(rejected) = self.encoder.queue(job) {
                let (job, e) = *rejected;
                ctl.keyframe_refused(self.index, job.force_idr);
                let ch = self.encoder_health.failed(&e, now_us);
                self.health("encoder", ch);
                self.give_back(job.buffer);
            }
        }
        self.completed = done;
        self.refill(ctl);
    }

    /// The encoder's completion fd was readable: buffers go home, access units become packets.
    pub fn on_encoder_ready(&mut self, ctl: &mut Controller, packets: &mut Vec<Arc<Packet>>, now_us: u64) {
        let mut done = std::mem::take(&mut self.encoded);
        self.encoder.drain(&mut done);
        for e in done.drain(..) {
            self.give_back(e.buffer);
            ctl.keyframe_came_out(self.index, matches!(&e.result, Ok(au) if au.keyframe));
            match e.result {
                Ok(au) => {
                    if let Some(ch) = self.encoder_health.ok(now_us) {
                        // Frames were lost inside the encoder: viewers need a fresh IDR.
                        ctl.request_keyframe(self.index);
                        self.health_changes.push(("encoder", ch));
                    }
                    let s = &mut self.stats;
                    s.encoded += 1;
                    s.bytes += au.annexb().len() as u64;
                    s.encode_cpu_us += e.cpu_us;
                    s.encode_cpu.record(e.cpu_us);
                    s.capture_to_encoded.record(e.done_us.saturating_sub(e.meta.capture_us));
                    if let Some(i) = self.queued_at.iter().position(|&(seq, _)| seq == e.meta.sequence) {
                        let (_, queued) = self.queued_at.remove(i).expect("found");
                        s.queued_to_encoded.record(e.done_us.saturating_sub(queued));
                    }
                    if au.keyframe {
                        s.keyframes += 1;
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
                    let ch = self.encoder_health.failed(&why, now_us);
                    self.health("encoder", ch);
                }
            }
        }
        self.encoded = done;
        self.refill(ctl);
    }

    /// Housekeeping: notice a camera that stopped delivering or an encoder that stopped
    /// answering.
    pub fn tick(&mut self, paused: bool, now_us: u64) {
        self.stats.tick(now_us);
        self.camera.tick(now_us);
        self.camera_health.set_stall_after(camera_stall_us(self.camera.info().fps));
        let ch = self.camera_health.tick(!paused, now_us);
        self.health("camera", ch);
        let ch = self.encoder_health.tick(self.encoder.in_flight() > 0, now_us);
        self.health("encoder", ch);
    }
}
