//! Just enough H.264 bitstream knowledge for streaming: split an Annex-B access unit into NAL
//! units, tell an IDR picture, and derive the WebCodecs / RFC 6381 codec string ("avc1.PPCCLL")
//! from the SPS instead of hard-coding it (960x1080 needs level 3.2, not 3.1).

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// Iterate the NAL units of an Annex-B byte stream (start codes 00 00 01 or 00 00 00 01),
/// yielding each NAL's bytes without its start code.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start(data, 0).map(|(_, end)| end);
    std::iter::from_fn(move || {
        let start = pos?;
        match find_start(data, start) {
            Some((code_at, next)) => {
                pos = Some(next);
                Some(trim_trailing_zeros(&data[start..code_at]))
            }
            None => {
                pos = None;
                Some(&data[start..])
            }
        }
    })
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

/// Position of the next start code at or after `from`: (index of its first byte, index after it).
fn find_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        }
        i += 1;
    }
    None
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// True when the access unit holds an IDR slice.
pub fn is_idr(au: &[u8]) -> bool {
    nal_units(au).any(|n| nal_type(n) == NAL_IDR)
}

/// The codec string for WebCodecs from the first SPS in `au`: profile_idc, the constraint
/// flags byte and level_idc, in hex.
pub fn codec_string(au: &[u8]) -> Option<String> {
    let sps = nal_units(au).find(|n| nal_type(n) == NAL_SPS)?;
    if sps.len() < 4 {
        return None;
    }
    Some(format!("avc1.{:02X}{:02X}{:02X}", sps[1], sps[2], sps[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AU: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x20, 0xaa, // SPS: Baseline, constraint set 0+1, level 3.2
        0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, // PPS
        0, 0, 1, 0x65, 0x88, 0x84, 0x00, // IDR
    ];

    #[test]
    fn splits_nals_with_three_and_four_byte_start_codes() {
        let types: Vec<u8> = nal_units(AU).map(nal_type).collect();
        assert_eq!(types, vec![NAL_SPS, NAL_PPS, NAL_IDR]);
        assert_eq!(nal_units(AU).nth(1).unwrap(), &[0x68, 0xce, 0x3c, 0x80]);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn recognises_idr_and_derives_the_codec_string() {
        assert!(is_idr(AU));
        assert!(!is_idr(&[0, 0, 1, 0x41, 0x9a]));
        assert_eq!(codec_string(AU).as_deref(), Some("avc1.42C020"));
        assert_eq!(codec_string(&[0, 0, 1, 0x41, 0x9a]), None);
    }
}
