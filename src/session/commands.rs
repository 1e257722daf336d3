//! What the two control roles share: each command line passes a per-connection rate limit,
//! is parsed, and is checked against the connection's steering rights before the controller
//! sees it; one command is in the controller's hands at a time, so replies come back in the
//! order the commands were sent. The rights and `watch` follow from the replies (`auth` that
//! succeeded, `watch`).
//!
//! Rate limiting answers a burst once: the first line over the limit gets `err rate-limited`,
//! the following ones are dropped without a reply until the rate falls again, so a flood of
//! lines never becomes a flood of replies. While a burst is being dropped the connection is
//! not read until the budget has refilled `RESUME_READING_AT` commands: a flood then costs the
//! loop one read per pause (its lines wait in the kernel, the writer blocks), not a read and a
//! scan of every line on each turn of the loop.

use crate::control::command::{self, CmdError, Command};
use crate::control::reply::Reply;
use crate::limits::{MAX_COMMANDS_PER_S, TokenBucket};

/// Commands the budget must hold again before a rate-limited connection is read again.
const RESUME_READING_AT: u32 = MAX_COMMANDS_PER_S / 5;

pub enum Admit {
    /// For the controller.
    Execute(Command),
    /// Answered here (a parse error, no right to steer, the first line over the rate).
    Answer(Reply),
    /// Dropped without a reply (a line inside a rate-limited burst).
    Drop,
}

pub struct CommandGate {
    may_steer: bool,
    watching: bool,
    /// A command is with the controller, its reply not back yet.
    in_flight: bool,
    budget: TokenBucket,
    /// Inside a rate-limited burst: lines are dropped.
    limited: bool,
    /// Reading is paused until then (a burst is being dropped).
    pause_until_us: Option<u64>,
    pub dropped: u64,
}

impl CommandGate {
    pub fn new(may_steer: bool, now_us: u64) -> CommandGate {
        CommandGate {
            may_steer,
            watching: false,
            in_flight: false,
            budget: TokenBucket::new(MAX_COMMANDS_PER_S, 2 * MAX_COMMANDS_PER_S, now_us),
            limited: false,
            pause_until_us: None,
            dropped: 0,
        }
    }

    /// Whether the connection should not be read now (a rate-limited burst is being dropped).
    pub fn reading_paused(&self) -> bool {
        self.pause_until_us.is_some()
    }

    /// When reading resumes, if paused.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pause_until_us
    }

    pub fn handle_timeout(&mut self, now_us: u64) {
        if self.pause_until_us.is_some_and(|t| now_us >= t) {
            self.pause_until_us = None;
        }
    }

    /// Inside a rate-limited burst: the last line charged was over the rate. Lines that are
    /// already here go the same way (the budget cannot refill until time passes), so a session
    /// may drop them all at once (`dropped_lines`) rather than charge each.
    pub fn limited(&self) -> bool {
        self.limited
    }

    /// `n` lines of a rate-limited burst dropped at once.
    pub fn dropped_lines(&mut self, n: u64) {
        self.dropped += n;
    }

    pub fn awaiting(&self) -> bool {
        self.in_flight
    }

    pub fn watching(&self) -> bool {
        self.watching
    }

    pub fn may_steer(&self) -> bool {
        self.may_steer
    }

    pub fn admit(&mut self, line: &str, now_us: u64) -> Admit {
        if let Some(refused) = self.charge(now_us) {
            return refused;
        }
        match command::parse(line) {
            Err(e) => Admit::Answer(Reply::Err(e)),
            Ok(cmd) if cmd.is_steering() && !self.may_steer => Admit::Answer(Reply::Err(CmdError::new(
                "forbidden",
                "this connection is view-only: steering needs the token (auth <token>)",
            ))),
            Ok(cmd) => {
                self.in_flight = true;
                Admit::Execute(cmd)
            }
        }
    }

    /// Take one line from the rate budget: `None` if it may be handled, else what to do with
    /// it (the first line over the rate is answered, the rest of the burst dropped).
    pub fn charge(&mut self, now_us: u64) -> Option<Admit> {
        if !self.budget.allow(1, now_us) {
            self.dropped += 1;
            self.pause_until_us = Some(now_us + self.budget.time_until(RESUME_READING_AT, now_us).max(1));
            if self.limited {
                return Some(Admit::Drop);
            }
            self.limited = true;
            return Some(Admit::Answer(Reply::Err(CmdError::new(
                "rate-limited",
                format!("more than {MAX_COMMANDS_PER_S} commands/s; lines are dropped until you slow down"),
            ))));
        }
        self.limited = false;
        None
    }

    /// The controller's reply to the command in flight; `peer` names the connection in the log.
    pub fn replied(&mut self, r: &Reply, peer: &str) {
        self.in_flight = false;
        match r {
            Reply::Steering { token_required: true } if !self.may_steer => {
                self.may_steer = true;
                crate::info!("client {peer}: steering unlocked with the token");
            }
            Reply::Steering { .. } => self.may_steer = true,
            Reply::Watching(_) => self.watching = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(a: Admit) -> String {
        match a {
            Admit::Answer(Reply::Err(e)) => e.code.to_string(),
            Admit::Answer(r) => r.to_string(),
            Admit::Execute(c) => format!("execute {c:?}"),
            Admit::Drop => "drop".into(),
        }
    }

    #[test]
    fn view_only_until_the_token_unlocks_steering() {
        let mut g = CommandGate::new(false, 0);
        assert_eq!(code(g.admit("look 0 0 0", 0)), "forbidden");
        assert!(matches!(g.admit("status", 0), Admit::Execute(Command::Status)));
        g.replied(&Reply::Status("{}".into()), "p");
        assert!(matches!(g.admit("auth secret", 0), Admit::Execute(Command::Auth(_))));
        assert!(g.awaiting());
        g.replied(&Reply::Steering { token_required: true }, "p");
        assert!(!g.awaiting() && g.may_steer());
        assert!(matches!(g.admit("look 0 0 0", 0), Admit::Execute(_)));
    }

    #[test]
    fn watch_takes_effect_with_its_reply() {
        let mut g = CommandGate::new(true, 0);
        assert!(matches!(g.admit("watch", 0), Admit::Execute(Command::Watch)));
        assert!(!g.watching());
        let state = crate::control::reply::StateView {
            paused: false,
            token_required: false,
            fps: 30,
            verge: 0.0,
            eyes: vec![],
        };
        g.replied(&Reply::Watching(state), "p");
        assert!(g.watching());
    }

    #[test]
    fn a_flood_gets_one_rate_limited_reply_per_burst() {
        let mut g = CommandGate::new(true, 0);
        let mut answers = 0;
        let mut executed = 0;
        for _ in 0..10_000 {
            match g.admit("clock", 0) {
                Admit::Execute(_) => {
                    executed += 1;
                    g.replied(&Reply::Clock(0), "p");
                }
                Admit::Answer(_) => answers += 1,
                Admit::Drop => {}
            }
        }
        assert_eq!(executed, 2 * MAX_COMMANDS_PER_S as usize, "the burst allowance");
        assert_eq!(answers, 1, "one error for the whole burst");
        assert_eq!(g.dropped, 10_000 - executed as u64);
        // While the burst is dropped the connection is not read, until the budget holds
        // RESUME_READING_AT commands again (10 at 50/s: 200 ms).
        assert!(g.reading_paused());
        assert_eq!(g.poll_timeout(), Some(200_000));
        g.handle_timeout(199_999);
        assert!(g.reading_paused());
        g.handle_timeout(200_000);
        assert!(!g.reading_paused(), "read again once the budget has refilled");
        // The rate falls: lines are taken again, and the next burst is answered once more.
        assert!(matches!(g.admit("clock", 1_000_000), Admit::Execute(_)));
    }

    #[test]
    fn parse_errors_are_answered_here() {
        let mut g = CommandGate::new(true, 0);
        assert_eq!(code(g.admit("fly", 0)), "unknown-command");
        assert_eq!(code(g.admit("", 0)), "empty");
        assert!(!g.awaiting());
    }
}
