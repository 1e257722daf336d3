//! The `/control` WebSocket: the control language over text messages (one or more lines per
//! message, one reply message per command), `event …` messages after `watch`. A browser may
//! steer when no token is set, or once it sent the token (`auth`); until then it is
//! view-only. A binary message is a client speaking something else: close 1003.

use std::collections::VecDeque;

use super::commands::{Admit, CommandGate};
use super::websocket::{Message, WsEndpoint};
use super::{Ask, Expired, Link};
use crate::control::reply::Reply;
use crate::limits::{CLOSE_GRACE_US, MAX_REPLY_BACKLOG, MAX_WATCH_BACKLOG, MAX_WS_MESSAGE};
use crate::ws::frame::close;

pub struct ControlWsSession {
    ws: WsEndpoint,
    gate: CommandGate,
    /// Lines of the current message not yet handled.
    lines: VecDeque<String>,
}

impl ControlWsSession {
    pub fn new(link: Link, accept: Vec<u8>, may_steer: bool, ping_us: u64, now_us: u64) -> Self {
        ControlWsSession {
            ws: WsEndpoint::new(link, accept, MAX_WS_MESSAGE, ping_us, now_us),
            gate: CommandGate::new(may_steer, now_us),
            lines: VecDeque::new(),
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
        self.ws.wants_input() && self.ws.link.outbox.pending_bytes() < MAX_REPLY_BACKLOG && !self.gate.reading_paused()
    }

    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        while !self.gate.awaiting() && self.ws.link.outbox.pending_bytes() < MAX_REPLY_BACKLOG {
            let Some(line) = self.lines.pop_front() else {
                match self.ws.next_message(now_us)? {
                    Message::Text(t) => {
                        self.lines.extend(t.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
                    }
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
