//! What the two WebSocket roles share once upgraded: the RFC 6455 connection (`ws::Connection`)
//! fed from an input buffer, its protocol replies (pongs, the closing handshake) queued in
//! order, a frame budget counted frame by frame, and keepalive — a quiet peer is pinged after
//! `ping_us` and dropped when nothing comes back within as long again.

use super::{Expired, Link};
use crate::limits::{CLOSE_GRACE_US, MAX_UNPARSED_INPUT, MAX_WS_FRAMES_PER_S, TokenBucket};
use crate::ws::connection::{Connection, Event};
use crate::ws::frame::{Opcode, Role, close};

pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

pub struct WsEndpoint {
    pub link: Link,
    ws: Connection,
    input: Vec<u8>,
    frames_seen: u64,
    frame_budget: TokenBucket,
    ping_us: u64,
    /// A keepalive ping is out and unanswered since then.
    ping_sent_us: Option<u64>,
}

impl WsEndpoint {
    /// After the handshake: `accept` is the 101 response, queued first.
    pub fn new(mut link: Link, accept: Vec<u8>, max_message: usize, ping_us: u64, now_us: u64) -> WsEndpoint {
        link.send(accept);
        WsEndpoint {
            link,
            ws: Connection::new(Role::Server, max_message),
            input: Vec::new(),
            frames_seen: 0,
            frame_budget: TokenBucket::new(MAX_WS_FRAMES_PER_S, 2 * MAX_WS_FRAMES_PER_S, now_us),
            ping_us,
            ping_sent_us: None,
        }
    }

    pub fn handle_input(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        self.ping_sent_us = None; // any byte shows the peer is alive
    }

    pub fn wants_input(&self) -> bool {
        self.input.len() < MAX_UNPARSED_INPUT
    }

    /// The next data message; pings, pongs and the closing handshake are handled here.
    pub fn next_message(&mut self, now_us: u64) -> Option<Message> {
        while !self.link.is_closing() {
            let ev = self.ws.read(&mut self.input);
            let frames = self.ws.frames_received();
            let new = (frames - self.frames_seen) as u32;
            self.frames_seen = frames;
            // Over the budget: close with 1008. Unless the frame over it was the peer's own
            // Close: the reply to it is queued already, and that handshake ends things anyway.
            let peer_closed = matches!(ev, Ok(Some(Event::Closed { .. })));
            if new > 0 && !self.frame_budget.allow(new, now_us) && !peer_closed {
                crate::info!("client {}: more than {MAX_WS_FRAMES_PER_S} WebSocket frames/s; closing", self.link.peer);
                while self.ws.take_outgoing().is_some() {} // no pong for the frame over the limit
                self.close(close::POLICY_VIOLATION, "too many frames", now_us, CLOSE_GRACE_US);
                return None;
            }
            while let Some(f) = self.ws.take_outgoing() {
                self.link.outbox.push_bytes(f); // pongs and our close reply: protocol, in order
            }
            match ev {
                Ok(None) => return None,
                Ok(Some(Event::Text(t))) => return Some(Message::Text(t)),
                Ok(Some(Event::Binary(b))) => return Some(Message::Binary(b)),
                Ok(Some(Event::Ping | Event::Pong(_))) => continue,
                Ok(Some(Event::Closed { .. })) => self.link.close_after_flush(now_us, CLOSE_GRACE_US),
                Err(e) => {
                    crate::info!(
                        "client {}: websocket protocol error: {} (close {})",
                        self.link.peer,
                        e.reason,
                        e.code
                    );
                    self.close(e.code, e.reason, now_us, CLOSE_GRACE_US);
                }
            }
        }
        None
    }

    /// Queue a text message; false (nothing queued) once a close was sent or received.
    pub fn send_text(&mut self, text: &str) -> bool {
        match self.ws.message(Opcode::Text, text.as_bytes()) {
            Some(f) if !self.link.is_closing() => {
                self.link.send(f);
                true
            }
            _ => false,
        }
    }

    /// Whether data may still go out (no close frame either way, not closing).
    pub fn may_send(&self) -> bool {
        self.ws.may_send() && !self.link.is_closing()
    }

    /// Start the closing handshake: our close frame goes out after what is queued.
    pub fn close(&mut self, code: u16, reason: &str, now_us: u64, grace_us: u64) {
        if let Some(f) = self.ws.close(code, reason) {
            self.link.outbox.push_bytes(f);
        }
        self.link.close_after_flush(now_us, grace_us);
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        Some(self.ping_sent_us.unwrap_or(self.link.last_rx_us) + self.ping_us)
    }

    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        match self.ping_sent_us {
            Some(sent) if now_us.saturating_sub(sent) > self.ping_us => Some("no answer to a ping"),
            None if now_us.saturating_sub(self.link.last_rx_us) > self.ping_us => {
                if let Some(ping) = self.ws.ping(b"pieyes") {
                    self.link.send(ping);
                }
                self.ping_sent_us = Some(now_us);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{self, encode_masked};

    const M: [u8; 4] = [1, 2, 3, 4];

    fn endpoint() -> WsEndpoint {
        WsEndpoint::new(Link::new("t".into(), 0), b"101".to_vec(), 1024, 1_000, 0)
    }

    fn drain(l: &mut Link) -> Vec<u8> {
        l.outbox.drain_to_vec()
    }

    #[test]
    fn messages_come_out_and_pings_are_answered_in_order() {
        let mut e = endpoint();
        assert_eq!(drain(&mut e.link), b"101");
        let mut input = encode_masked(true, Opcode::Ping, b"x", M);
        input.extend(encode_masked(true, Opcode::Text, b"status", M));
        e.handle_input(&input);
        assert!(matches!(e.next_message(5), Some(Message::Text(t)) if t == "status"));
        assert_eq!(drain(&mut e.link), frame::encode(Opcode::Pong, b"x"));
        assert!(e.next_message(5).is_none());
    }

    #[test]
    fn a_ping_flood_in_one_write_is_cut_off_by_the_frame_count() {
        let mut e = endpoint();
        drain(&mut e.link);
        let mut input = Vec::new();
        for _ in 0..10_000 {
            input.extend(encode_masked(true, Opcode::Ping, b"", M));
        }
        e.handle_input(&input);
        assert!(e.next_message(0).is_none());
        assert!(e.link.is_closing(), "closed for the flood");
        let out = drain(&mut e.link);
        let pongs = out.windows(2).filter(|w| w == &[0x8a, 0x00]).count();
        assert!(pongs <= 2 * MAX_WS_FRAMES_PER_S as usize, "{pongs} pongs for a burst of {}", 2 * MAX_WS_FRAMES_PER_S);
        assert!(out.ends_with(&frame::encode(
            Opcode::Close,
            &frame::close_payload(close::POLICY_VIOLATION, "too many frames")
        )));
    }

    #[test]
    fn a_close_that_goes_over_the_frame_budget_is_still_answered() {
        let mut e = endpoint();
        drain(&mut e.link);
        let mut input = Vec::new();
        for _ in 0..2 * MAX_WS_FRAMES_PER_S {
            input.extend(encode_masked(true, Opcode::Ping, b"", M)); // the whole burst allowance
        }
        input.extend(encode_masked(true, Opcode::Close, &frame::close_payload(1000, ""), M));
        e.handle_input(&input);
        assert!(e.next_message(0).is_none());
        assert!(e.link.is_closing());
        let out = drain(&mut e.link);
        assert!(
            out.ends_with(&frame::encode(Opcode::Close, &1000u16.to_be_bytes())),
            "the peer's close is answered, not dropped for the budget: {:?}",
            &out[out.len().saturating_sub(8)..]
        );
    }

    #[test]
    fn after_a_close_nothing_new_is_sent() {
        let mut e = endpoint();
        drain(&mut e.link);
        e.handle_input(&encode_masked(true, Opcode::Close, &frame::close_payload(1000, ""), M));
        assert!(e.next_message(1).is_none());
        assert!(e.link.is_closing());
        assert!(!e.send_text("late") && !e.may_send());
        assert_eq!(drain(&mut e.link), frame::encode(Opcode::Close, &1000u16.to_be_bytes()), "only the close reply");
    }

    #[test]
    fn a_quiet_peer_is_pinged_then_dropped() {
        let mut e = endpoint();
        drain(&mut e.link);
        assert_eq!(e.poll_timeout(), Some(1_000));
        assert_eq!(e.handle_timeout(1_001), None);
        assert_eq!(drain(&mut e.link), frame::encode(Opcode::Ping, b"pieyes"));
        assert_eq!(e.poll_timeout(), Some(2_001));
        assert_eq!(e.handle_timeout(2_002), Some("no answer to a ping"));
        let mut e = endpoint();
        e.handle_timeout(1_001);
        e.link.received(1_500);
        e.handle_input(&encode_masked(true, Opcode::Pong, b"pieyes", M));
        assert!(e.next_message(1_500).is_none());
        assert_eq!(e.handle_timeout(2_002), None, "the pong came back");
    }
}
