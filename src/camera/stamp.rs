//! The machine-readable stamp the synthetic camera paints into every frame, built to survive
//! H.264 at a low bitrate: large black/white cells aligned to 16×16 macroblocks in a band at the
//! top of the picture, neutral chroma, and a CRC so a damaged read is a `None`, not a wrong
//! number. A test (or the browser, from canvas pixels) reads back which eye and frame it is, when
//! it was captured and which crop of the sensor produced it.
//!
//! Layout: 21 bytes = 168 bits, most significant bit first, row-major in cells of `cell_size`
//! pixels: byte 0 = version (high nibble, 1) | eye (low nibble); bytes 1..5 sequence (BE u32);
//! 5..11 capture time µs (BE u48); 11..19 crop x, y, w, h (BE u16 each); 19..21 CRC-16/CCITT-FALSE
//! of bytes 0..19. A cell is white (Y=235) for 1 and black (Y=16) for 0; a reader thresholds the
//! mean of the cell's central quarter at mid-grey.

use super::{I420Layout, Rect};

pub const VERSION: u8 = 1;
pub const BYTES: usize = 21;
pub const BITS: usize = BYTES * 8;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub eye: u8,
    pub sequence: u32,
    /// CLOCK_MONOTONIC µs, 48 bits (wraps after ~8.9 years of uptime).
    pub capture_us: u64,
    pub crop: Rect,
}

/// Cell edge in pixels for a frame `width` wide: 16 (one macroblock) from 960 px up, else 8.
pub fn cell_size(width: u32) -> u32 {
    if width >= 960 { 16 } else { 8 }
}

/// Height of the band the stamp occupies at the top of a frame.
pub fn band_height(width: u32) -> u32 {
    let c = cell_size(width);
    let per_row = (width / c) as usize;
    BITS.div_ceil(per_row) as u32 * c
}

pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

impl Stamp {
    pub fn to_bytes(&self) -> [u8; BYTES] {
        let mut b = [0u8; BYTES];
        b[0] = (VERSION << 4) | (self.eye & 0x0f);
        b[1..5].copy_from_slice(&self.sequence.to_be_bytes());
        b[5..11].copy_from_slice(&self.capture_us.to_be_bytes()[2..8]);
        for (i, v) in [self.crop.x, self.crop.y, self.crop.w, self.crop.h].into_iter().enumerate() {
            b[11 + 2 * i..13 + 2 * i].copy_from_slice(&(v.min(0xffff) as u16).to_be_bytes());
        }
        let crc = crc16(&b[..19]);
        b[19..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; BYTES]) -> Option<Stamp> {
        if b[0] >> 4 != VERSION || crc16(&b[..19]) != u16::from_be_bytes([b[19], b[20]]) {
            return None;
        }
        let mut ts = [0u8; 8];
        ts[2..8].copy_from_slice(&b[5..11]);
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]) as u32;
        Some(Stamp {
            eye: b[0] & 0x0f,
            sequence: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            capture_us: u64::from_be_bytes(ts),
            crop: Rect::new(u16_at(11), u16_at(13), u16_at(15), u16_at(17)),
        })
    }

    /// Paint into an I420 frame (Y cells, neutral chroma under the band).
    pub fn paint(&self, layout: I420Layout, frame: &mut [u8]) {
        let bytes = self.to_bytes();
        let c = cell_size(layout.width) as usize;
        let per_row = layout.width as usize / c;
        let w = layout.width as usize;
        let band = band_height(layout.width) as usize;
        let (y, u, v) = layout.planes_mut(frame);
        for row in 0..band {
            let line = &mut y[row * w..(row + 1) * w];
            let cell_row = row / c;
            for (col, px) in line.chunks_exact_mut(c).take(per_row).enumerate() {
                let bit = cell_row * per_row + col;
                let on = bit < BITS && bytes[bit / 8] & (0x80 >> (bit % 8)) != 0;
                px.fill(if on { WHITE } else { BLACK });
            }
            // Cells past the last full column: black, so the band is a clean rectangle.
            line[per_row * c..].fill(BLACK);
        }
        let cw = layout.chroma_width();
        u[..band / 2 * cw].fill(128);
        v[..band / 2 * cw].fill(128);
    }

    /// Read from a luma plane (`stride` bytes per row) of a frame `width` pixels wide.
    pub fn read(luma: &[u8], width: u32, stride: usize) -> Option<Stamp> {
        let c = cell_size(width) as usize;
        let per_row = width as usize / c;
        let mut bytes = [0u8; BYTES];
        for bit in 0..BITS {
            let (cy, cx) = (bit / per_row * c, bit % per_row * c);
            let (mut sum, mut n) = (0u32, 0u32);
            for yy in cy + c / 4..cy + 3 * c / 4 {
                let row = luma.get(yy * stride..yy * stride + cx + c)?;
                for &p in &row[cx + c / 4..cx + 3 * c / 4] {
                    sum += p as u32;
                    n += 1;
                }
            }
            if sum / n >= 128 {
                bytes[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
        Stamp::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Size;

    fn sample() -> Stamp {
        Stamp { eye: 1, sequence: 0xdead_beef, capture_us: 0x1234_5678_9abc, crop: Rect::new(672, 108, 960, 1080) }
    }

    #[test]
    fn bytes_round_trip_and_crc_catches_a_flipped_bit() {
        let s = sample();
        let mut b = s.to_bytes();
        assert_eq!(Stamp::from_bytes(&b), Some(s));
        b[7] ^= 0x10;
        assert_eq!(Stamp::from_bytes(&b), None);
    }

    #[test]
    fn crc16_matches_the_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29b1);
    }

    #[test]
    fn paint_then_read_at_several_sizes() {
        for (w, h) in [(960, 1080), (320, 240), (1920, 1080), (512, 288)] {
            let layout = I420Layout::new(Size { w, h });
            let mut frame = vec![90u8; layout.frame_len()];
            let s = sample();
            s.paint(layout, &mut frame);
            assert_eq!(Stamp::read(&frame, w, w as usize), Some(s), "{w}x{h}");
            assert!(band_height(w) < h / 4);
        }
    }

    #[test]
    fn survives_noise_but_not_garbage() {
        let layout = I420Layout::new(Size { w: 960, h: 1080 });
        let mut frame = vec![0u8; layout.frame_len()];
        sample().paint(layout, &mut frame);
        // ±60 of noise, as heavy quantisation would leave, keeps every cell on its side.
        for (i, p) in frame.iter_mut().enumerate().take(layout.y_len()) {
            let n = ((i * 7919) % 121) as i32 - 60;
            *p = (*p as i32 + n).clamp(0, 255) as u8;
        }
        assert_eq!(Stamp::read(&frame, 960, 960), Some(sample()));
        let grey = vec![128u8; layout.y_len()];
        assert_eq!(Stamp::read(&grey, 960, 960), None);
        assert_eq!(Stamp::read(&grey[..100], 960, 960), None, "short input is a None, not a panic");
    }
}
