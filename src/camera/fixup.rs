//! In-place fix-ups of a captured frame, for what a camera cannot be asked to do (see
//! `libcamera.rs`): mirroring, whatever the layout (I420, NV12, packed 24-bit, padded rows), and
//! turning R, G, B pixels into the B, G, R order pieyes' `Bgr888` means.

use super::{Flip, FrameLayout, PixelFormat};

/// (bytes per element, elements per row) of plane `i`, or None for an unused plane.
fn plane_shape(layout: &FrameLayout, i: usize) -> Option<(usize, usize)> {
    let (w, cw) = (layout.width as usize, layout.width.div_ceil(2) as usize);
    match (layout.format, i) {
        (PixelFormat::Bgr888, 0) => Some((3, w)),
        (PixelFormat::Bgr888, _) => None,
        (_, 0) => Some((1, w)),
        (PixelFormat::I420, 1 | 2) => Some((1, cw)),
        (PixelFormat::Nv12, 1) => Some((2, cw)),
        _ => None,
    }
}

/// Mirror `pixels` (laid out as `layout`) in place.
pub fn flip_frame(layout: &FrameLayout, pixels: &mut [u8], flip: Flip) {
    if flip == Flip::None {
        return;
    }
    for i in 0..3 {
        let Some((elem, n)) = plane_shape(layout, i) else { continue };
        let (stride, rows) = (layout.strides[i], layout.rows(i));
        if stride == 0 || rows == 0 {
            continue;
        }
        let plane = &mut pixels[layout.offsets[i]..layout.offsets[i] + stride * rows];
        if flip.h() {
            for row in plane.chunks_exact_mut(stride) {
                let row = &mut row[..elem * n];
                for x in 0..n / 2 {
                    let (a, b) = (x * elem, (n - 1 - x) * elem);
                    for k in 0..elem {
                        row.swap(a + k, b + k);
                    }
                }
            }
        }
        if flip.v() {
            for r in 0..rows / 2 {
                let (top, bottom) = plane.split_at_mut((rows - 1 - r) * stride);
                top[r * stride..r * stride + elem * n].swap_with_slice(&mut bottom[..elem * n]);
            }
        }
    }
}

/// Packed R, G, B → B, G, R in place (libcamera's `BGR888`, 'BG24', is R, G, B in memory; the
/// only packed format vimc streams in libcamera 0.4).
pub fn swap_red_blue(layout: &FrameLayout, pixels: &mut [u8]) {
    if layout.format != PixelFormat::Bgr888 {
        return;
    }
    let (w, stride) = (layout.width as usize, layout.strides[0]);
    for row in pixels[layout.offsets[0]..].chunks_mut(stride).take(layout.height as usize) {
        for px in row[..3 * w].chunks_exact_mut(3) {
            px.swap(0, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{I420Layout, Size, flip_i420};

    #[test]
    fn same_as_the_i420_flip_for_contiguous_i420() {
        let size = Size { w: 6, h: 4 };
        let l = FrameLayout::i420(size);
        let orig: Vec<u8> = (0..l.len() as u8).collect();
        for flip in [Flip::H, Flip::V, Flip::HV] {
            let (mut a, mut b) = (orig.clone(), orig.clone());
            flip_frame(&l, &mut a, flip);
            flip_i420(I420Layout::new(size), &mut b, flip);
            assert_eq!(a, b, "{flip:?}");
        }
    }

    #[test]
    fn nv12_keeps_chroma_pairs_and_padding() {
        // 4x2 NV12 with rows padded to 6 bytes: Y rows at 0 and 6, UV row at 12.
        let l = FrameLayout { format: PixelFormat::Nv12, width: 4, height: 2, offsets: [0, 12, 0], strides: [6, 6, 0] };
        let mut f = vec![1, 2, 3, 4, 0xEE, 0xEE, 5, 6, 7, 8, 0xEE, 0xEE, 10, 20, 11, 21, 0xEE, 0xEE];
        flip_frame(&l, &mut f, Flip::H);
        assert_eq!(f, [4, 3, 2, 1, 0xEE, 0xEE, 8, 7, 6, 5, 0xEE, 0xEE, 11, 21, 10, 20, 0xEE, 0xEE]);
        flip_frame(&l, &mut f, Flip::V);
        assert_eq!(&f[..12], &[8, 7, 6, 5, 0xEE, 0xEE, 4, 3, 2, 1, 0xEE, 0xEE]);
    }

    #[test]
    fn bgr_pixels_move_whole_and_twice_is_identity() {
        let l = FrameLayout { format: PixelFormat::Bgr888, width: 2, height: 2, offsets: [0; 3], strides: [6, 0, 0] };
        let orig: Vec<u8> = (0..12).collect();
        let mut f = orig.clone();
        flip_frame(&l, &mut f, Flip::H);
        assert_eq!(&f[..6], &[3, 4, 5, 0, 1, 2]);
        flip_frame(&l, &mut f, Flip::HV);
        flip_frame(&l, &mut f, Flip::V);
        assert_eq!(f, orig);
    }

    #[test]
    fn red_and_blue_trade_places_padding_untouched() {
        let l = FrameLayout { format: PixelFormat::Bgr888, width: 2, height: 2, offsets: [0; 3], strides: [7, 0, 0] };
        let mut f = vec![1, 2, 3, 4, 5, 6, 99, 7, 8, 9, 10, 11, 12, 99];
        swap_red_blue(&l, &mut f);
        assert_eq!(f, [3, 2, 1, 6, 5, 4, 99, 9, 8, 7, 12, 11, 10, 99]);
    }
}
