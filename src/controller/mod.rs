//! The controller: the commanded state of the eyes, sans-IO. It owns what the robot asked for —
//! each eye's movement plan (`eyes::timeline`), calibration offset, flip and encoder settings,
//! the vergence, the frame rate, pause, the steering token — and the per-frame policies that
//! follow from it: which crop each requested frame gets, which captured frames go to the
//! encoder (thinning), when an IDR is forced, how the two eyes' frames pair.
//!
//! `execute(command, now, plant)` returns a typed `Reply` (or, for `save`, a ticket whose reply
//! comes when the file is written) and leaves `Action`s for the daemon to carry out and
//! `Event`s for `watch` connections. `status`, `/metrics` and the video hello are read from
//! here (`report`), so they cannot disagree with what the replies said.

pub mod report;
pub mod thinning;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::access::{TokenBackoff, TokenScope, Verdict};
use crate::calibrate::grab::Measurement;
use crate::calibrate::{MIN_CONFIDENCE, Proposal, propose};
use crate::camera::pairing::Pairing;
use crate::camera::{Flip, FrameMeta, Rect, clamp_crop};
use crate::config::gop_frames;
use crate::control::command::{CmdError, Command, Target, help_text};
use crate::control::event::Event;
use crate::control::reply::{EyeMove, EyeState, Reply, StateView};
use crate::control::state_file::{self, SavedEye, SavedState};
use crate::encoder::EncoderConfig;
use crate::eyes::geometry::{Geometry, Pose};
use crate::eyes::timeline::{Aim, Segment, Timeline, seq_at_or_after};
use crate::stream::keyframe::KeyframeGate;
use thinning::FrameThinning;

/// Forced IDRs at most this often per eye.
pub const MIN_FORCED_IDR_INTERVAL_US: u64 = 500_000;

/// What the controller may ask of the running pipeline. The daemon implements it over its
/// cameras and connections; tests implement it with plain numbers.
pub trait Plant {
    /// The first sequence eye `eye` has not requested yet: a change made now lands there.
    fn next_sequence(&self, eye: u8) -> u32;
    /// What the pipeline measured, for `status` and `/metrics`.
    fn measured(&self) -> report::Measured<'_>;
}

/// Something the daemon must do for a command: the controller decides, the daemon acts.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    ConfigureEncoder {
        eye: u8,
        config: EncoderConfig,
    },
    SetFlip {
        eye: u8,
        flip: Flip,
    },
    SetFps(u32),
    /// Capture stops (`true`) or starts again: on resume the daemon refills the request queues.
    Capture {
        paused: bool,
    },
    /// Write the state file off the loop, then call `save_finished(ticket, …)`.
    Save(SaveJob),
    /// Grab a stereo pair and estimate the eyes' alignment off the loop, then call
    /// `calibration_finished(ticket, …)`.
    Calibrate {
        ticket: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct SaveJob {
    pub ticket: u64,
    pub path: PathBuf,
    pub contents: String,
}

/// The answer to a command: now, or (for `save`) once its ticket is finished.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Reply(Reply),
    Pending(u64),
}

/// What the controller starts from, besides the saved state.
/// An eye as opened: its crop geometry and its encoder's configuration.
pub type EyeSetup = (Geometry, EncoderConfig);

#[derive(Clone, Debug)]
pub struct Setup {
    pub eyes: Vec<EyeSetup>,
    pub fps: u32,
    pub gop_seconds: f64,
    pub state_path: PathBuf,
    pub token: Option<String>,
    pub token_scope: TokenScope,
    /// Both eyes number their frames on one clock (synthetic; hardware-synchronised sensors),
    /// so a command for both lands on one capture tick in both.
    pub shared_clock: bool,
    /// How the cameras are synchronised, as `status` shows it.
    pub sync: String,
    /// The port serves https too (`--tls auto|only`): the page on plain http offers the link.
    pub https: bool,
}

impl Setup {
    /// What the daemon's flags and the cameras it opened tell the controller.
    pub fn new(cfg: &crate::config::Config, eyes: Vec<EyeSetup>, fps: u32, shared_clock: bool, sync: String) -> Setup {
        Setup {
            eyes,
            fps,
            gop_seconds: cfg.gop_seconds,
            state_path: cfg.state.clone(),
            token: cfg.token.clone(),
            token_scope: cfg.token_scope,
            shared_clock,
            sync,
            https: cfg.tls != crate::transport::TlsMode::Off,
        }
    }
}

struct EyeControl {
    geometry: Geometry,
    timeline: Timeline,
    offset: (i32, i32),
    flip: Flip,
    encoder: EncoderConfig,
    thinning: FrameThinning,
    keyframes: KeyframeGate,
    /// The last sequence of the newest move, until a frame at or after it is captured.
    arrival: Option<u32>,
    /// The newest captured frame: its sequence and applied crop.
    last_sequence: Option<u32>,
    last_crop: Rect,
}

impl EyeControl {
    fn crop_of(&self, eye: u8, aim: Aim) -> (Rect, bool) {
        match aim {
            Aim::Pose(p) => self.geometry.crop_at_edge(eye, p, self.offset, self.flip),
            Aim::Raw(r) => (clamp_crop(r, self.geometry.sensor, self.geometry.min_crop), false),
        }
    }

    fn target_pose(&self) -> Pose {
        self.timeline.target_pose(&self.geometry, self.flip)
    }
}

/// What `calibrate apply` did, for its reply once the state file is written.
#[derive(Clone, Copy, Debug)]
struct AppliedCalibration {
    seq: u32,
    crop: Rect,
    offset: (i32, i32),
    clamped: bool,
}

pub struct Controller {
    eyes: Vec<EyeControl>,
    fps: u32,
    /// The commanded vergence: one value for the pair, whatever a raw crop did to one eye.
    verge: f64,
    paused: bool,
    token: Option<String>,
    token_scope: TokenScope,
    /// Wrong token guesses, per address.
    backoff: TokenBackoff,
    gop_seconds: f64,
    state_path: PathBuf,
    shared_clock: bool,
    sync: String,
    https: bool,
    pairing: Pairing,
    events: Vec<Event>,
    actions: Vec<Action>,
    next_ticket: u64,
    /// The latest `calibrate` estimate, what `calibrate apply` sets.
    calibration: Option<Proposal>,
    /// Save tickets of `calibrate apply`, with what its reply says once the file is written.
    calibration_saves: Vec<(u64, AppliedCalibration)>,
}

impl Controller {
    /// Start from `saved` (already merged with the command line). The flips it restores are
    /// left as actions for the daemon.
    pub fn new(setup: Setup, saved: &SavedState) -> Controller {
        let verge = saved.vergence.clamp(-1.0, 1.0);
        let mut actions = Vec::new();
        let eyes = setup
            .eyes
            .iter()
            .enumerate()
            .map(|(i, &(geometry, mut encoder))| {
                let s = saved.eyes[i.min(1)];
                let pose = geometry.clamp(Pose { verge, ..s.pose });
                if s.flip != Flip::None {
                    actions.push(Action::SetFlip { eye: i as u8, flip: s.flip });
                }
                encoder.bitrate_bps = s.bitrate;
                encoder.fps = setup.fps;
                encoder.gop_frames = gop_frames(setup.gop_seconds, setup.fps);
                let mut e = EyeControl {
                    geometry,
                    timeline: Timeline::new(Aim::Pose(pose)),
                    offset: s.offset,
                    flip: s.flip,
                    encoder,
                    thinning: FrameThinning::default(),
                    keyframes: KeyframeGate::new(MIN_FORCED_IDR_INTERVAL_US),
                    arrival: None,
                    last_sequence: None,
                    last_crop: Rect::default(),
                };
                e.last_crop = e.crop_of(i as u8, Aim::Pose(pose)).0;
                e
            })
            .collect();
        Controller {
            eyes,
            fps: setup.fps,
            verge,
            paused: false,
            token: setup.token,
            token_scope: setup.token_scope,
            backoff: TokenBackoff::default(),
            gop_seconds: setup.gop_seconds,
            state_path: setup.state_path,
            shared_clock: setup.shared_clock,
            sync: setup.sync,
            https: setup.https,
            pairing: Pairing::new(1_000_000 / setup.fps.max(1) as u64),
            events: Vec::new(),
            actions,
            next_ticket: 1,
            calibration: None,
            calibration_saves: Vec::new(),
        }
    }

    // ---- read by the pipeline, the sessions and the reports ----

    pub fn eye_count(&self) -> usize {
        self.eyes.len()
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    pub fn encoder_config(&self, eye: u8) -> EncoderConfig {
        self.eyes[eye as usize].encoder
    }

    pub fn state_path(&self) -> &std::path::Path {
        &self.state_path
    }

    /// The newest captured frame of `eye`: sequence (None before the first) and applied crop.
    pub fn last_frame(&self, eye: u8) -> (Option<u32>, Rect) {
        let e = &self.eyes[eye as usize];
        (e.last_sequence, e.last_crop)
    }

    pub fn pairing(&self) -> &Pairing {
        &self.pairing
    }

    pub fn sync(&self) -> &str {
        &self.sync
    }

    /// The commanded state, as `watch` and `event state` carry it.
    pub fn state_view(&self) -> StateView {
        StateView {
            paused: self.paused,
            token_required: self.token.is_some(),
            fps: self.fps,
            verge: self.verge,
            eyes: self
                .eyes
                .iter()
                .enumerate()
                .map(|(i, e)| EyeState {
                    eye: i as u8,
                    pose: e.target_pose(),
                    offset: e.offset,
                    flip: e.flip,
                    bitrate: e.encoder.bitrate_bps,
                    crop: e.crop_of(i as u8, e.timeline.target()).0,
                    raw_crop: matches!(e.timeline.target(), Aim::Raw(_)),
                    max_zoom: e.geometry.zoom_limit(),
                })
                .collect(),
        }
    }

    /// What `save` writes: the commanded view (not a glide's midpoint), calibration, settings.
    pub fn saved_state(&self) -> SavedState {
        let bitrate = self.eyes.first().map_or(0, |e| e.encoder.bitrate_bps);
        let mut s = SavedState::defaults(self.fps, bitrate);
        for (i, e) in self.eyes.iter().enumerate().take(2) {
            let pose = Pose { verge: 0.0, ..e.target_pose() }; // vergence is the pair's, below
            s.eyes[i] = SavedEye { offset: e.offset, pose, flip: e.flip, bitrate: e.encoder.bitrate_bps };
        }
        s.vergence = self.verge;
        s
    }

    // ---- per frame, called by the pipeline ----

    /// The crop for frame `seq` of `eye`, as the camera request for it is queued. Sequences
    /// are asked in increasing order.
    pub fn crop_for(&mut self, eye: u8, seq: u32) -> Rect {
        let e = &mut self.eyes[eye as usize];
        let aim = e.timeline.at(seq);
        e.crop_of(eye, aim).0
    }

    /// A good frame was captured. Emits `crop` and `arrived` events, pairs the eyes, and says
    /// whether the frame goes to the encoder (false: beyond the frame rate).
    pub fn frame_captured(&mut self, meta: &FrameMeta) -> bool {
        let eye = meta.eye;
        let two_eyes = self.eyes.len() == 2;
        let e = &mut self.eyes[eye as usize];
        if meta.crop != e.last_crop || e.last_sequence.is_none() {
            self.events.push(Event::Crop { eye, seq: meta.sequence, crop: meta.crop });
        }
        e.last_crop = meta.crop;
        e.last_sequence = Some(meta.sequence);
        if let Some(until) = e.arrival {
            if seq_at_or_after(meta.sequence, until) {
                e.arrival = None;
                self.events.push(Event::Arrived { eye, seq: meta.sequence, crop: meta.crop });
            }
        }
        let take = e.thinning.take(meta.capture_us, self.fps);
        if two_eyes {
            self.pairing.push(eye, meta.sequence, meta.capture_us);
        }
        take
    }

    /// Someone needs an IDR from `eye` soon (a viewer joined or fell behind, the encoder
    /// recovered); the gate spaces them out.
    pub fn request_keyframe(&mut self, eye: u8) {
        self.eyes[eye as usize].keyframes.request();
    }

    /// For the frame about to be encoded: should it be an IDR?
    pub fn take_keyframe(&mut self, eye: u8, now_us: u64) -> bool {
        self.eyes[eye as usize].keyframes.take(now_us)
    }

    /// The encoder refused the frame (`forced`: it carried the forced IDR, asked for again).
    pub fn keyframe_refused(&mut self, eye: u8, forced: bool) {
        self.eyes[eye as usize].keyframes.refused(forced);
    }

    /// A frame came back from the encoder, in order; a keyframe serves a pending request.
    pub fn keyframe_came_out(&mut self, eye: u8, keyframe: bool) {
        self.eyes[eye as usize].keyframes.came_out(keyframe);
    }

    pub fn keyframes_forced(&self, eye: u8) -> u64 {
        self.eyes[eye as usize].keyframes.forced
    }

    // ---- commands ----

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Events since the last call, in order. Other parts of the daemon (viewers joining,
    /// health) add theirs with `push_event`, so `watch` sees one ordered stream.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn push_event(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Carry out one command from a connection at `from` (None: the Unix socket). Rights
    /// (steering) are the session's business; `auth` is answered here because the token is
    /// commanded state.
    pub fn execute(&mut self, cmd: Command, from: Option<IpAddr>, now_us: u64, plant: &dyn Plant) -> Outcome {
        match self.run(cmd, from, now_us, plant) {
            Ok(o) => o,
            Err(e) => Outcome::Reply(Reply::Err(e)),
        }
    }

    /// Check a token from `from`, under the per-address back-off.
    pub fn authenticate(&mut self, given: &str, from: Option<IpAddr>, now_us: u64) -> Result<(), CmdError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if let Verdict::Wait(us) = self.backoff.before_guess(from, now_us) {
            let wait = us.div_ceil(1000);
            return Err(CmdError::new("forbidden", format!("too many wrong tokens from your address: wait {wait} ms")));
        }
        let right = crate::limits::same_secret(token.as_bytes(), given.as_bytes());
        if let Some(line) = self.backoff.after_guess(from, right, now_us) {
            crate::warn!("{line}");
        }
        if right { Ok(()) } else { Err(CmdError::new("forbidden", "wrong token")) }
    }

    /// Whether a request may see the cameras: always, unless `--token-scope view`; then only
    /// with the token (`given`; a missing token is not a guess).
    pub fn may_view(&mut self, given: Option<&str>, from: Option<IpAddr>, now_us: u64) -> bool {
        if self.token.is_none() || self.token_scope == TokenScope::Steer {
            return true;
        }
        given.is_some_and(|t| self.authenticate(t, from, now_us).is_ok())
    }

    fn run(&mut self, cmd: Command, from: Option<IpAddr>, now_us: u64, plant: &dyn Plant) -> Result<Outcome, CmdError> {
        let reply = match cmd {
            Command::Status => Reply::Status(report::status_json(self, &plant.measured(), now_us)),
            Command::Help => Reply::Help(help_text()),
            Command::Clock => Reply::Clock(now_us),
            Command::Watch => Reply::Watching(self.state_view()),
            Command::Auth(token) => {
                self.authenticate(&token, from, now_us)?;
                Reply::Steering { token_required: self.token.is_some() }
            }
            Command::Keyframe => {
                self.eyes.iter_mut().for_each(|e| e.keyframes.request());
                Reply::Keyframe
            }
            Command::Look { target, x, y, over_ms } => {
                self.plan(self.check_eyes(target)?, over_ms, plant, |p| Pose { x, y, ..p })
            }
            Command::Move { target, dx, dy, over_ms } => {
                self.plan(self.check_eyes(target)?, over_ms, plant, |p| Pose { x: p.x + dx, y: p.y + dy, ..p })
            }
            Command::Zoom { target, zoom, over_ms } => {
                self.plan(self.check_eyes(target)?, over_ms, plant, |p| Pose { zoom, ..p })
            }
            Command::Verge { d, over_ms } => {
                self.plan(self.check_eyes(Target::Both)?, over_ms, plant, |p| Pose { verge: d, ..p })
            }
            Command::Offset { eye, dx, dy } => {
                self.check_eyes(Target::Eye(eye))?;
                let seq = plant.next_sequence(eye);
                let e = &mut self.eyes[eye as usize];
                e.offset = (dx, dy);
                e.arrival = Some(seq);
                Reply::Offset { seq, eye, crop: e.crop_of(eye, e.timeline.target()).0, offset: (dx, dy) }
            }
            Command::Crop { target, rect } => {
                let eyes = self.check_eyes(target)?;
                let common = self.common_sequence(eyes, plant);
                let seq = self.start_sequence(eyes[0], common, plant);
                let mut moves = Vec::new();
                for &i in eyes {
                    let s = self.start_sequence(i, common, plant);
                    let e = &mut self.eyes[i as usize];
                    let (applied, _) = e.crop_of(i, Aim::Raw(rect));
                    e.timeline.set_from(s, Segment::Hold(Aim::Raw(applied)));
                    e.arrival = Some(s);
                    moves.push(EyeMove {
                        eye: i,
                        own_seq: (s != seq).then_some(s),
                        crop: applied,
                        view: None,
                        clamped: false,
                    });
                }
                Reply::Cropped { seq, eyes: moves }
            }
            Command::Flip { target, flip } => {
                for &i in self.check_eyes(target)? {
                    self.eyes[i as usize].flip = flip;
                    self.eyes[i as usize].keyframes.request();
                    self.actions.push(Action::SetFlip { eye: i, flip });
                    self.events.push(Event::Flip { eye: i, flip });
                }
                Reply::Flipped(flip)
            }
            Command::Pause => {
                self.set_paused(true);
                Reply::Paused
            }
            Command::Resume => {
                self.set_paused(false);
                Reply::Resumed
            }
            Command::Fps(fps) => {
                self.fps = fps;
                self.pairing.set_period(1_000_000 / fps as u64);
                self.actions.push(Action::SetFps(fps));
                for i in 0..self.eyes.len() {
                    let e = &mut self.eyes[i];
                    e.encoder.fps = fps;
                    e.encoder.gop_frames = gop_frames(self.gop_seconds, fps);
                    self.actions.push(Action::ConfigureEncoder { eye: i as u8, config: e.encoder });
                }
                Reply::Fps(fps)
            }
            Command::Bitrate { target, bps } => {
                for &i in self.check_eyes(target)? {
                    let e = &mut self.eyes[i as usize];
                    e.encoder.bitrate_bps = bps;
                    self.actions.push(Action::ConfigureEncoder { eye: i, config: e.encoder });
                }
                Reply::Bitrate(bps)
            }
            Command::Save => {
                let ticket = self.save();
                return Ok(Outcome::Pending(ticket));
            }
            Command::Calibrate { apply: false } => {
                self.check_calibration()?;
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.actions.push(Action::Calibrate { ticket });
                return Ok(Outcome::Pending(ticket));
            }
            Command::Calibrate { apply: true } => {
                let Some(p) = self.calibration else {
                    return Err(CmdError::new("no-estimate", "nothing to apply: run calibrate first"));
                };
                if p.confidence < MIN_CONFIDENCE {
                    return Err(CmdError::new(
                        "low-confidence",
                        format!("the last estimate's confidence {:.2} is below {MIN_CONFIDENCE}", p.confidence),
                    ));
                }
                let seq = plant.next_sequence(1);
                let e = &mut self.eyes[1];
                e.offset = p.offset;
                e.arrival = Some(seq);
                let (crop, clamped) = e.crop_of(1, e.timeline.target());
                self.events.push(Event::State(self.state_view()));
                let ticket = self.save();
                self.calibration_saves.push((ticket, AppliedCalibration { seq, crop, offset: p.offset, clamped }));
                return Ok(Outcome::Pending(ticket));
            }
        };
        if reply.is_ok() && changes_state(&reply) {
            self.events.push(Event::State(self.state_view()));
        }
        Ok(Outcome::Reply(reply))
    }

    /// Queue a state-file write; its ticket.
    fn save(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let contents = state_file::format(&self.saved_state());
        self.actions.push(Action::Save(SaveJob { ticket, path: self.state_path.clone(), contents }));
        ticket
    }

    /// Whether a stereo pair can say anything now: two eyes, capturing, looking the same way.
    fn check_calibration(&self) -> Result<(), CmdError> {
        self.check_eyes(Target::Both)?;
        if self.paused {
            return Err(CmdError::new("paused", "capture is paused: resume first"));
        }
        let [a, b] = [0, 1].map(|i| &self.eyes[i]);
        let (pa, pb) = (a.target_pose(), b.target_pose());
        let raw = |e: &EyeControl| matches!(e.timeline.target(), Aim::Raw(_));
        if raw(a) || raw(b) || (pa.y - pb.y).abs() > 1e-9 || (pa.zoom - pb.zoom).abs() > 1e-9 {
            return Err(CmdError::new(
                "calibrate-failed",
                "the eyes must look the same way (same y and zoom, no raw crop): `look both …` first",
            ));
        }
        if a.flip.v() != b.flip.v() {
            return Err(CmdError::new("calibrate-failed", "one eye is flipped vertically and the other not"));
        }
        Ok(())
    }

    /// The estimate for `ticket` came back from the worker: the reply for the connection that
    /// asked. A good one becomes what `calibrate apply` sets.
    pub fn calibration_finished(&mut self, _ticket: u64, result: &Result<Measurement, String>) -> Reply {
        match result {
            Ok(m) if self.eyes.len() == 2 => {
                let offsets = [self.eyes[0].offset, self.eyes[1].offset];
                let p = propose(m, offsets, self.eyes[1].flip.v());
                self.calibration = Some(p);
                Reply::Calibration(p)
            }
            Ok(_) => Reply::Err(CmdError::new("no-eye", "calibrate needs two eyes")),
            Err(e) => Reply::Err(CmdError::new("calibrate-failed", e.clone())),
        }
    }

    /// The state file for `ticket` was written (or not): the reply for the waiting connection,
    /// and the `saved` event for watchers.
    pub fn save_finished(&mut self, ticket: u64, result: Result<(), String>) -> Reply {
        let path = self.state_path.display().to_string();
        let calibration = self.calibration_saves.iter().position(|c| c.0 == ticket);
        let calibration = calibration.map(|i| self.calibration_saves.remove(i));
        match result {
            Ok(()) => {
                self.events.push(Event::Saved { path: path.clone() });
                if let Some((_, AppliedCalibration { seq, crop, offset, clamped })) = calibration {
                    return Reply::CalibrationApplied { seq, crop, offset, clamped, path };
                }
                Reply::Saved { path }
            }
            // A calibration is in force already (set, announced, capturing with it); only its
            // saving failed, and the reply says so rather than read as "nothing applied".
            Err(e) => match calibration {
                Some((_, AppliedCalibration { offset: (x, y), .. })) => Reply::Err(CmdError::new(
                    "save-failed",
                    format!("eye 1 offset {x},{y} applied but not saved: {path}: {e}"),
                )),
                None => Reply::Err(CmdError::new("save-failed", format!("{path}: {e}"))),
            },
        }
    }

    fn set_paused(&mut self, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        if !paused {
            self.eyes.iter_mut().for_each(|e| e.keyframes.request());
        }
        self.actions.push(Action::Capture { paused });
        self.events.push(if paused { Event::Pause } else { Event::Resume });
    }

    fn check_eyes(&self, target: Target) -> Result<&'static [u8], CmdError> {
        let eyes = target.eyes();
        if eyes.iter().any(|&i| i as usize >= self.eyes.len()) {
            return Err(CmdError::new("no-eye", "that eye has no camera"));
        }
        Ok(eyes)
    }

    /// The first sequence not yet requested by any of `eyes`: a change lands on it in all.
    fn common_sequence(&self, eyes: &[u8], plant: &dyn Plant) -> u32 {
        eyes.iter()
            .map(|&i| plant.next_sequence(i))
            .max_by(|a, b| (a.wrapping_sub(*b) as i32).cmp(&0))
            .expect("at least one eye")
    }

    /// Where a change starts for eye `i`: the common sequence when the eyes share a frame
    /// clock, else the eye's own (free-running cameras number their frames apart).
    fn start_sequence(&self, i: u8, common: u32, plant: &dyn Plant) -> u32 {
        if self.shared_clock { common } else { plant.next_sequence(i) }
    }

    fn frames_for(&self, over_ms: u32) -> u32 {
        if over_ms == 0 { 0 } else { ((over_ms as u64 * self.fps as u64).div_ceil(1000) as u32).max(1) }
    }

    /// Plan a pose change for `eyes`: each eye starts from its commanded pose (with the pair's
    /// vergence), gets `change`, clamped, as a saccade or a glide of `over_ms`.
    fn plan(&mut self, eyes: &[u8], over_ms: u32, plant: &dyn Plant, change: impl Fn(Pose) -> Pose) -> Reply {
        let common = self.common_sequence(eyes, plant);
        let seq = self.start_sequence(eyes[0], common, plant);
        let frames = self.frames_for(over_ms);
        let last = frames.max(1) - 1;
        let mut moves = Vec::new();
        let mut verge = self.verge;
        for &i in eyes {
            let s = self.start_sequence(i, common, plant);
            let e = &mut self.eyes[i as usize];
            let to = e.geometry.clamp(change(Pose { verge: self.verge, ..e.target_pose() }));
            let (g, flip) = (e.geometry, e.flip);
            e.timeline.move_to(s, to, frames, &g, flip);
            e.arrival = Some(s.wrapping_add(last));
            let (crop, clamped) = e.crop_of(i, Aim::Pose(to));
            moves.push(EyeMove { eye: i, own_seq: (s != seq).then_some(s), crop, view: Some(to), clamped });
            verge = to.verge;
        }
        self.verge = verge;
        Reply::Moved { seq, until: (frames > 1).then(|| seq.wrapping_add(last)), eyes: moves, verge }
    }
}

/// Replies after which the commanded state is different (an `event state` follows).
fn changes_state(r: &Reply) -> bool {
    !matches!(
        r,
        Reply::Status(_)
            | Reply::Help(_)
            | Reply::Clock(_)
            | Reply::Keyframe
            | Reply::Watching(_)
            | Reply::Steering { .. }
    )
}

#[cfg(test)]
mod tests;
