//! Is a pipeline stage (an eye's camera, an eye's encoder) working? A small state machine fed
//! with what happens (a frame done, a frame failed, time passing with work outstanding) that
//! reports only *changes* — so a fault is logged once when it starts and once when it ends,
//! never once per frame.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Ok,
    /// Work is outstanding but nothing has come back for `stall_us`.
    Stalled,
    /// Frames come back failed; the last reason.
    Failing(String),
}

/// A change worth one log line, one `watch` event and one message to the eye's viewers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Stalled { silent_us: u64 },
    Failing { reason: String },
    Recovered { after_us: u64, lost: u64 },
}

impl Change {
    /// The change's one log line, for `what` ("camera", "encoder") of `eye`.
    pub fn log(&self, eye: usize, what: &str) {
        match self {
            Change::Stalled { silent_us } => {
                crate::error!("eye {eye}: {what} stalled: nothing for {} ms", silent_us / 1000)
            }
            Change::Failing { reason } => crate::error!("eye {eye}: {what} failing: {reason}"),
            Change::Recovered { after_us, lost } => {
                crate::info!("eye {eye}: {what} recovered after {} ms ({lost} frames lost)", after_us / 1000)
            }
        }
    }
}

#[derive(Debug)]
pub struct Health {
    state: State,
    stall_us: u64,
    last_progress_us: u64,
    since_us: u64,
    /// Frames failed or missing while not Ok.
    lost: u64,
}

impl Health {
    pub fn new(stall_us: u64, now_us: u64) -> Self {
        Health { state: State::Ok, stall_us, last_progress_us: now_us, since_us: now_us, lost: 0 }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn set_stall_after(&mut self, stall_us: u64) {
        self.stall_us = stall_us;
    }

    fn enter(&mut self, s: State, now_us: u64) {
        self.state = s;
        self.since_us = now_us;
        self.lost = 0;
    }

    /// A frame came back fine.
    pub fn ok(&mut self, now_us: u64) -> Option<Change> {
        self.last_progress_us = now_us;
        if self.state == State::Ok {
            return None;
        }
        let change = Change::Recovered { after_us: now_us.saturating_sub(self.since_us), lost: self.lost };
        self.enter(State::Ok, now_us);
        Some(change)
    }

    /// A frame came back failed.
    pub fn failed(&mut self, reason: &str, now_us: u64) -> Option<Change> {
        self.last_progress_us = now_us;
        self.lost += 1;
        match &self.state {
            State::Failing(_) => None,
            _ => {
                self.enter(State::Failing(reason.to_string()), now_us);
                self.lost = 1;
                Some(Change::Failing { reason: reason.to_string() })
            }
        }
    }

    /// Time passes; `waiting` says whether anything is outstanding (paused cameras and idle
    /// encoders are not stalled).
    pub fn tick(&mut self, waiting: bool, now_us: u64) -> Option<Change> {
        if !waiting {
            self.last_progress_us = now_us;
            return None;
        }
        let silent = now_us.saturating_sub(self.last_progress_us);
        if self.state == State::Ok && silent > self.stall_us {
            self.enter(State::Stalled, now_us);
            return Some(Change::Stalled { silent_us: silent });
        }
        None
    }

    /// Count a frame that should have come and did not (a stalled camera's missed ticks).
    pub fn missed(&mut self, n: u64) {
        if self.state != State::Ok {
            self.lost += n;
        }
    }

    pub fn describe(&self) -> String {
        match &self.state {
            State::Ok => "ok".into(),
            State::Stalled => "stalled".into(),
            State::Failing(r) => format!("failing: {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_and_so_is_the_recovery() {
        let mut h = Health::new(1000, 0);
        assert_eq!(h.tick(true, 500), None);
        assert_eq!(h.tick(true, 1500), Some(Change::Stalled { silent_us: 1500 }));
        assert_eq!(h.tick(true, 5000), None, "once, not on every tick");
        h.missed(3);
        assert_eq!(h.ok(6500), Some(Change::Recovered { after_us: 5000, lost: 3 }));
        assert_eq!(h.ok(7000), None);
        assert_eq!(h.state(), &State::Ok);
    }

    #[test]
    fn failures_are_reported_when_they_start_and_counted_until_they_end() {
        let mut h = Health::new(1000, 0);
        assert_eq!(h.failed("request error", 10), Some(Change::Failing { reason: "request error".into() }));
        for t in 11..20 {
            assert_eq!(h.failed("request error", t), None);
        }
        assert_eq!(h.ok(100), Some(Change::Recovered { after_us: 90, lost: 10 }));
    }

    #[test]
    fn nothing_outstanding_is_never_a_stall() {
        let mut h = Health::new(1000, 0);
        assert_eq!(h.tick(false, 10_000), None);
        assert_eq!(h.tick(true, 10_500), None, "the clock restarted when work appeared");
        assert!(h.tick(true, 11_100).is_some());
    }
}
