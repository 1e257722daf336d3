//! The picture a software encoder reads: the camera's buffer in place when it is planar 4:2:0
//! (the Pi's YUV420), otherwise the part that is not converted into a scratch buffer: NV12's
//! interleaved chroma (the luma stays in place), or all of a packed BGR frame (test cameras).

use openh264::formats::YUVSource;

use crate::camera::{FrameLayout, PixelFormat};

/// Reused conversion space (allocated once, at the largest size seen).
#[derive(Default)]
pub struct Scratch {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

pub struct Picture<'a> {
    width: usize,
    height: usize,
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    y_stride: usize,
    c_stride: usize,
}

impl YUVSource for Picture<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.y_stride, self.c_stride, self.c_stride)
    }
    fn y(&self) -> &[u8] {
        self.y
    }
    fn u(&self) -> &[u8] {
        self.u
    }
    fn v(&self) -> &[u8] {
        self.v
    }
}

/// BT.601 limited range, integer maths (as libyuv does).
fn rgb_to_yuv(r: i32, g: i32, b: i32) -> (u8, u8, u8) {
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y.clamp(0, 255) as u8, u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// The encoder's view of `pixels` laid out as `layout`, converting into `scratch` if needed.
pub fn picture<'a>(layout: &FrameLayout, pixels: &'a [u8], scratch: &'a mut Scratch) -> Picture<'a> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match layout.format {
        PixelFormat::I420 if layout.strides[1] == layout.strides[2] => Picture {
            width: w,
            height: h,
            y: layout.plane(pixels, 0),
            u: layout.plane(pixels, 1),
            v: layout.plane(pixels, 2),
            y_stride: layout.strides[0],
            c_stride: layout.strides[1],
        },
        PixelFormat::I420 | PixelFormat::Nv12 => {
            scratch.u.resize(cw * ch, 0);
            scratch.v.resize(cw * ch, 0);
            for row in 0..ch {
                let (du, dv) = (&mut scratch.u[row * cw..(row + 1) * cw], &mut scratch.v[row * cw..(row + 1) * cw]);
                if layout.format == PixelFormat::Nv12 {
                    let src = &layout.plane(pixels, 1)[row * layout.strides[1]..];
                    for (x, (pu, pv)) in du.iter_mut().zip(dv.iter_mut()).enumerate() {
                        *pu = src[2 * x];
                        *pv = src[2 * x + 1];
                    }
                } else {
                    du.copy_from_slice(&layout.plane(pixels, 1)[row * layout.strides[1]..][..cw]);
                    dv.copy_from_slice(&layout.plane(pixels, 2)[row * layout.strides[2]..][..cw]);
                }
            }
            Picture {
                width: w,
                height: h,
                y: layout.plane(pixels, 0),
                u: &scratch.u,
                v: &scratch.v,
                y_stride: layout.strides[0],
                c_stride: cw,
            }
        }
        PixelFormat::Bgr888 => {
            scratch.y.resize(w * h, 0);
            scratch.u.resize(cw * ch, 0);
            scratch.v.resize(cw * ch, 0);
            let src = layout.plane(pixels, 0);
            for row in 0..h {
                let line = &src[row * layout.strides[0]..][..3 * w];
                for x in 0..w {
                    let (b, g, r) = (line[3 * x] as i32, line[3 * x + 1] as i32, line[3 * x + 2] as i32);
                    let (y, u, v) = rgb_to_yuv(r, g, b);
                    scratch.y[row * w + x] = y;
                    if row % 2 == 0 && x % 2 == 0 {
                        scratch.u[row / 2 * cw + x / 2] = u;
                        scratch.v[row / 2 * cw + x / 2] = v;
                    }
                }
            }
            Picture { width: w, height: h, y: &scratch.y, u: &scratch.u, v: &scratch.v, y_stride: w, c_stride: cw }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Size;

    #[test]
    fn i420_is_read_in_place() {
        let l = FrameLayout::i420(Size { w: 4, h: 2 });
        let buf: Vec<u8> = (0..12).collect();
        let mut s = Scratch::default();
        let p = picture(&l, &buf, &mut s);
        assert_eq!((p.y(), p.u(), p.v(), p.strides()), (&buf[..8], &buf[8..10], &buf[10..12], (4, 2, 2)));
        assert_eq!(p.y().as_ptr(), buf.as_ptr(), "no copy");
    }

    #[test]
    fn nv12_chroma_is_deinterleaved_and_luma_kept_in_place() {
        // 4x2, luma stride 6 (padded), chroma plane at 12 with stride 6.
        let l = FrameLayout { format: PixelFormat::Nv12, width: 4, height: 2, offsets: [0, 12, 0], strides: [6, 6, 0] };
        let mut buf = vec![0u8; 18];
        buf[12..16].copy_from_slice(&[1, 2, 3, 4]);
        let mut s = Scratch::default();
        let p = picture(&l, &buf, &mut s);
        assert_eq!((p.u(), p.v(), p.strides()), (&[1u8, 3][..], &[2u8, 4][..], (6, 2, 2)));
        assert_eq!(p.y().as_ptr(), buf.as_ptr());
    }

    #[test]
    fn bgr_converts_with_bt601_limited_range() {
        let l = FrameLayout { format: PixelFormat::Bgr888, width: 2, height: 2, offsets: [0; 3], strides: [6, 0, 0] };
        let white = vec![255u8; 12];
        let mut s = Scratch::default();
        let p = picture(&l, &white, &mut s);
        assert_eq!((p.y()[0], p.u()[0], p.v()[0]), (235, 128, 128));
        let red = [0u8, 0, 255].repeat(4);
        let p = picture(&l, &red, &mut s);
        assert_eq!((p.y()[0], p.u()[0], p.v()[0]), (82, 90, 240));
    }
}
