//! The frame codec (RFC 6455 §5). Decoding checks everything a server must: clients mask,
//! reserved bits are zero, opcodes are known, control frames are short and unfragmented, and
//! no frame is bigger than the limit; each failure names the close code to answer with.

pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xa,
}

impl Opcode {
    fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// A decoding failure: the close code to send and a reason for the log / close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

const fn err(code: u16, reason: &'static str) -> FrameError {
    FrameError { code, reason }
}

/// Which side decodes: a server requires masked frames, a client requires unmasked ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Decode one frame from the front of `buf`. `Ok(None)`: incomplete. The payload is unmasked.
pub fn decode(buf: &[u8], role: Role, max_payload: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(err(close::PROTOCOL_ERROR, "reserved bits set"));
    }
    let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(err(close::PROTOCOL_ERROR, "unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(err(close::PROTOCOL_ERROR, "client frame not masked")),
        (Role::Client, true) => return Err(err(close::PROTOCOL_ERROR, "server frame masked")),
        _ => {}
    }
    let (len, mut pos) = match b1 & 0x7f {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u16::from_be_bytes([b[0], b[1]]) as u64, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let v = u64::from_be_bytes(b.try_into().unwrap());
            if v >> 63 != 0 {
                return Err(err(close::PROTOCOL_ERROR, "64-bit length with the top bit set"));
            }
            (v, 10)
        }
        n => (n as u64, 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(err(close::PROTOCOL_ERROR, "fragmented control frame"));
        }
        if len > 125 {
            return Err(err(close::PROTOCOL_ERROR, "control frame longer than 125 bytes"));
        }
    }
    if len > max_payload as u64 {
        return Err(err(close::TOO_BIG, "frame too big"));
    }
    let mask = if masked {
        let Some(m) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let end = pos + len as usize;
    let Some(data) = buf.get(pos..end) else {
        return Ok(None);
    };
    let payload = match mask {
        Some(m) => data.iter().enumerate().map(|(i, b)| b ^ m[i & 3]).collect(),
        None => data.to_vec(),
    };
    Ok(Some((Frame { fin, opcode, payload }, end)))
}

/// Write an unmasked (server) frame header for a payload of `len` bytes; returns its length.
pub fn encode_header(fin: bool, opcode: Opcode, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = (if fin { 0x80 } else { 0 }) | opcode as u8;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= 0xffff {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A whole unmasked frame (server → client).
pub fn encode(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 10];
    let n = encode_header(true, opcode, payload.len(), &mut h);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    out
}

/// A whole masked frame (client → server), for clients and tests.
pub fn encode_masked(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut h = [0u8; 10];
    let n = encode_header(fin, opcode, payload.len(), &mut h);
    h[1] |= 0x80;
    let mut out = Vec::with_capacity(n + 4 + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    out
}

/// The payload of a close frame: code and UTF-8 reason (truncated to fit 125 bytes).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    let mut r = reason;
    while r.len() > 123 {
        let mut cut = 123;
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        r = &r[..cut];
    }
    p.extend_from_slice(r.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let raw = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (f, n) = decode(&raw, Role::Server, 1024).unwrap().unwrap();
        assert_eq!((f.fin, f.opcode, f.payload.as_slice(), n), (true, Opcode::Text, &b"Hello"[..], raw.len()));
        assert_eq!(encode_masked(true, Opcode::Text, b"Hello", M), raw);
        // The unmasked server form, as a client decodes it.
        let (f, _) = decode(&encode(Opcode::Text, b"Hello"), Role::Client, 1024).unwrap().unwrap();
        assert_eq!(f.payload, b"Hello");
    }

    #[test]
    fn lengths_of_every_size_class_round_trip_and_partial_input_waits() {
        for len in [0usize, 125, 126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let raw = encode_masked(true, Opcode::Binary, &payload, M);
            let (f, n) = decode(&raw, Role::Server, 1 << 20).unwrap().unwrap();
            assert_eq!((f.payload.len(), n), (len, raw.len()));
            assert_eq!(f.payload, payload);
            for cut in [1, raw.len() / 2, raw.len() - 1] {
                if cut < raw.len() {
                    assert_eq!(decode(&raw[..cut], Role::Server, 1 << 20).unwrap(), None, "len {len} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn violations_map_to_close_codes() {
        let code = |raw: &[u8]| decode(raw, Role::Server, 1000).unwrap_err().code;
        assert_eq!(code(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']), close::PROTOCOL_ERROR, "unmasked");
        assert_eq!(code(&[0xc1, 0x80, 0, 0, 0, 0]), close::PROTOCOL_ERROR, "RSV1");
        assert_eq!(code(&[0x83, 0x80, 0, 0, 0, 0]), close::PROTOCOL_ERROR, "opcode 3");
        assert_eq!(code(&[0x8b, 0x80, 0, 0, 0, 0]), close::PROTOCOL_ERROR, "opcode 0xb");
        assert_eq!(code(&[0x09, 0x80, 0, 0, 0, 0]), close::PROTOCOL_ERROR, "fragmented ping");
        assert_eq!(code(&[0x89, 0xfe, 0, 200]), close::PROTOCOL_ERROR, "long ping");
        assert_eq!(code(&[0x82, 0xfe, 0x10, 0x00]), close::TOO_BIG, "4096 > 1000");
        assert_eq!(code(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]), close::PROTOCOL_ERROR, "top bit");
        assert_eq!(decode(&[0x81, 0x85, 0, 0, 0, 0, 1], Role::Client, 100).unwrap_err().code, close::PROTOCOL_ERROR);
    }

    #[test]
    fn close_payload_truncates_on_a_char_boundary() {
        let p = close_payload(1001, &"é".repeat(100));
        assert!(p.len() <= 125);
        assert_eq!(u16::from_be_bytes([p[0], p[1]]), 1001);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
