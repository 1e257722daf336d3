//! The one copy a tap with `size WxH` gets: the frame downscaled to an I420 picture of that
//! size. Each output pixel is the mean of the 2×2 source pixels at its centre — cheap (four
//! reads per output pixel, whatever the ratio) and enough against the worst aliasing.

use crate::camera::{FrameLayout, PixelFormat, Size};

/// One plane: `src` of `sw`×`sh` samples, `stride` bytes a row, `step` bytes between samples
/// (2 for a component of NV12's interleaved chroma) into `dst`, `dw`×`dh`, rows packed.
#[allow(clippy::too_many_arguments)]
fn plane(src: &[u8], sw: usize, sh: usize, stride: usize, step: usize, dst: &mut [u8], dw: usize, dh: usize) {
    let at = |n: usize, of: usize, size: usize| ((2 * n + 1) * size / (2 * of)).min(size.saturating_sub(2));
    // Byte offsets in a row of the two columns each output column averages, worked out once.
    let cols: Vec<(usize, usize)> = (0..dw)
        .map(|ox| {
            let x = at(ox, dw, sw);
            (x * step, (x + 1).min(sw - 1) * step)
        })
        .collect();
    for (oy, row) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
        let y = at(oy, dh, sh);
        let y1 = (y + 1).min(sh - 1);
        let (r0, r1) = (&src[y * stride..], &src[y1 * stride..]);
        for (px, &(a, b)) in row.iter_mut().zip(&cols) {
            *px = ((r0[a] as u32 + r0[b] as u32 + r1[a] as u32 + r1[b] as u32 + 2) / 4) as u8;
        }
    }
}

/// Bytes of an I420 picture of `size`.
pub fn i420_len(size: Size) -> usize {
    FrameLayout::i420(size).len()
}

/// Downscale a frame (I420 or NV12) into `dst`, an I420 picture of `out`. False for a format
/// it does not take (packed RGB), or a size larger than the frame.
pub fn to_i420(layout: &FrameLayout, src: &[u8], out: Size, dst: &mut [u8]) -> bool {
    let (sw, sh) = (layout.width as usize, layout.height as usize);
    let (dw, dh) = (out.w as usize, out.h as usize);
    if dw > sw || dh > sh || dw < 2 || dh < 2 || dst.len() < i420_len(out) || src.len() < layout.len() {
        return false;
    }
    let (csw, csh, cdw, cdh) = (sw.div_ceil(2), sh.div_ceil(2), dw / 2, dh / 2);
    let (dy, rest) = dst.split_at_mut(dw * dh);
    let (du, dv) = rest.split_at_mut(cdw * cdh);
    let o = layout.offsets;
    let s = layout.strides;
    match layout.format {
        PixelFormat::I420 => {
            plane(&src[o[0]..], sw, sh, s[0], 1, dy, dw, dh);
            plane(&src[o[1]..], csw, csh, s[1], 1, du, cdw, cdh);
            plane(&src[o[2]..], csw, csh, s[2], 1, dv, cdw, cdh);
        }
        PixelFormat::Nv12 => {
            plane(&src[o[0]..], sw, sh, s[0], 1, dy, dw, dh);
            plane(&src[o[1]..], csw, csh, s[1], 2, du, cdw, cdh);
            plane(&src[o[1] + 1..], csw, csh, s[1], 2, dv, cdw, cdh);
        }
        PixelFormat::Bgr888 => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_planes_stay_flat_and_a_gradient_keeps_its_direction() {
        let size = Size { w: 64, h: 48 };
        let l = FrameLayout::i420(size);
        let mut src = vec![0u8; l.len()];
        for y in 0..48 {
            for x in 0..64 {
                src[y * 64 + x] = (x * 4) as u8;
            }
        }
        src[l.offsets[1]..l.offsets[2]].fill(90);
        src[l.offsets[2]..].fill(210);
        let out = Size { w: 16, h: 12 };
        let mut dst = vec![0u8; i420_len(out)];
        assert!(to_i420(&l, &src, out, &mut dst));
        let (y, rest) = dst.split_at(16 * 12);
        assert!(rest[..48].iter().all(|&u| u == 90) && rest[48..].iter().all(|&v| v == 210));
        for row in y.chunks(16) {
            assert!(row.windows(2).all(|w| w[0] < w[1]), "{row:?}");
            assert_eq!(row, y.chunks(16).next().unwrap(), "every row alike");
        }
        // Output pixel 0 covers source x 0..4: its centre samples x 2 and 3.
        assert_eq!(y[0], 10);
    }

    #[test]
    fn nv12_chroma_is_split_and_odd_requests_refused() {
        let (w, h) = (8usize, 4usize);
        let l = FrameLayout {
            format: PixelFormat::Nv12,
            width: w as u32,
            height: h as u32,
            offsets: [0, w * h, 0],
            strides: [w, w, 0],
        };
        let mut src = vec![100u8; l.len()];
        for pair in src[w * h..].chunks_exact_mut(2) {
            pair.copy_from_slice(&[60, 200]);
        }
        let out = Size { w: 4, h: 2 };
        let mut dst = vec![0u8; i420_len(out)];
        assert!(to_i420(&l, &src, out, &mut dst));
        assert_eq!(dst, [100, 100, 100, 100, 100, 100, 100, 100, 60, 60, 200, 200]);
        assert!(!to_i420(&l, &src, Size { w: 16, h: 2 }, &mut dst), "larger than the frame");
        let bgr = FrameLayout { format: PixelFormat::Bgr888, strides: [3 * w, 0, 0], offsets: [0; 3], ..l };
        assert!(!to_i420(&bgr, &vec![0; bgr.len()], out, &mut dst));
    }
}
