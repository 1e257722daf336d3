//! What came out of the CAPTURE queue: a picture (key or not), parameter sets alone (some
//! H.264 encoders emit SPS/PPS as a buffer of their own), or nothing. Keyframes: for H.264 an
//! IDR slice (what a viewer can start from; V4L2_BUF_FLAG_KEYFRAME on a non-IDR I picture does
//! not count); for FWHT the driver's KEYFRAME flag or, since vicodec's encoder never sets it,
//! the I-frame flag of the FWHT header.

use super::select::Codec;
use crate::encoder::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::sys::v4l2::BUF_FLAG_KEYFRAME;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Picture {
        keyframe: bool,
    },
    /// Only parameter sets / SEI: they belong in front of the next picture.
    HeaderOnly,
    Empty,
    Invalid(String),
}

/// The header vicodec puts in front of every FWHT frame (all fields big-endian but the magics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwhtHeader {
    pub version: u32,
    pub width: u32,
    pub height: u32,
    pub flags: u32,
    /// Compressed size as the encoder states it.
    pub size: u32,
}

pub const FWHT_HEADER_LEN: usize = 44;
/// V4L2_FWHT_FL_I_FRAME
pub const FWHT_FL_I_FRAME: u32 = 1 << 10;

impl FwhtHeader {
    pub fn parse(b: &[u8]) -> Option<FwhtHeader> {
        if b.len() < FWHT_HEADER_LEN || b[..4] != [0x4f; 4] || b[4..8] != [0xff; 4] {
            return None;
        }
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(FwhtHeader { version: be(8), width: be(12), height: be(16), flags: be(20), size: be(40) })
    }

    pub fn is_intra(&self) -> bool {
        self.flags & FWHT_FL_I_FRAME != 0
    }
}

pub fn classify(codec: Codec, buf_flags: u32, data: &[u8]) -> Payload {
    if data.is_empty() {
        return Payload::Empty;
    }
    let flagged = buf_flags & BUF_FLAG_KEYFRAME != 0;
    match codec {
        Codec::H264 => {
            let mut units = h264::nal_units(data).map(h264::nal_type).peekable();
            if units.peek().is_none() {
                return Payload::Invalid(format!("{} bytes without an Annex-B start code", data.len()));
            }
            let (mut vcl, mut idr) = (false, false);
            for t in units {
                vcl |= (1..=5).contains(&t);
                idr |= t == NAL_IDR;
            }
            // A viewer can only start at an IDR: a driver's KEYFRAME flag on a non-IDR I
            // picture does not make it one.
            if vcl { Payload::Picture { keyframe: idr } } else { Payload::HeaderOnly }
        }
        Codec::Fwht => match FwhtHeader::parse(data) {
            Some(h) => Payload::Picture { keyframe: flagged || h.is_intra() },
            None => Payload::Invalid(format!("{} bytes without an FWHT header", data.len())),
        },
    }
}

/// The latest SPS and PPS seen, so that every H.264 keyframe can carry them even when the
/// driver does not repeat them (REPEAT_SEQ_HEADER unsupported) or sends them on their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParamSets {
    /// Remember the parameter sets in `au` (Annex-B).
    pub fn learn(&mut self, au: &[u8]) {
        for n in h264::nal_units(au) {
            match h264::nal_type(n) {
                NAL_SPS => self.sps = Some(n.to_vec()),
                NAL_PPS => self.pps = Some(n.to_vec()),
                _ => {}
            }
        }
    }

    /// For an IDR access unit at `data[headroom..]` that lacks SPS or PPS: put the remembered
    /// ones in front of it. Returns whether it did.
    pub fn complete_idr(&mut self, data: &mut Vec<u8>, headroom: usize) -> bool {
        self.learn(&data[headroom..]);
        let types: Vec<u8> = h264::nal_units(&data[headroom..]).map(h264::nal_type).collect();
        if !types.contains(&NAL_IDR) || (types.contains(&NAL_SPS) && types.contains(&NAL_PPS)) {
            return false;
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return false;
        };
        let mut front = Vec::with_capacity(sps.len() + pps.len() + 8);
        for n in [sps, pps] {
            front.extend_from_slice(&[0, 0, 0, 1]);
            front.extend_from_slice(n);
        }
        data.splice(headroom..headroom, front);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x20, 0xaa];
    const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0, 0, 1, 0x65, 0x88, 0x84];
    const P: &[u8] = &[0, 0, 1, 0x41, 0x9a, 0x02];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn h264_pictures_headers_and_garbage() {
        assert_eq!(classify(Codec::H264, 0, &cat(&[SPS, PPS, IDR])), Payload::Picture { keyframe: true });
        assert_eq!(classify(Codec::H264, 0, P), Payload::Picture { keyframe: false });
        assert_eq!(classify(Codec::H264, BUF_FLAG_KEYFRAME, P), Payload::Picture { keyframe: false });
        assert_eq!(classify(Codec::H264, 0, &cat(&[SPS, PPS])), Payload::HeaderOnly);
        assert_eq!(classify(Codec::H264, 0, &[]), Payload::Empty);
        assert!(matches!(classify(Codec::H264, 0, &[1, 2, 3, 4]), Payload::Invalid(_)));
    }

    fn fwht(flags: u32, w: u32, h: u32) -> Vec<u8> {
        let mut b = vec![0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
        for v in [3, w, h, flags, 0, 0, 0, 0, 1234] {
            b.extend_from_slice(&u32::to_be_bytes(v));
        }
        b.extend_from_slice(&[9; 20]);
        b
    }

    #[test]
    fn fwht_keyframes_come_from_the_header() {
        let key = fwht(FWHT_FL_I_FRAME | 0x3000, 320, 240);
        let h = FwhtHeader::parse(&key).unwrap();
        assert_eq!((h.version, h.width, h.height, h.size, h.is_intra()), (3, 320, 240, 1234, true));
        assert_eq!(classify(Codec::Fwht, 0, &key), Payload::Picture { keyframe: true });
        assert_eq!(classify(Codec::Fwht, 0, &fwht(0x3000, 320, 240)), Payload::Picture { keyframe: false });
        assert!(matches!(classify(Codec::Fwht, 0, &key[4..]), Payload::Invalid(_)));
        assert!(FwhtHeader::parse(&key[..43]).is_none());
    }

    #[test]
    fn keyframes_get_the_parameter_sets_they_lack() {
        let mut ps = ParamSets::default();
        // An IDR before any SPS/PPS was seen cannot be completed.
        let mut lone = cat(&[&[0u8; 4], IDR]);
        assert!(!ps.complete_idr(&mut lone, 4));
        // Headers on their own, then an IDR without them: they are put in front, after headroom.
        ps.learn(&cat(&[SPS, PPS]));
        let mut au = cat(&[&[7u8; 4], IDR]);
        assert!(ps.complete_idr(&mut au, 4));
        assert_eq!(&au[..4], &[7; 4]);
        let types: Vec<u8> = h264::nal_units(&au[4..]).map(h264::nal_type).collect();
        assert_eq!(types, vec![NAL_SPS, NAL_PPS, NAL_IDR]);
        assert_eq!(h264::codec_string(&au[4..]).as_deref(), Some("avc1.42C020"));
        // Complete ones and P pictures are left alone.
        let mut full = cat(&[&[0u8; 4], SPS, PPS, IDR]);
        let before = full.clone();
        assert!(!ps.complete_idr(&mut full, 4));
        assert_eq!(full, before);
        let mut p = cat(&[&[0u8; 4], P]);
        assert!(!ps.complete_idr(&mut p, 4));
    }
}
