//! When to force an IDR: a viewer that joins or falls behind asks for one; the encoder is told
//! at most once per `min_interval_us` per eye, so a crowd joining at once (or a viewer that
//! keeps falling behind) cannot turn the stream into all keyframes.
//!
//! A request is for "the next keyframe out of the encoder", whoever made it: a keyframe that
//! comes out after the request (forced for someone else, periodic, or a new encoder's first)
//! serves it, and the frames already inside the encoder when it was made may be one. So a
//! request waits for those frames before it forces anything: a viewer that joins while a new
//! stream's first IDR is still being encoded starts on that IDR and gets no second one.

#[derive(Debug)]
pub struct KeyframeGate {
    min_interval_us: u64,
    last_forced_us: Option<u64>,
    pending: Option<Pending>,
    /// Frames handed to the encoder that have not come back.
    inside: usize,
    pub forced: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Frames inside the encoder when the request was made, not back yet: any of them may come
    /// out a keyframe.
    ahead: usize,
    /// When the request first found the gate open but frames ahead (the wait for them is
    /// bounded by `min_interval_us`, in case one never comes back).
    waiting_since_us: Option<u64>,
}

impl KeyframeGate {
    pub fn new(min_interval_us: u64) -> Self {
        KeyframeGate { min_interval_us, last_forced_us: None, pending: None, inside: 0, forced: 0 }
    }

    /// Ask for a keyframe. A request made while one is pending joins it.
    pub fn request(&mut self) {
        if self.pending.is_none() {
            self.pending = Some(Pending { ahead: self.inside, waiting_since_us: None });
        }
    }

    /// Called for each frame handed to the encoder: should this one be an IDR?
    pub fn take(&mut self, now_us: u64) -> bool {
        self.inside += 1;
        let open = self.last_forced_us.is_none_or(|t| now_us.saturating_sub(t) >= self.min_interval_us);
        let Some(p) = &mut self.pending else { return false };
        if !open {
            return false;
        }
        if p.ahead > 0 {
            let since = *p.waiting_since_us.get_or_insert(now_us);
            if now_us.saturating_sub(since) < self.min_interval_us {
                return false;
            }
        }
        self.pending = None;
        self.last_forced_us = Some(now_us);
        self.forced += 1;
        true
    }

    /// A frame handed to the encoder will not come out after all (the encoder refused it);
    /// `forced`: it carried the forced IDR, which is asked for again.
    pub fn refused(&mut self, forced: bool) {
        self.came_out(false);
        if forced {
            self.last_forced_us = None;
            self.request();
        }
    }

    /// A frame came back from the encoder (as an access unit or an error), in the order they
    /// went in; a keyframe serves the pending request.
    pub fn came_out(&mut self, keyframe: bool) {
        self.inside = self.inside.saturating_sub(1);
        if keyframe {
            self.pending = None;
        } else if let Some(p) = &mut self.pending {
            p.ahead = p.ahead.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand a frame in at `now` and let it come straight out: was it forced?
    fn through(g: &mut KeyframeGate, now: u64) -> bool {
        let forced = g.take(now);
        g.came_out(forced);
        forced
    }

    #[test]
    fn at_most_one_forced_idr_per_interval_and_none_unasked() {
        let mut g = KeyframeGate::new(500);
        assert!(!through(&mut g, 0));
        g.request();
        g.request();
        assert!(through(&mut g, 10));
        assert!(!through(&mut g, 20), "one request, one IDR");
        g.request();
        assert!(!through(&mut g, 300), "too soon");
        assert!(!through(&mut g, 509));
        assert!(through(&mut g, 510), "the pending request is served once the interval has passed");
        assert_eq!(g.forced, 2);
    }

    #[test]
    fn a_keyframe_already_inside_the_encoder_serves_a_request() {
        // A new encoder: its first frame comes out an IDR by itself. A viewer joins while that
        // frame and the next are still inside.
        let mut g = KeyframeGate::new(500);
        assert!(!g.take(0));
        assert!(!g.take(33));
        g.request();
        assert!(!g.take(66), "the frames ahead may hold a keyframe: wait for them");
        g.came_out(true); // the encoder's own first IDR: the viewer starts on it
        g.came_out(false);
        g.came_out(false);
        for t in [100, 133, 166, 700, 1200] {
            assert!(!through(&mut g, t), "no second IDR at {t}");
        }
        assert_eq!(g.forced, 0);
    }

    #[test]
    fn a_request_forces_once_the_frames_ahead_came_out_as_p_frames() {
        let mut g = KeyframeGate::new(500);
        assert!(!g.take(0));
        g.request();
        assert!(!g.take(33), "one frame ahead");
        g.came_out(false);
        assert!(g.take(66), "forced as soon as nothing ahead can serve it");
        g.came_out(false);
        g.came_out(true);
        assert!(!through(&mut g, 99));
        assert_eq!(g.forced, 1);
    }

    #[test]
    fn a_request_after_a_keyframe_came_out_waits_for_a_new_one() {
        let mut g = KeyframeGate::new(500);
        g.request();
        assert!(through(&mut g, 0));
        // A periodic IDR came out before this request: it does not serve it.
        assert!(!g.take(600));
        g.came_out(true);
        g.request();
        assert!(through(&mut g, 633));
    }

    #[test]
    fn frames_that_never_come_back_hold_a_request_for_one_interval_at_most() {
        let mut g = KeyframeGate::new(500);
        assert!(!g.take(0)); // inside for good (a hung encoder)
        g.request();
        assert!(!g.take(33));
        assert!(!g.take(532));
        assert!(g.take(533), "waited one interval for the frames ahead, then forced");
    }

    #[test]
    fn a_refused_forced_frame_is_asked_for_again() {
        let mut g = KeyframeGate::new(500);
        g.request();
        assert!(g.take(0));
        g.refused(true);
        assert!(g.take(33), "the IDR goes on the next frame");
        g.came_out(true);
        assert!(!through(&mut g, 66));
    }
}
