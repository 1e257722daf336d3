//! When to try again: reopening a camera that went away, with exponential backoff, and saying
//! so once per reason rather than once per attempt.

#[derive(Clone, Debug)]
pub struct Retry {
    first_us: u64,
    max_us: u64,
    delay_us: u64,
    /// Since when it has been failing (None: nothing to retry).
    since_us: Option<u64>,
    next_us: u64,
    attempts: u32,
    last_error: Option<String>,
}

/// What to do with the outcome of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Worth a log line: first failure, or a new reason.
    Report { attempts: u32, retry_in_us: u64 },
    /// Same as before: a debug line at most.
    Quiet { attempts: u32, retry_in_us: u64 },
}

impl Retry {
    pub fn new(first_us: u64, max_us: u64) -> Retry {
        Retry { first_us, max_us, delay_us: first_us, since_us: None, next_us: 0, attempts: 0, last_error: None }
    }

    /// Something broke at `now`: the first attempt comes after the first delay.
    pub fn start(&mut self, now_us: u64) {
        if self.since_us.is_none() {
            self.since_us = Some(now_us);
            self.delay_us = self.first_us;
            self.attempts = 0;
            self.last_error = None;
            self.next_us = now_us + self.first_us;
        }
    }

    /// Something broke at `now` and the next attempt is due after `delay_us` (a caller with
    /// its own backoff, e.g. `completion`'s error-state restarts).
    pub fn start_in(&mut self, now_us: u64, delay_us: u64) {
        self.start(now_us);
        self.next_us = now_us + delay_us;
    }

    pub fn pending(&self) -> bool {
        self.since_us.is_some()
    }

    /// Whether an attempt is due.
    pub fn due(&self, now_us: u64) -> bool {
        self.since_us.is_some() && now_us >= self.next_us
    }

    /// The attempt failed: the delay doubles up to the cap.
    pub fn failed(&mut self, why: &str, now_us: u64) -> Outcome {
        self.attempts += 1;
        let retry_in_us = self.delay_us;
        self.next_us = now_us + self.delay_us;
        self.delay_us = (self.delay_us * 2).min(self.max_us);
        let new = self.last_error.as_deref() != Some(why);
        self.last_error = Some(why.to_string());
        if new {
            Outcome::Report { attempts: self.attempts, retry_in_us }
        } else {
            Outcome::Quiet { attempts: self.attempts, retry_in_us }
        }
    }

    /// It worked: how long it had been broken.
    pub fn succeeded(&mut self, now_us: u64) -> u64 {
        let since = self.since_us.take().unwrap_or(now_us);
        self.delay_us = self.first_us;
        now_us.saturating_sub(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_to_the_cap_and_reports_each_reason_once() {
        let mut r = Retry::new(250, 4000);
        assert!(!r.pending() && !r.due(1_000_000));
        r.start(1000);
        r.start(1100); // already failing: keeps the first time
        assert!(!r.due(1249) && r.due(1250));
        let mut t = 1250;
        let mut delays = Vec::new();
        for i in 0..7 {
            let o = r.failed("gone", t);
            let (Outcome::Report { retry_in_us, .. } | Outcome::Quiet { retry_in_us, .. }) = o.clone();
            assert_eq!(matches!(o, Outcome::Report { .. }), i == 0, "attempt {i}");
            delays.push(retry_in_us);
            t += retry_in_us;
            assert!(r.due(t) && !r.due(t - 1));
        }
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(r.failed("busy", t), Outcome::Report { attempts: 8, retry_in_us: 4000 }, "a new reason is news");
        assert_eq!(r.succeeded(20_000), 19_000);
        assert!(!r.pending());
        r.start(30_000);
        assert!(r.due(30_250), "a new outage starts from the first delay again");
    }
}
