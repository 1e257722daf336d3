//! The video wire format. Each access unit travels as one binary WebSocket message:
//!
//! ```text
//! offset size  field (little-endian)
//!  0     1     version = 1
//!  1     1     eye (0 or 1)
//!  2     1     flags: bit 0 = keyframe (IDR, preceded by SPS and PPS)
//!  3     1     header length in bytes (32): payload starts here
//!  4     4     frame sequence number (camera's)
//!  8     8     capture time, CLOCK_MONOTONIC µs
//! 16     8     applied crop x, y, w, h: u16 each, sensor pixels
//! 24     8     encoded time (access unit ready), CLOCK_MONOTONIC µs
//! 32     …     H.264 Annex-B access unit
//! ```
//!
//! The message is built once, in the headroom the encoder left in front of the access unit,
//! and the same bytes are written to every viewer of that eye.

use crate::camera::{FrameMeta, Rect};
use crate::encoder::AccessUnit;
use crate::ws::frame::{Opcode, encode_header};

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
pub const FLAG_KEYFRAME: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoHeader {
    pub eye: u8,
    pub keyframe: bool,
    pub sequence: u32,
    pub capture_us: u64,
    pub crop: Rect,
    pub encoded_us: u64,
}

impl VideoHeader {
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = VERSION;
        out[1] = self.eye;
        out[2] = if self.keyframe { FLAG_KEYFRAME } else { 0 };
        out[3] = HEADER_LEN as u8;
        out[4..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..16].copy_from_slice(&self.capture_us.to_le_bytes());
        for (i, v) in [self.crop.x, self.crop.y, self.crop.w, self.crop.h].into_iter().enumerate() {
            out[16 + 2 * i..18 + 2 * i].copy_from_slice(&(v.min(0xffff) as u16).to_le_bytes());
        }
        out[24..32].copy_from_slice(&self.encoded_us.to_le_bytes());
    }

    /// Parse a message; returns the header and the Annex-B payload.
    pub fn parse(msg: &[u8]) -> Option<(VideoHeader, &[u8])> {
        if msg.len() < HEADER_LEN || msg[0] != VERSION {
            return None;
        }
        let hl = msg[3] as usize;
        if hl < HEADER_LEN || hl > msg.len() {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([msg[i], msg[i + 1]]) as u32;
        let u64_at = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().unwrap());
        Some((
            VideoHeader {
                eye: msg[1],
                keyframe: msg[2] & FLAG_KEYFRAME != 0,
                sequence: u32::from_le_bytes(msg[4..8].try_into().unwrap()),
                capture_us: u64_at(8),
                crop: Rect::new(u16_at(16), u16_at(18), u16_at(20), u16_at(22)),
                encoded_us: u64_at(24),
            },
            &msg[hl..],
        ))
    }
}

/// One video message, WebSocket frame header included, shared by every viewer of an eye.
#[derive(Debug)]
pub struct Packet {
    bytes: Vec<u8>,
    start: usize,
    pub keyframe: bool,
    pub meta: FrameMeta,
    /// When the access unit was ready, CLOCK_MONOTONIC µs.
    pub encoded_us: u64,
}

impl Packet {
    /// Wrap an access unit in place: the wire header and the WebSocket frame header are
    /// written into the access unit's headroom, so the picture is not copied.
    pub fn new(au: AccessUnit, meta: FrameMeta, encoded_us: u64) -> Packet {
        let AccessUnit { mut data, headroom, keyframe } = au;
        let payload = data.len() - headroom + HEADER_LEN;
        let mut ws = [0u8; 10];
        let ws_len = encode_header(true, Opcode::Binary, payload, &mut ws);
        assert!(headroom >= HEADER_LEN + ws_len, "access unit headroom too small");
        let header = VideoHeader {
            eye: meta.eye,
            keyframe,
            sequence: meta.sequence,
            capture_us: meta.capture_us,
            crop: meta.crop,
            encoded_us,
        };
        let h0 = headroom - HEADER_LEN;
        header.write((&mut data[h0..headroom]).try_into().unwrap());
        let start = h0 - ws_len;
        data[start..h0].copy_from_slice(&ws[..ws_len]);
        Packet { bytes: data, start, keyframe, meta, encoded_us }
    }

    /// The bytes to write: one complete WebSocket frame.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{Role, decode};

    #[test]
    fn header_round_trip() {
        let h = VideoHeader {
            eye: 1,
            keyframe: true,
            sequence: 77,
            capture_us: 123_456_789,
            crop: Rect::new(1, 2, 960, 1080),
            encoded_us: 123_460_000,
        };
        let mut b = [0u8; HEADER_LEN];
        h.write(&mut b);
        let mut msg = b.to_vec();
        msg.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        let (p, payload) = VideoHeader::parse(&msg).unwrap();
        assert_eq!(p, h);
        assert_eq!(payload, &[0, 0, 0, 1, 0x65]);
        assert_eq!(VideoHeader::parse(&msg[..10]), None);
    }

    #[test]
    fn packet_is_a_complete_websocket_frame_for_small_and_large_units() {
        for n in [5usize, 200, 70_000] {
            let mut data = vec![0u8; 42];
            data.extend((0..n).map(|i| i as u8));
            let meta = FrameMeta { eye: 0, sequence: 9, capture_us: 5, crop: Rect::new(0, 0, 64, 64) };
            let p = Packet::new(AccessUnit { data, headroom: 42, keyframe: false }, meta, 6);
            let (f, used) = decode(p.bytes(), Role::Client, 1 << 20).unwrap().unwrap();
            assert_eq!(used, p.len());
            let (h, payload) = VideoHeader::parse(&f.payload).unwrap();
            assert_eq!((h.sequence, h.capture_us, h.encoded_us, payload.len()), (9, 5, 6, n));
            assert_eq!(payload[n - 1], (n - 1) as u8);
        }
    }
}
