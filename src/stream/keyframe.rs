//! When to force an IDR: a viewer that joins or falls behind asks for one; the encoder is told
//! at most once per `min_interval_us` per eye, so a crowd joining at once (or a viewer that
//! keeps falling behind) cannot turn the stream into all keyframes.

#[derive(Debug)]
pub struct KeyframeGate {
    min_interval_us: u64,
    last_forced_us: Option<u64>,
    pending: bool,
    pub forced: u64,
}

impl KeyframeGate {
    pub fn new(min_interval_us: u64) -> Self {
        KeyframeGate { min_interval_us, last_forced_us: None, pending: false, forced: 0 }
    }

    pub fn request(&mut self) {
        self.pending = true;
    }

    /// Called for each frame handed to the encoder: should this one be an IDR?
    pub fn take(&mut self, now_us: u64) -> bool {
        let due = self.last_forced_us.is_none_or(|t| now_us.saturating_sub(t) >= self.min_interval_us);
        if self.pending && due {
            self.pending = false;
            self.last_forced_us = Some(now_us);
            self.forced += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_forced_idr_per_interval_and_none_unasked() {
        let mut g = KeyframeGate::new(500);
        assert!(!g.take(0));
        g.request();
        g.request();
        assert!(g.take(10));
        assert!(!g.take(20), "one request, one IDR");
        g.request();
        assert!(!g.take(300), "too soon");
        assert!(!g.take(509));
        assert!(g.take(510), "the pending request is served once the interval has passed");
        assert_eq!(g.forced, 2);
    }
}
