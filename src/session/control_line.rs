//! The Unix control socket: newline-separated commands, one reply line each, `event …` lines
//! after `watch`. Whoever can open the socket may steer (its file mode decides who can). What
//! a client wrote before closing its side is still answered (a one-shot `pieyes ctl`). The
//! frame tap verbs (`tap`, `release`, `untap`) exist here only (they need a socket that
//! carries fds); `release` on a tap passes outside the rate limit (a tap releases every
//! frame it is sent), every other line is charged to it.

use super::commands::{Admit, CommandGate};
use super::{Ask, Link};
use crate::control::command::{MAX_LINE, format_err};
use crate::control::line::{Line, LineReader};
use crate::control::reply::Reply;
use crate::limits::{CLOSE_GRACE_US, MAX_REPLY_BACKLOG, MAX_UNPARSED_INPUT, MAX_WATCH_BACKLOG};

pub struct ControlLineSession {
    link: Link,
    lines: LineReader,
    gate: CommandGate,
    /// The connection is a frame tap (its `tap` was answered `ok`, no `untap` since).
    tapping: bool,
}

impl ControlLineSession {
    pub fn new(peer: String, now_us: u64) -> Self {
        ControlLineSession {
            link: Link::new(peer, now_us),
            lines: LineReader::new(MAX_LINE),
            gate: CommandGate::new(true, now_us),
            tapping: false,
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    pub fn gate(&self) -> &CommandGate {
        &self.gate
    }

    pub fn handle_input(&mut self, data: &[u8]) {
        self.lines.push(data);
    }

    pub fn wants_input(&self) -> bool {
        self.lines.buffered() < MAX_UNPARSED_INPUT && !self.backlogged() && !self.gate.reading_paused()
    }

    /// The replies already queued are unread past the backlog limit: take no more commands.
    pub fn backlogged(&self) -> bool {
        self.link.outbox.pending_bytes() >= MAX_REPLY_BACKLOG
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.gate.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now_us: u64) {
        self.gate.handle_timeout(now_us);
    }

    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        while !self.gate.awaiting() && !self.backlogged() {
            let text = match self.lines.next_line()? {
                Line::Text(t) => t,
                Line::TooLong => {
                    self.send_line(&format!("err too-long line longer than {MAX_LINE} bytes"));
                    continue;
                }
                Line::NotUtf8 => {
                    self.send_line("err encoding commands are UTF-8 text");
                    continue;
                }
            };
            if let Some(verb) = crate::tap::verb(&text) {
                let free = self.tapping && verb == "release";
                match if free { None } else { self.gate.charge(now_us) } {
                    Some(Admit::Answer(r)) => self.send_line(&r.to_string()),
                    Some(_) => {}
                    None => match crate::tap::parse(&text).expect("a tap verb") {
                        Ok(t) => return Some(Ask::Tap(t)),
                        Err(e) => self.send_line(&format_err(&e)),
                    },
                }
                continue;
            }
            match self.gate.admit(&text, now_us) {
                Admit::Execute(cmd) => return Some(Ask::Execute(cmd)),
                Admit::Answer(r) => self.send_line(&r.to_string()),
                Admit::Drop => {}
            }
            // A tap's `release` lines pass the rate: a tapping connection's lines are looked at
            // one by one. Anyone else's burst goes at once.
            if self.gate.limited() && !self.tapping {
                let n = self.lines.discard_complete();
                self.gate.dropped_lines(n);
            }
        }
        None
    }

    pub fn reply(&mut self, r: &Reply) {
        self.gate.replied(r, &self.link.peer);
        self.send_line(&r.to_string());
    }

    /// The reply to an `Ask::Tap`.
    pub fn answer(&mut self, line: &str) {
        if line.starts_with("ok tap ") {
            self.tapping = true;
        } else if line.starts_with("ok untap") {
            self.tapping = false;
        }
        self.send_line(line);
    }

    fn send_line(&mut self, line: &str) {
        let mut b = Vec::with_capacity(line.len() + 1);
        b.extend_from_slice(line.as_bytes());
        b.push(b'\n');
        self.link.send(b);
    }

    /// One `watch` event; false (and closing) when the client lets events pile up unread.
    pub fn push_event(&mut self, line: &str, now_us: u64) -> bool {
        if self.link.outbox.pending_bytes() > MAX_WATCH_BACKLOG {
            crate::warn!("client {}: not reading its watch events; closing", self.link.peer);
            self.link.close_after_flush(now_us, CLOSE_GRACE_US);
            return false;
        }
        self.send_line(line);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::command::Command;
    use crate::tap::TapCommand;

    fn out(l: &mut Link) -> String {
        String::from_utf8(l.outbox.drain_to_vec()).unwrap()
    }

    #[test]
    fn replies_come_back_in_command_order() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        s.handle_input(b"clock\nnonsense\nkeyframe\n");
        assert_eq!(s.poll(0), Some(Ask::Execute(Command::Clock)));
        assert_eq!(s.poll(0), None, "waits for the clock reply");
        s.reply(&Reply::Clock(42));
        assert_eq!(s.poll(0), Some(Ask::Execute(Command::Keyframe)), "the bad line was answered on the way");
        s.reply(&Reply::Keyframe);
        assert_eq!(
            out(&mut s.link),
            "ok clock=42\nerr unknown-command unknown command \"nonsense\"; try help\nok keyframe\n"
        );
    }

    #[test]
    fn unread_replies_stop_the_reading() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        s.handle_input(&b"help\n".repeat(1000));
        let long = Reply::Help("x".repeat(1000));
        let mut now = 0;
        while let Some(Ask::Execute(Command::Help)) = s.poll(now) {
            s.reply(&long);
            now += 1_000_000; // within the rate
        }
        let queued = s.link.outbox.pending_bytes();
        assert!((MAX_REPLY_BACKLOG..MAX_REPLY_BACKLOG + 1100).contains(&queued), "{queued}");
        assert!(!s.wants_input(), "the client reads no replies: stop reading its commands");
        out(&mut s.link);
        assert!(s.wants_input());
        assert!(s.poll(now).is_some(), "and go on once it has read them");
    }

    #[test]
    fn a_flood_of_lines_gets_replies_only_for_what_was_taken() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        let mut input = Vec::new();
        for _ in 0..10_000 {
            input.extend_from_slice(b"clock\n");
        }
        s.handle_input(&input);
        let mut executed = 0;
        while let Some(Ask::Execute(_)) = s.poll(0) {
            executed += 1;
            s.reply(&Reply::Clock(1));
        }
        let text = out(&mut s.link);
        assert_eq!(text.lines().filter(|l| l.starts_with("err rate-limited")).count(), 1);
        assert_eq!(text.lines().count(), executed + 1);
        assert_eq!(s.gate.dropped, 10_000 - executed as u64, "every line not taken is counted as dropped");
        assert_eq!(s.lines.buffered(), 0, "the burst went at once");
    }

    #[test]
    fn tap_verbs_are_asked_and_their_errors_answered_here() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        s.handle_input(b"tap both every 0\nrelease 5\nclock\n");
        assert_eq!(s.poll(0), Some(Ask::Tap(crate::tap::TapCommand::Release { seq: 5, eye: None })));
        s.answer("ok release seq=5");
        assert_eq!(s.poll(0), Some(Ask::Execute(Command::Clock)));
        let text = out(&mut s.link);
        assert!(text.starts_with("err out-of-range every must be within 1..1000"), "{text}");
        assert!(text.ends_with("ok release seq=5\n"), "{text}");
    }

    #[test]
    fn only_a_taps_releases_pass_the_rate_limit() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        s.handle_input(&b"release 1\n".repeat(1000));
        let mut asked = 0;
        while let Some(Ask::Tap(_)) = s.poll(0) {
            asked += 1;
            s.answer("err not-tapping this connection is not a tap");
        }
        assert!(asked <= 2 * crate::limits::MAX_COMMANDS_PER_S as usize, "not a tap: charged ({asked})");
        let mut s = ControlLineSession::new("unix".into(), 0);
        s.handle_input(b"tap both\n");
        assert!(matches!(s.poll(0), Some(Ask::Tap(TapCommand::Tap(_)))));
        s.answer("ok tap eye=both every=1");
        out(&mut s.link);
        for i in 0..1000 {
            s.handle_input(format!("release {i}\n").as_bytes());
            assert_eq!(s.poll(0), Some(Ask::Tap(TapCommand::Release { seq: i, eye: None })), "a tap's release {i}");
            s.answer(&format!("ok release seq={i}"));
            out(&mut s.link);
        }
    }

    #[test]
    fn a_watcher_that_does_not_read_is_closed() {
        let mut s = ControlLineSession::new("unix".into(), 0);
        let ev = "event crop eye=0 seq=1 crop=0,0,64,64";
        let mut n = 0;
        while s.push_event(ev, 0) {
            n += 1;
            assert!(n < 1_000_000);
        }
        assert!(s.link.is_closing());
    }
}
