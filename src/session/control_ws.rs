//! The `/control` WebSocket: the control language over text messages (one or more lines per
//! message, one reply message per command), `event …` messages after `watch`. A browser may
//! steer when no token is set, or once it sent the token (`auth`); until then it is
//! view-only. A binary message is a client speaking something else: close 1003.

use super::commands::{Admit, CommandGate};
use super::websocket::{Message, WsEndpoint};
use super::{Ask, Expired, Link};
use crate::control::reply::Reply;
use crate::limits::{CLOSE_GRACE_US, MAX_REPLY_BACKLOG, MAX_WATCH_BACKLOG, MAX_WS_MESSAGE};
use crate::ws::frame::close;

pub struct ControlWsSession {
    ws: WsEndpoint,
    gate: CommandGate,
    /// The current message, and where its next unhandled line starts.
    text: String,
    at: usize,
}

impl ControlWsSession {
    pub fn new(link: Link, accept: Vec<u8>, may_steer: bool, ping_us: u64, now_us: u64) -> Self {
        ControlWsSession {
            ws: WsEndpoint::new(link, accept, MAX_WS_MESSAGE, ping_us, now_us),
            gate: CommandGate::new(may_steer, now_us),
            text: String::new(),
            at: 0,
        }
    }

    pub fn link(&self) -> &Link {
        &self.ws.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.ws.link
    }

    pub fn endpoint_mut(&mut self) -> &mut WsEndpoint {
        &mut self.ws
    }

    pub fn gate(&self) -> &CommandGate {
        &self.gate
    }

    pub fn handle_input(&mut self, data: &[u8]) {
        self.ws.handle_input(data);
    }

    pub fn wants_input(&self) -> bool {
        self.ws.wants_input() && !self.backlogged() && !self.gate.reading_paused()
    }

    /// The replies already queued are unread past the backlog limit: take no more commands.
    pub fn backlogged(&self) -> bool {
        self.ws.link.outbox.pending_bytes() >= MAX_REPLY_BACKLOG
    }

    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        while !self.gate.awaiting() && !self.backlogged() {
            let Some(line) = self.next_line() else {
                match self.ws.next_message(now_us)? {
                    Message::Text(t) => (self.text, self.at) = (t, 0),
                    Message::Binary(_) => {
                        crate::info!("client {}: binary message on /control; closing (1003)", self.ws.link.peer);
                        self.ws.close(close::UNSUPPORTED_DATA, "control commands are text", now_us, CLOSE_GRACE_US);
                        return None;
                    }
                }
                continue;
            };
            match self.gate.admit(&line, now_us) {
                Admit::Execute(cmd) => return Some(Ask::Execute(cmd)),
                Admit::Answer(r) => {
                    self.ws.send_text(&r.to_string());
                }
                Admit::Drop => {}
            }
            if self.gate.limited() {
                // The rest of a rate-limited burst goes at once: counted by its newlines (one
                // pass, blank lines too), with no String per line.
                let rest = &self.text.as_bytes()[self.at..];
                let lines = rest.iter().filter(|&&b| b == b'\n').count() + usize::from(!rest.ends_with(b"\n"));
                self.gate.dropped_lines(if rest.is_empty() { 0 } else { lines as u64 });
                self.at = self.text.len();
            }
        }
        None
    }

    /// The current message's next line that is not blank.
    fn next_line(&mut self) -> Option<String> {
        while self.at < self.text.len() {
            let rest = &self.text[self.at..];
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            self.at += end;
            let line = rest[..end].strip_suffix('\n').unwrap_or(&rest[..end]);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !line.trim().is_empty() {
                return Some(line.to_string());
            }
        }
        None
    }

    pub fn reply(&mut self, r: &Reply) {
        self.gate.replied(r, &self.ws.link.peer);
        self.ws.send_text(&r.to_string());
    }

    /// One `watch` event; false (and closing) when the client lets events pile up unread.
    pub fn push_event(&mut self, line: &str, now_us: u64) -> bool {
        if self.ws.link.outbox.pending_bytes() > MAX_WATCH_BACKLOG {
            crate::warn!("client {}: not reading its watch events; closing", self.ws.link.peer);
            self.ws.link.close_after_flush(now_us, CLOSE_GRACE_US);
            return false;
        }
        self.ws.send_text(line)
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        [self.ws.poll_timeout(), self.gate.poll_timeout()].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        self.gate.handle_timeout(now_us);
        self.ws.handle_timeout(now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::command::Command;
    use crate::ws::frame::{Opcode, encode_masked};

    const M: [u8; 4] = [3, 1, 4, 1];

    fn session(may_steer: bool) -> ControlWsSession {
        ControlWsSession::new(Link::new("c".into(), 0), Vec::new(), may_steer, 1_000_000, 0)
    }

    #[test]
    fn lines_of_one_message_are_commands_in_order() {
        let mut s = session(true);
        s.handle_input(&encode_masked(true, Opcode::Text, b"clock\n\nkeyframe", M));
        assert_eq!(s.poll(0), Some(Ask::Execute(Command::Clock)));
        s.reply(&Reply::Clock(5));
        assert_eq!(s.poll(0), Some(Ask::Execute(Command::Keyframe)));
        s.reply(&Reply::Keyframe);
        assert_eq!(s.poll(0), None);
    }

    #[test]
    fn view_only_browsers_may_look_but_not_steer() {
        let mut s = session(false);
        s.handle_input(&encode_masked(true, Opcode::Text, b"zoom 0 2", M));
        assert_eq!(s.poll(0), None, "answered by the gate");
        assert!(s.link().outbox.pending_bytes() > 0);
    }

    #[test]
    fn a_flooding_message_gets_replies_only_for_what_was_taken() {
        let mut s = session(true);
        s.handle_input(&encode_masked(true, Opcode::Text, &b"clock\n".repeat(10_000), M));
        let mut executed = 0;
        while let Some(Ask::Execute(_)) = s.poll(0) {
            executed += 1;
            s.reply(&Reply::Clock(1));
        }
        assert!((50..=200).contains(&executed), "the burst's budget: {executed}");
        assert_eq!(s.gate.dropped, 10_000 - executed as u64, "every line not taken is counted as dropped");
        assert_eq!(s.next_line(), None, "the rest went at once");
    }

    #[test]
    fn a_binary_message_closes_with_1003() {
        let mut s = session(true);
        s.handle_input(&encode_masked(true, Opcode::Binary, b"\x01", M));
        assert_eq!(s.poll(0), None);
        assert!(s.link().is_closing());
    }

    #[test]
    fn after_a_close_no_event_or_reply_goes_out() {
        let mut s = session(true);
        s.handle_input(&encode_masked(true, Opcode::Close, &[0x03, 0xe8], M));
        assert_eq!(s.poll(0), None);
        let before = s.link().outbox.pending_bytes();
        assert!(!s.push_event("event pause", 0));
        s.reply(&Reply::Paused);
        assert_eq!(s.link().outbox.pending_bytes(), before);
    }
}
