//! What a completed libcamera request means, and what to do about a camera that stopped making
//! pictures: the sans-IO part of the libcamera backend, fed with what libcamera reports so the
//! Raspberry Pi fork's behaviours are unit tests here (the backend only carries out the verdict).
//!
//! What the fork does (its `pipeline_base.cpp`, v0.4.0+rpt … v0.7.0+rpt20260205):
//! - After a start the IPA's AGC/AWB converge over a few frames. From v0.5.1+rpt20250722 these
//!   complete with the buffer status `FrameStartup`; before, they came back as `FrameError`.
//!   Either way they are no fault: they are dropped quietly ([`Verdict::Startup`]).
//! - After a front-end timeout the pipeline is in its error state and cancels every request,
//!   at once and for ever, until the camera is stopped and started. Re-queueing the cancelled
//!   requests (what a plain "failed frame" does) spins; instead the camera is stopped and
//!   started again with backoff ([`Verdict::ErrorState`]), reported once, and the backoff only
//!   resets when a real picture comes back.

/// The request's status (libcamera's `Request::Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    Complete,
    Cancelled,
    Pending,
}

/// The stream buffer's status (libcamera's `FrameMetadata::Status`); `Unknown` when the
/// pipeline never filled it in (libcamera 0.4's virtual camera).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferStatus {
    Success,
    Error,
    Cancelled,
    Startup,
    Unknown,
}

/// What the backend does with one completed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A picture: hand it on.
    Frame,
    /// A startup (convergence) frame: back to the daemon as `Skipped`, no fault.
    Startup,
    /// A broken or cancelled frame: back to the daemon as failed (health reports it once).
    Failed(&'static str),
    /// Cancelled because the camera is being stopped on purpose: parked for the next start.
    Parked,
    /// The camera is in its error state: stop it, and start it again after `restart_in_us`.
    /// `first` is true for the first of a run (worth a warning; the rest are quiet).
    ErrorState { restart_in_us: u64, first: bool },
}

/// Frames at the start of a session that may come back as errors without it being a fault
/// (older forks mark their convergence frames so); past this an error is an error.
pub const STARTUP_FRAMES: u32 = 16;

pub const FAILED_FRAME: &str = "the camera returned a broken frame";
pub const CANCELLED: &str = "the camera cancelled the request";
pub const PENDING: &str = "the request came back pending";
pub const ERROR_STATE: &str = "the camera is in its error state (it cancels every request): restarting it";

#[derive(Debug)]
pub struct Completions {
    /// Cancelled requests in a row while running that make an error state (the requests the
    /// camera holds: all of them came back without a picture).
    threshold: u32,
    cancelled_run: u32,
    /// Completions since the camera (re)started, and whether a picture came among them.
    since_start: u32,
    pictured: bool,
    /// Restarts since the last picture, for the backoff.
    strikes: u32,
    first_us: u64,
    max_us: u64,
    /// When the current run of restarts began.
    failing_since_us: Option<u64>,
}

/// A camera that made pictures again after restarts: for one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub restarts: u32,
    pub after_us: u64,
}

impl Completions {
    pub fn new(threshold: u32, first_us: u64, max_us: u64) -> Completions {
        Completions {
            threshold: threshold.max(1),
            cancelled_run: 0,
            since_start: 0,
            pictured: false,
            strikes: 0,
            first_us,
            max_us,
            failing_since_us: None,
        }
    }

    /// The camera (re)started: startup frames may follow.
    pub fn started(&mut self) {
        self.cancelled_run = 0;
        self.since_start = 0;
        self.pictured = false;
    }

    /// Whether the camera is being restarted after an error state (no picture since).
    pub fn recovering(&self) -> bool {
        self.strikes > 0
    }

    /// One completed request. `stopping`: the camera is being stopped on purpose.
    pub fn completed(&mut self, request: RequestStatus, buffer: BufferStatus, stopping: bool, now_us: u64) -> Verdict {
        if stopping && request != RequestStatus::Complete {
            return Verdict::Parked;
        }
        self.since_start = self.since_start.saturating_add(1);
        let cancelled = request == RequestStatus::Cancelled || buffer == BufferStatus::Cancelled;
        if !cancelled {
            self.cancelled_run = 0;
        }
        match (request, buffer) {
            (RequestStatus::Complete, BufferStatus::Success | BufferStatus::Unknown) => {
                self.pictured = true;
                Verdict::Frame
            }
            (RequestStatus::Complete, BufferStatus::Startup) => Verdict::Startup,
            (RequestStatus::Complete, BufferStatus::Error) if !self.pictured && self.since_start <= STARTUP_FRAMES => {
                Verdict::Startup
            }
            (RequestStatus::Complete, BufferStatus::Error) => Verdict::Failed(FAILED_FRAME),
            (RequestStatus::Pending, _) => Verdict::Failed(PENDING),
            (RequestStatus::Cancelled, _) | (RequestStatus::Complete, BufferStatus::Cancelled) => {
                self.cancelled_run += 1;
                if self.cancelled_run < self.threshold {
                    return Verdict::Failed(CANCELLED);
                }
                self.cancelled_run = 0;
                self.strikes += 1;
                let first = self.failing_since_us.is_none();
                self.failing_since_us.get_or_insert(now_us);
                let shift = (self.strikes - 1).min(20);
                let restart_in_us = self.first_us.saturating_mul(1 << shift).min(self.max_us);
                Verdict::ErrorState { restart_in_us, first }
            }
        }
    }

    /// A picture (a [`Verdict::Frame`]) was handed on: if restarts led here, the run is over (and worth a line).
    pub fn pictured(&mut self, now_us: u64) -> Option<Recovered> {
        let since = self.failing_since_us.take()?;
        let restarts = std::mem::take(&mut self.strikes);
        Some(Recovered { restarts, after_us: now_us.saturating_sub(since) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BufferStatus as B;
    use RequestStatus as R;

    fn machine() -> Completions {
        Completions::new(4, 250_000, 4_000_000)
    }

    #[test]
    fn startup_frames_are_dropped_quietly() {
        let mut c = machine();
        c.started();
        // v0.5.1+rpt20250722 and later: FrameStartup.
        for _ in 0..3 {
            assert_eq!(c.completed(R::Complete, B::Startup, false, 0), Verdict::Startup);
        }
        assert_eq!(c.completed(R::Complete, B::Success, false, 0), Verdict::Frame);
        // Older forks: the convergence frames come back as errors, before the first picture.
        c.started();
        assert_eq!(c.completed(R::Complete, B::Error, false, 0), Verdict::Startup);
        assert_eq!(c.completed(R::Complete, B::Success, false, 0), Verdict::Frame);
        assert_eq!(
            c.completed(R::Complete, B::Error, false, 0),
            Verdict::Failed(FAILED_FRAME),
            "after a picture it is a fault"
        );
        c.started();
        for _ in 0..STARTUP_FRAMES {
            assert_eq!(c.completed(R::Complete, B::Error, false, 0), Verdict::Startup);
        }
        assert_eq!(
            c.completed(R::Complete, B::Error, false, 0),
            Verdict::Failed(FAILED_FRAME),
            "a camera that never converges"
        );
    }

    #[test]
    fn a_camera_in_its_error_state_is_restarted_with_backoff_not_spun() {
        let mut c = machine();
        c.started();
        assert_eq!(c.completed(R::Complete, B::Success, false, 0), Verdict::Frame);
        // A front-end timeout: every request comes back cancelled at once. The old logic
        // handed each back as a failed frame to be re-queued at once: a spin.
        for _ in 0..3 {
            assert_eq!(c.completed(R::Cancelled, B::Cancelled, false, 10), Verdict::Failed(CANCELLED));
        }
        assert_eq!(
            c.completed(R::Cancelled, B::Cancelled, false, 10),
            Verdict::ErrorState { restart_in_us: 250_000, first: true }
        );
        assert!(c.recovering());
        // Restarted, and straight back into the error state: the delay doubles, quietly.
        let mut delays = Vec::new();
        for _ in 0..6 {
            c.started();
            for _ in 0..3 {
                c.completed(R::Cancelled, B::Cancelled, false, 20);
            }
            match c.completed(R::Cancelled, B::Cancelled, false, 20) {
                Verdict::ErrorState { restart_in_us, first: false } => delays.push(restart_in_us),
                v => panic!("{v:?}"),
            }
        }
        assert_eq!(delays, [500_000, 1_000_000, 2_000_000, 4_000_000, 4_000_000, 4_000_000]);
        // A picture at last: one line, and the backoff starts over.
        c.started();
        assert_eq!(c.completed(R::Complete, B::Startup, false, 30), Verdict::Startup);
        assert!(c.recovering(), "a startup frame is not a picture");
        assert_eq!(c.completed(R::Complete, B::Success, false, 9_000_010), Verdict::Frame);
        assert_eq!(c.pictured(9_000_010), Some(Recovered { restarts: 7, after_us: 9_000_000 }));
        assert_eq!(c.pictured(9_000_020), None);
        for _ in 0..3 {
            c.completed(R::Cancelled, B::Cancelled, false, 10_000_000);
        }
        assert_eq!(
            c.completed(R::Cancelled, B::Cancelled, false, 10_000_000),
            Verdict::ErrorState { restart_in_us: 250_000, first: true }
        );
    }

    #[test]
    fn a_stray_cancellation_is_a_failed_frame_and_a_stop_parks() {
        let mut c = machine();
        c.started();
        assert_eq!(c.completed(R::Cancelled, B::Cancelled, false, 0), Verdict::Failed(CANCELLED));
        assert_eq!(c.completed(R::Complete, B::Success, false, 0), Verdict::Frame);
        for _ in 0..10 {
            assert_eq!(c.completed(R::Cancelled, B::Cancelled, true, 0), Verdict::Parked, "a stop on purpose");
        }
        assert_eq!(c.completed(R::Complete, B::Unknown, false, 0), Verdict::Frame, "virtual never fills the status in");
        assert_eq!(c.completed(R::Pending, B::Unknown, false, 0), Verdict::Failed(PENDING));
        assert!(!c.recovering());
    }
}
