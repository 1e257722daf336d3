//! Pacing a camera that ignores the frame rate. A real camera exposes one frame per frame
//! period whatever the depth of its request queue; libcamera 0.4's `virtual` camera fills every
//! request the moment it is queued, so re-queuing on completion turns into a busy loop at
//! whatever rate the CPU allows. Once a camera is seen delivering at more than twice the rate
//! asked for, requests are handed to it no more often than one per frame period.

/// Intervals looked at before deciding.
const WARMUP: u32 = 8;

#[derive(Clone, Debug)]
pub struct Pacer {
    period_us: u64,
    last_capture_us: Option<u64>,
    mean_interval_us: f64,
    intervals: u32,
    pacing: bool,
    next_slot_us: u64,
}

impl Pacer {
    pub fn new(fps: u32) -> Pacer {
        Pacer {
            period_us: 1_000_000 / fps.max(1) as u64,
            last_capture_us: None,
            mean_interval_us: 0.0,
            intervals: 0,
            pacing: false,
            next_slot_us: 0,
        }
    }

    /// A new rate (or a new session): decide again from scratch.
    pub fn reset(&mut self, fps: u32) {
        *self = Pacer::new(fps);
    }

    pub fn pacing(&self) -> bool {
        self.pacing
    }

    pub fn period_us(&self) -> u64 {
        self.period_us
    }

    /// A frame captured at `capture_us`. True when this decides that the camera needs pacing.
    pub fn observed(&mut self, capture_us: u64) -> bool {
        let last = self.last_capture_us.replace(capture_us);
        if self.pacing {
            return false;
        }
        let Some(last) = last else { return false };
        let dt = capture_us.saturating_sub(last) as f64;
        self.intervals += 1;
        // Running mean over the warm-up, then an exponential one.
        let w = 1.0 / (self.intervals.min(WARMUP) as f64);
        self.mean_interval_us += (dt - self.mean_interval_us) * w;
        if self.intervals >= WARMUP && self.mean_interval_us < self.period_us as f64 / 2.0 {
            self.pacing = true;
            return true;
        }
        false
    }

    /// When a request handed in at `now_us` may go to the camera (pacing only).
    pub fn slot(&mut self, now_us: u64) -> u64 {
        let s = self.next_slot_us.max(now_us);
        self.next_slot_us = s + self.period_us;
        s
    }

    /// The mean interval seen, µs (for the log line).
    pub fn mean_interval_us(&self) -> u64 {
        self.mean_interval_us as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_at_the_rate_or_slower_is_never_paced() {
        let mut p = Pacer::new(30);
        for i in 0..100u64 {
            assert!(!p.observed(1_000_000 + i * 33_333 + (i % 5) * 2_000));
        }
        let mut slow = Pacer::new(30);
        for i in 0..100u64 {
            slow.observed(i * 100_000);
        }
        assert!(!p.pacing() && !slow.pacing());
    }

    #[test]
    fn a_flooding_camera_is_paced_to_one_request_per_period() {
        let mut p = Pacer::new(10);
        let decided: Vec<bool> = (0..20u64).map(|i| p.observed(5_000_000 + i * 2_000)).collect();
        assert_eq!(decided.iter().filter(|d| **d).count(), 1, "decided once");
        assert!(p.pacing());
        // Four requests handed in at once go out a period apart; a late one goes at once.
        let now = 6_000_000;
        let slots: Vec<u64> = (0..4).map(|_| p.slot(now)).collect();
        assert_eq!(slots, [now, now + 100_000, now + 200_000, now + 300_000]);
        assert_eq!(p.slot(now + 1_000_000), now + 1_000_000);
        p.reset(10);
        assert!(!p.pacing(), "a new rate decides again");
    }
}
