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
    /// The camera's one request waiting for the buffer the encoder holds: since when (µs),
    /// and the sequence it would have captured then.
    refill_deferred: Option<(u64, u32)>,
    /// Camera ticks that found no request because of such a wait: the camera counts them as
    /// starved, `status` as frames dropped for a busy encoder, which is what they are.
    deferred_ticks: u64,
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
            camera_starved: self.camera.starved_frames().saturating_sub(self.deferred_ticks),
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
            refill_deferred: None,
            deferred_ticks: 0,
        }
    }

    /// Keep the camera's request queue at its depth, each request carrying the crop planned
    /// for the sequence it will capture. Nothing is queued while capture is paused.
    pub fn refill(&mut self, ctl: &mut Controller) {
        if let Some((_, sequence)) = self.refill_deferred.take()
            && !ctl.paused()
        {
            // (A camera reopened meanwhile starts its sequences again: nothing to count.)
            let missed = self.camera.next_sequence().saturating_sub(sequence) as u64;
            self.deferred_ticks += missed;
            self.stats.encoder_drops += missed;
        }
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
        // A camera with one request (the synthetic one) waits for the buffer the encoder is
        // reading: it comes back a few ms later, long before the next tick, and each eye then
        // draws into one warm buffer instead of alternating two (1.5 MB of resident memory
        // each at 960x1080). The crop is also chosen later, closer to the capture. A frame
        // captured while the encoder is busy would be dropped anyway; `tick` queues a spare
        // only if the encoder keeps its buffer for half the camera's stall time, so that a
        // stalled encoder is not reported as a stalled camera.
        if self.request_depth == 1 && self.encoder.in_flight() > 0 && self.camera.queued() == 0 {
            let sequence = self.camera.next_sequence();
            self.refill_deferred.get_or_insert((now_us, sequence));
        } else {
            self.refill(ctl);
        }
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
    pub fn tick(&mut self, ctl: &mut Controller, now_us: u64) {
        let paused = ctl.paused();
        let stall_us = camera_stall_us(self.camera.info().fps);
        if self.refill_deferred.is_some_and(|(t, _)| now_us.saturating_sub(t) >= stall_us / 2) {
            self.refill(ctl);
        }
        self.stats.tick(now_us);
        self.camera.tick(now_us);
        self.camera_health.set_stall_after(camera_stall_us(self.camera.info().fps));
        let ch = self.camera_health.tick(!paused, now_us);
        self.health("camera", ch);
        let ch = self.encoder_health.tick(self.encoder.in_flight() > 0, now_us);
        self.health("encoder", ch);
    }
}

#[cfg(test)]
mod tests {
    //! The pipeline against a camera and an encoder the test drives by hand.
    use std::cell::RefCell;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::rc::Rc;

    use super::*;
    use crate::camera::{CameraError, CameraInfo, Flip, FrameLayout, FrameMeta, Rect, Size};
    use crate::control::state_file::SavedState;
    use crate::controller::Setup;
    use crate::encoder::EncoderConfig;
    use crate::eyes::geometry::Geometry;
    use crate::sys::shm::SharedMemory;

    const OUT: Size = Size { w: 64, h: 64 };

    /// What the fake camera holds: requests, the next tick's sequence, ticks without a request.
    #[derive(Default)]
    struct Sensor {
        pending: VecDeque<Request>,
        done: Vec<Completed>,
        next_tick: u32,
        starved: u64,
        /// Pool index of the buffer each tick drew into.
        drawn: Vec<usize>,
    }

    impl Sensor {
        /// One capture tick at `t_us`: the oldest request gets the frame, or the tick is lost.
        fn tick(&mut self, t_us: u64) {
            let sequence = self.next_tick;
            self.next_tick += 1;
            match self.pending.pop_front() {
                Some(Request { buffer, controls }) => {
                    self.drawn.push(buffer.index);
                    let meta = FrameMeta { eye: 0, sequence, capture_us: t_us, crop: controls.crop };
                    self.done.push(Completed { buffer, meta, status: FrameStatus::Ok });
                }
                None => self.starved += 1,
            }
        }
    }

    struct FakeCamera {
        sensor: Rc<RefCell<Sensor>>,
        buffers: Vec<FrameBuffer>,
        info: CameraInfo,
        fd: OwnedFd,
    }

    impl Camera for FakeCamera {
        fn info(&self) -> &CameraInfo {
            &self.info
        }
        fn completion_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn take_buffers(&mut self) -> Vec<FrameBuffer> {
            std::mem::take(&mut self.buffers)
        }
        fn queue_request(&mut self, request: Request) -> Result<u32, Box<(Request, CameraError)>> {
            let mut s = self.sensor.borrow_mut();
            s.pending.push_back(request);
            Ok(s.next_tick + s.pending.len() as u32 - 1)
        }
        fn next_sequence(&self) -> u32 {
            let s = self.sensor.borrow();
            s.next_tick + s.pending.len() as u32
        }
        fn queued(&self) -> usize {
            self.sensor.borrow().pending.len()
        }
        fn drain_completed(&mut self, out: &mut Vec<Completed>) {
            out.append(&mut self.sensor.borrow_mut().done);
        }
        fn starved_frames(&self) -> u64 {
            self.sensor.borrow().starved
        }
        fn set_flip(&mut self, _: Flip) -> Result<(), CameraError> {
            Ok(())
        }
        fn set_fps(&mut self, _: u32) -> Result<(), CameraError> {
            Ok(())
        }
    }

    /// Jobs the encoder holds until the test finishes them.
    #[derive(Default)]
    struct Jobs {
        held: Vec<EncodeJob>,
        done: Vec<Encoded>,
    }

    impl Jobs {
        /// The encoder gives back every buffer it holds, failed (no bitstream needed here).
        fn finish(&mut self, t_us: u64) {
            for j in self.held.drain(..) {
                let e =
                    Encoded { buffer: j.buffer, meta: j.meta, result: Err("test".into()), cpu_us: 0, done_us: t_us };
                self.done.push(e);
            }
        }
    }

    struct FakeEncoder {
        jobs: Rc<RefCell<Jobs>>,
        fd: OwnedFd,
    }

    impl Encoder for FakeEncoder {
        fn completion_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn queue(&mut self, job: EncodeJob) -> Result<(), Box<(EncodeJob, String)>> {
            self.jobs.borrow_mut().held.push(job);
            Ok(())
        }
        fn drain(&mut self, out: &mut Vec<Encoded>) {
            out.append(&mut self.jobs.borrow_mut().done);
        }
        fn in_flight(&self) -> usize {
            self.jobs.borrow().held.len()
        }
        fn configure(&mut self, _: EncoderConfig) {}
        fn name(&self) -> &'static str {
            "fake"
        }
    }

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    /// A depth-1 pipeline over a pool of `pool` buffers, and its controller.
    fn rig(pool: usize) -> (Pipeline, Controller, Rc<RefCell<Sensor>>, Rc<RefCell<Jobs>>) {
        let sensor = Rc::new(RefCell::new(Sensor::default()));
        let jobs = Rc::new(RefCell::new(Jobs::default()));
        let layout = FrameLayout::i420(OUT);
        let buffers = (0..pool)
            .map(|index| FrameBuffer { index, memory: SharedMemory::memfd("test", layout.len()).unwrap(), layout })
            .collect();
        let sensor_rect = Rect::new(0, 0, 128, 128);
        let info = CameraInfo {
            id: "fake".into(),
            sensor: sensor_rect,
            output: OUT,
            min_crop: Size { w: 16, h: 16 },
            fps: 30,
            crop_supported: true,
            sensor_mode: None,
        };
        let camera = FakeCamera { sensor: sensor.clone(), buffers, info, fd: devnull() };
        let encoder = FakeEncoder { jobs: jobs.clone(), fd: devnull() };
        let enc = EncoderConfig { width: OUT.w, height: OUT.h, fps: 30, bitrate_bps: 1_000_000, gop_frames: 60 };
        let geometry = Geometry::new(sensor_rect, OUT, 4.0, Size { w: 16, h: 16 });
        let setup = Setup {
            eyes: vec![(geometry, enc), (geometry, enc)],
            fps: 30,
            gop_seconds: 2.0,
            state_path: "/tmp/pieyes pipeline test/state.conf".into(),
            token: None,
            token_scope: crate::access::TokenScope::Steer,
            shared_clock: true,
            sync: "test".into(),
            https: false,
        };
        let mut ctl = Controller::new(setup, &SavedState::defaults(30, 1_000_000));
        let mut p = Pipeline::new(0, Box::new(camera), Box::new(encoder), SYNTHETIC_REQUEST_DEPTH, 0);
        p.refill(&mut ctl);
        (p, ctl, sensor, jobs)
    }

    const FRAME_US: u64 = 33_333;

    #[test]
    fn a_one_request_camera_waits_for_the_buffer_the_encoder_reads_and_draws_into_it_again() {
        let (mut p, mut ctl, sensor, jobs) = rig(4);
        for n in 0..10u64 {
            let t = n * FRAME_US;
            sensor.borrow_mut().tick(t);
            p.on_camera_ready(&mut ctl, t + 1_000, &mut |_| 0);
            assert_eq!(p.camera.queued(), 0, "frame {n}: no second buffer is queued while the encoder reads one");
            p.tick(&mut ctl, t + 3_000);
            jobs.borrow_mut().finish(t + 5_000);
            p.on_encoder_ready(&mut ctl, &mut Vec::new(), t + 5_000);
            assert_eq!(p.camera.queued(), 1, "frame {n}: the buffer is queued again once back");
        }
        let s = sensor.borrow();
        assert!(s.drawn.iter().all(|&i| i == s.drawn[0]), "one buffer drawn into: {:?}", s.drawn);
        assert_eq!((s.drawn.len(), s.starved), (10, 0));
        assert_eq!(p.stats.encoder_drops, 0);
    }

    #[test]
    fn an_encoder_that_keeps_its_buffer_leaves_the_camera_a_spare_and_the_lost_ticks_are_its_drops() {
        let (mut p, mut ctl, sensor, jobs) = rig(4);
        sensor.borrow_mut().tick(0);
        p.on_camera_ready(&mut ctl, 1_000, &mut |_| 0);
        // The encoder holds frame 0. Ticks pass with no request, the housekeeping timer runs
        // every 100 ms; before half the camera's stall time (1 s) nothing is queued.
        let mut t = 0;
        while t < 400_000 {
            t += FRAME_US;
            sensor.borrow_mut().tick(t);
            if t % 100_000 < FRAME_US {
                p.tick(&mut ctl, t);
            }
        }
        assert_eq!(p.camera.queued(), 0);
        p.tick(&mut ctl, 501_000);
        assert_eq!(p.camera.queued(), 1, "a spare is queued for a camera kept waiting half its stall time");
        let starved = sensor.borrow().starved;
        assert!(starved >= 12, "{starved}");
        assert_eq!(p.stats.encoder_drops, starved, "the ticks lost waiting are the busy encoder's drops");
        assert_eq!(p.measured().camera_starved, 0, "not the camera's");
        // The spare's frame finds the encoder still busy: dropped, and the wait starts again.
        sensor.borrow_mut().tick(533_000);
        p.on_camera_ready(&mut ctl, 534_000, &mut |_| 0);
        assert_eq!(p.stats.encoder_drops, starved + 1);
        assert_eq!(p.camera.queued(), 0);
        jobs.borrow_mut().finish(540_000);
        p.on_encoder_ready(&mut ctl, &mut Vec::new(), 540_000);
        assert_eq!(p.camera.queued(), 1);
        let s = sensor.borrow();
        assert_eq!(s.drawn.len(), 2, "{:?}", s.drawn);
        assert_ne!(s.drawn[0], s.drawn[1], "the spare was a second buffer");
    }
}
