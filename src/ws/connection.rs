//! One WebSocket connection's protocol state (rustls-style: it only buffers and decides; the
//! caller reads and writes). It reassembles fragmented messages, answers pings, validates UTF-8
//! and close frames, and runs the closing handshake. The daemon is the server; the client role
//! (`cli::ws_client`: `pieyes record`, the tests and the benchmarks) masks every frame it sends
//! with a fresh key, as RFC 6455 §5.3 asks.

use std::cell::Cell;
use std::collections::VecDeque;

use super::frame::{self, FrameError, Opcode, Role, close, decode};

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// A ping came in; its pong is already queued (`take_outgoing`). Reported so a caller can
    /// count every frame against a rate limit, not every read.
    Ping,
    Pong(Vec<u8>),
    /// The peer closed; our answering close frame (if one was due) is already queued.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

pub struct Connection {
    role: Role,
    max_message: usize,
    fragments: Option<(Opcode, Vec<u8>)>,
    close_sent: bool,
    close_received: bool,
    /// Frames the protocol itself wants sent (pongs, close replies), in order.
    outgoing: VecDeque<Vec<u8>>,
    frames_received: u64,
    /// Client role: the state the next frame's masking key is drawn from (xorshift32, never 0).
    mask_state: Cell<u32>,
}

fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Connection {
    pub fn new(role: Role, max_message: usize) -> Self {
        Connection {
            role,
            max_message,
            fragments: None,
            close_sent: false,
            close_received: false,
            outgoing: VecDeque::new(),
            frames_received: 0,
            mask_state: Cell::new(0x9e37_79b9),
        }
    }

    /// Seed the client's masking keys (a client should pass something unpredictable; the
    /// default seed is fixed, which is enough for tests that compare bytes).
    pub fn with_mask_seed(self, seed: u32) -> Self {
        self.mask_state.set(seed.max(1));
        self
    }

    /// The next masking key: a new one per frame (xorshift32).
    fn next_mask(&self) -> [u8; 4] {
        let mut x = self.mask_state.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state.set(x);
        x.to_be_bytes()
    }

    pub fn is_closing(&self) -> bool {
        self.close_sent || self.close_received
    }

    /// True once both sides have sent a close frame: the TCP connection may go.
    pub fn is_closed(&self) -> bool {
        self.close_sent && self.close_received
    }

    /// Frames decoded so far (for a per-client frame rate limit).
    pub fn frames_received(&self) -> u64 {
        self.frames_received
    }

    /// Whether data may still be sent: not once a close frame has gone out or come in (after a
    /// close only the closing handshake may follow, RFC 6455 §5.5.1).
    pub fn may_send(&self) -> bool {
        !self.is_closing()
    }

    /// A ping to send (keepalive); the peer's pong comes back as `Event::Pong`. None once
    /// closing.
    pub fn ping(&self, payload: &[u8]) -> Option<Vec<u8>> {
        self.may_send().then(|| self.frame(Opcode::Ping, payload))
    }

    /// Next frame the protocol wants written (pong, close).
    pub fn take_outgoing(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    /// Start (or answer) the closing handshake. Returns the close frame, or None if one was
    /// already sent.
    pub fn close(&mut self, code: u16, reason: &str) -> Option<Vec<u8>> {
        if self.close_sent {
            return None;
        }
        self.close_sent = true;
        Some(self.frame(Opcode::Close, &frame::close_payload(code, reason)))
    }

    fn frame(&self, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        match self.role {
            Role::Server => frame::encode(opcode, payload),
            Role::Client => frame::encode_masked(true, opcode, payload, self.next_mask()),
        }
    }

    /// Encode a data message for sending; None once a close frame was sent or received, so a
    /// closing connection cannot be made to send data.
    pub fn message(&self, opcode: Opcode, payload: &[u8]) -> Option<Vec<u8>> {
        self.may_send().then(|| self.frame(opcode, payload))
    }

    /// Consume frames from the front of `input` until one yields an event or the input runs
    /// out. On error the caller should send `close(err.code, err.reason)` and stop reading.
    pub fn read(&mut self, input: &mut Vec<u8>) -> Result<Option<Event>, FrameError> {
        let mut used = 0;
        let result = loop {
            if self.close_received {
                break Ok(None); // nothing is valid after a close frame
            }
            let f = match decode(&input[used..], self.role, self.max_message) {
                Ok(Some((f, n))) => {
                    used += n;
                    self.frames_received += 1;
                    f
                }
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            };
            match self.on_frame(f) {
                Ok(Some(ev)) => break Ok(Some(ev)),
                Ok(None) => continue,
                Err(e) => break Err(e),
            }
        };
        input.drain(..used);
        result
    }

    fn on_frame(&mut self, f: frame::Frame) -> Result<Option<Event>, FrameError> {
        let proto = |reason| FrameError { code: close::PROTOCOL_ERROR, reason };
        match f.opcode {
            Opcode::Ping => {
                if !self.close_sent {
                    let pong = self.frame(Opcode::Pong, &f.payload);
                    self.outgoing.push_back(pong);
                }
                Ok(Some(Event::Ping))
            }
            Opcode::Pong => Ok(Some(Event::Pong(f.payload))),
            Opcode::Close => {
                self.close_received = true;
                let (code, reason) = match f.payload.len() {
                    0 => (None, String::new()),
                    1 => return Err(proto("close payload of one byte")),
                    _ => {
                        let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                        if !valid_close_code(code) {
                            return Err(proto("invalid close code"));
                        }
                        let reason = String::from_utf8(f.payload[2..].to_vec()).map_err(|_| FrameError {
                            code: close::INVALID_PAYLOAD,
                            reason: "close reason not UTF-8",
                        })?;
                        (Some(code), reason)
                    }
                };
                if let Some(reply) = self.close(code.unwrap_or(close::NORMAL), "") {
                    self.outgoing.push_back(reply);
                }
                Ok(Some(Event::Closed { code, reason }))
            }
            Opcode::Text | Opcode::Binary => {
                if self.fragments.is_some() {
                    return Err(proto("new message inside a fragmented one"));
                }
                if f.fin {
                    return self.finish(f.opcode, f.payload).map(Some);
                }
                self.fragments = Some((f.opcode, f.payload));
                Ok(None)
            }
            Opcode::Continuation => {
                let Some((op, mut buf)) = self.fragments.take() else {
                    return Err(proto("continuation without a message"));
                };
                if buf.len() + f.payload.len() > self.max_message {
                    return Err(FrameError { code: close::TOO_BIG, reason: "message too big" });
                }
                buf.extend_from_slice(&f.payload);
                if f.fin {
                    return self.finish(op, buf).map(Some);
                }
                self.fragments = Some((op, buf));
                Ok(None)
            }
        }
    }

    fn finish(&mut self, op: Opcode, payload: Vec<u8>) -> Result<Event, FrameError> {
        if op == Opcode::Text {
            String::from_utf8(payload)
                .map(Event::Text)
                .map_err(|_| FrameError { code: close::INVALID_PAYLOAD, reason: "text message is not UTF-8" })
        } else {
            Ok(Event::Binary(payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode_masked;

    const M: [u8; 4] = [1, 2, 3, 4];

    fn server() -> Connection {
        Connection::new(Role::Server, 64 * 1024)
    }

    #[test]
    fn reassembles_fragments_with_a_ping_in_between() {
        let mut c = server();
        let mut input = encode_masked(false, Opcode::Text, b"sta", M);
        input.extend(encode_masked(true, Opcode::Ping, b"p", M));
        input.extend(encode_masked(false, Opcode::Continuation, b"tu", M));
        input.extend(encode_masked(true, Opcode::Continuation, b"s", M));
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Ping));
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Text("status".into())));
        assert!(input.is_empty());
        assert_eq!(c.take_outgoing().unwrap(), frame::encode(Opcode::Pong, b"p"));
        assert_eq!(c.take_outgoing(), None);
    }

    #[test]
    fn a_split_frame_waits_and_keeps_its_bytes() {
        let mut c = server();
        let whole = encode_masked(true, Opcode::Binary, b"abcdef", M);
        let mut input = whole[..4].to_vec();
        assert_eq!(c.read(&mut input).unwrap(), None);
        assert_eq!(input.len(), 4);
        input.extend_from_slice(&whole[4..]);
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Binary(b"abcdef".to_vec())));
    }

    #[test]
    fn close_handshake_echoes_the_code() {
        let mut c = server();
        let mut input = encode_masked(true, Opcode::Close, &frame::close_payload(1001, "bye"), M);
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Closed { code: Some(1001), reason: "bye".into() }));
        assert_eq!(c.take_outgoing().unwrap(), frame::encode(Opcode::Close, &1001u16.to_be_bytes()));
        assert!(c.is_closed());
        assert_eq!(c.close(1000, ""), None, "only one close frame is ever sent");
    }

    #[test]
    fn no_data_after_a_close_either_way() {
        let mut ours = server();
        assert!(ours.message(Opcode::Text, b"hi").is_some() && ours.ping(b"p").is_some());
        assert!(ours.close(1000, "bye").is_some());
        assert_eq!(ours.message(Opcode::Text, b"late"), None, "we sent a close: no more data");
        assert_eq!(ours.ping(b"p"), None);
        let mut theirs = server();
        let mut input = encode_masked(true, Opcode::Close, &frame::close_payload(1000, ""), M);
        assert!(matches!(theirs.read(&mut input), Ok(Some(Event::Closed { .. }))));
        assert_eq!(theirs.message(Opcode::Binary, b"late"), None, "they sent a close: no more data");
    }

    #[test]
    fn every_ping_is_an_event_so_a_flood_can_be_counted_frame_by_frame() {
        let mut c = server();
        let mut input = Vec::new();
        for _ in 0..5 {
            input.extend(encode_masked(true, Opcode::Ping, b"", M));
        }
        let mut pings = 0;
        while let Ok(Some(Event::Ping)) = c.read(&mut input) {
            pings += 1;
        }
        assert_eq!(pings, 5);
        assert_eq!(std::iter::from_fn(|| c.take_outgoing()).count(), 5);
    }

    #[test]
    fn protocol_violations() {
        let code = |input: Vec<u8>| server().read(&mut input.clone()).unwrap_err().code;
        assert_eq!(code(encode_masked(true, Opcode::Text, &[0xff, 0xfe], M)), close::INVALID_PAYLOAD);
        assert_eq!(code(encode_masked(true, Opcode::Continuation, b"x", M)), close::PROTOCOL_ERROR);
        let mut two = encode_masked(false, Opcode::Text, b"a", M);
        two.extend(encode_masked(true, Opcode::Text, b"b", M));
        assert_eq!(code(two), close::PROTOCOL_ERROR);
        assert_eq!(code(encode_masked(true, Opcode::Close, &[3], M)), close::PROTOCOL_ERROR);
        assert_eq!(code(encode_masked(true, Opcode::Close, &999u16.to_be_bytes(), M)), close::PROTOCOL_ERROR);
        assert_eq!(code(encode_masked(true, Opcode::Close, &[0x03, 0xe8, 0xff], M)), close::INVALID_PAYLOAD);
        let mut c = Connection::new(Role::Server, 10);
        let mut big = encode_masked(false, Opcode::Binary, &[0; 8], M);
        big.extend(encode_masked(true, Opcode::Continuation, &[0; 8], M));
        assert_eq!(c.read(&mut big).unwrap_err().code, close::TOO_BIG);
    }

    fn client() -> Connection {
        Connection::new(Role::Client, 64 * 1024).with_mask_seed(7)
    }

    #[test]
    fn a_client_masks_every_frame_with_a_fresh_key() {
        let c = client();
        let (a, b) = (c.message(Opcode::Text, b"status").unwrap(), c.message(Opcode::Text, b"status").unwrap());
        assert_eq!(a[1], 0x80 | 6, "masked, 6 bytes");
        assert_ne!(a[2..6], b[2..6], "a new masking key per frame");
        assert_ne!(a[6..], *b"status", "the payload goes masked");
        let mut s = server();
        let mut input = [a, b].concat();
        assert_eq!(s.read(&mut input).unwrap(), Some(Event::Text("status".into())));
        assert_eq!(s.read(&mut input).unwrap(), Some(Event::Text("status".into())));
        assert!(input.is_empty());
    }

    #[test]
    fn a_client_reads_server_frames_and_answers_pings_and_closes_masked() {
        let mut c = client();
        let mut input = frame::encode(Opcode::Ping, b"hb");
        input.extend(frame::encode(Opcode::Binary, &[1, 2]));
        input.extend(frame::encode(Opcode::Close, &frame::close_payload(1001, "")));
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Ping));
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Binary(vec![1, 2])));
        assert_eq!(c.read(&mut input).unwrap(), Some(Event::Closed { code: Some(1001), reason: String::new() }));
        let mut s = server();
        let mut back: Vec<u8> = std::iter::from_fn(|| c.take_outgoing()).flatten().collect();
        assert_eq!(s.read(&mut back).unwrap(), Some(Event::Pong(b"hb".to_vec())));
        assert_eq!(s.read(&mut back).unwrap(), Some(Event::Closed { code: Some(1001), reason: String::new() }));
        assert!(c.is_closed());
        // A server never masks: a masked frame is a protocol error for a client.
        let mut masked = encode_masked(true, Opcode::Text, b"x", M);
        assert_eq!(client().read(&mut masked).unwrap_err().code, close::PROTOCOL_ERROR);
    }
}
