//! The WebSocket frame codec (`ws::frame::decode`, both roles) and the server-side
//! `ws::connection::Connection` state machine.
//!
//! Input: one configuration byte, then the bytes. Configuration bit 7 picks the mode:
//! - 0 (raw): the bytes are the wire, as a peer might send them;
//! - 1 (structured): the bytes describe frames (`[b0, len, payload…]` each) that are masked
//!   and encoded properly first, so the fuzzer reaches deep into fragmentation, control frames
//!   and closing without having to guess masks and lengths.
//!
//! Bits 0-2 pick the payload/message limit, bits 3-6 seed the chunking. Properties:
//! - `decode` never claims more bytes than it was given; a decoded frame respects the limit and
//!   the control-frame rules; the frame alone decodes the same, one byte less is "need more";
//! - round trip: re-encoding a decoded frame decodes to the same frame, byte-identical when
//!   the input used the shortest length form;
//! - an error is final: more bytes after it give the same error;
//! - "need more" only while the input is shorter than the longest header plus the limit;
//! - `Connection::read` gives the same events, replies and error whether the bytes arrive at
//!   once or in arbitrary chunks; it never grows the input; every message respects the limit;
//!   every frame it wants sent is one well-formed server frame; nothing follows a close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pieyes::ws::connection::{Connection, Event};
use pieyes::ws::frame::{Frame, Opcode, Role, close, decode, encode_header, encode_masked};

const LIMITS: [usize; 8] = [0, 1, 2, 125, 126, 1000, 65535, 65536];

fn encode_as(role: Role, f: &Frame, mask: [u8; 4]) -> Vec<u8> {
    match role {
        Role::Server => encode_masked(f.fin, f.opcode, &f.payload, mask),
        Role::Client => {
            let mut h = [0u8; 10];
            let n = encode_header(f.fin, f.opcode, f.payload.len(), &mut h);
            let mut out = h[..n].to_vec();
            out.extend_from_slice(&f.payload);
            out
        }
    }
}

fn check_decode(buf: &[u8], role: Role, max: usize) {
    match decode(buf, role, max) {
        Ok(Some((f, n))) => {
            assert!((2..=buf.len()).contains(&n), "consumed {n} of {}", buf.len());
            assert!(f.payload.len() <= max);
            if f.opcode.is_control() {
                assert!(f.fin && f.payload.len() <= 125, "{f:?}");
            }
            assert_eq!(decode(&buf[..n], role, max), Ok(Some((f.clone(), n))));
            assert_eq!(decode(&buf[..n - 1], role, max), Ok(None));
            let mask =
                if role == Role::Server { buf[n - f.payload.len() - 4..][..4].try_into().unwrap() } else { [0; 4] };
            let again = encode_as(role, &f, mask);
            assert_eq!(decode(&again, role, max), Ok(Some((f.clone(), again.len()))), "round trip");
            let shortest = match f.payload.len() {
                0..=125 => buf[1] & 0x7f < 126,
                126..=0xffff => buf[1] & 0x7f == 126,
                _ => true,
            };
            if shortest {
                assert_eq!(again, &buf[..n], "byte-identical re-encoding");
            }
        }
        Ok(None) => assert!(buf.len() < 14 + max, "waiting for more after {} bytes (limit {max})", buf.len()),
        Err(e) => {
            assert!(matches!(e.code, close::PROTOCOL_ERROR | close::TOO_BIG), "{e:?}");
            let mut more = buf.to_vec();
            more.extend_from_slice(&[0xa5; 16]);
            assert_eq!(decode(&more, role, max), Err(e), "an error is final");
        }
    }
}

/// Everything observable from a connection, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Event(Event),
    Sent(Vec<u8>),
    Error(u16),
}

struct Fed {
    conn: Connection,
    input: Vec<u8>,
    seen: Vec<Seen>,
    done: bool,
    max: usize,
}

impl Fed {
    fn new(max: usize) -> Fed {
        Fed { conn: Connection::new(Role::Server, max), input: Vec::new(), seen: Vec::new(), done: false, max }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        self.input.extend_from_slice(bytes);
        loop {
            let before = self.input.len();
            let r = self.conn.read(&mut self.input);
            assert!(self.input.len() <= before, "read grew its input");
            while let Some(out) = self.conn.take_outgoing() {
                // Every frame the protocol sends is one complete, valid server frame.
                let (f, n) = decode(&out, Role::Client, 125).expect("valid frame").expect("complete frame");
                assert_eq!(n, out.len());
                assert!(matches!(f.opcode, Opcode::Pong | Opcode::Close), "{f:?}");
                self.seen.push(Seen::Sent(out));
            }
            match r {
                Ok(None) => return,
                Ok(Some(ev)) => {
                    match &ev {
                        Event::Text(t) => assert!(t.len() <= self.max),
                        Event::Binary(b) => assert!(b.len() <= self.max),
                        Event::Pong(p) => assert!(p.len() <= 125),
                        Event::Closed { .. } => assert!(self.conn.is_closed()),
                    }
                    let closed = matches!(ev, Event::Closed { .. });
                    self.seen.push(Seen::Event(ev));
                    if closed {
                        // Nothing is read after a close frame.
                        let mut rest = self.input.clone();
                        rest.extend_from_slice(b"\x81\x80\0\0\0\0");
                        assert_eq!(self.conn.read(&mut rest), Ok(None));
                        assert_eq!(self.conn.take_outgoing(), None);
                        self.done = true;
                        return;
                    }
                }
                Err(e) => {
                    // The daemon answers with a close frame carrying the code.
                    assert!(matches!(e.code, close::PROTOCOL_ERROR | close::TOO_BIG | close::INVALID_PAYLOAD));
                    if let Some(f) = self.conn.close(e.code, e.reason) {
                        let (cf, _) = decode(&f, Role::Client, 125).unwrap().unwrap();
                        assert_eq!(u16::from_be_bytes([cf.payload[0], cf.payload[1]]), e.code);
                    }
                    self.seen.push(Seen::Error(e.code));
                    self.done = true;
                    return;
                }
            }
        }
    }
}

/// Structured mode: `[b0, len, payload…]*` → properly masked frames. `b0` keeps FIN, the RSV
/// bits and the opcode nibble as given (so invalid ones still occur); `len` is capped by the
/// bytes left.
fn build_frames(mut spec: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut k = 0u8;
    while let [b0, len, rest @ ..] = spec {
        let n = (*len as usize).min(rest.len());
        let mask = [k, k.wrapping_mul(7), 0x5a, k ^ 0xff];
        k = k.wrapping_add(1);
        let start = wire.len();
        // Any opcode nibble: encode as Text, then patch the first byte.
        wire.extend(encode_masked(true, Opcode::Text, &rest[..n], mask));
        wire[start] = *b0;
        spec = &rest[n..];
    }
    wire
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else { return };
    let max = LIMITS[(cfg & 7) as usize];
    let wire = if cfg & 0x80 != 0 { build_frames(rest) } else { rest.to_vec() };

    for role in [Role::Server, Role::Client] {
        check_decode(&wire, role, max);
    }

    let mut whole = Fed::new(max);
    whole.feed(&wire);
    let mut chunked = Fed::new(max);
    let mut seed = (cfg as u32 >> 3) ^ (wire.len() as u32).wrapping_mul(0x9e37_79b9) | 1;
    let mut at = 0;
    while at < wire.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % 9).pow(2).min(wire.len() - at - 1);
        chunked.feed(&wire[at..at + n]);
        at += n;
    }
    assert_eq!(whole.seen, chunked.seen, "chunking changed what the connection did");
});
