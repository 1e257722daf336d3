//! The encoder's settings as V4L2 wants them, computed without a device: the H.264 level for a
//! size/rate/bitrate, the controls for an `EncoderConfig`, the plane layout a driver's format
//! implies, whether a camera buffer can be imported as it is, and the copy (with re-layout or
//! I420↔NV12 conversion) when it cannot.

use super::select::Codec;
use crate::camera::{FrameLayout, PixelFormat};
use crate::encoder::EncoderConfig;
use crate::sys::v4l2::{PIX_FMT_BGR24, PIX_FMT_NV12, PIX_FMT_YUV420, PixFmt, cid, fourcc_name};

/// One H.264 level (ITU-T H.264 Table A-1) and the V4L2 menu index naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub name: &'static str,
    /// V4L2_MPEG_VIDEO_H264_LEVEL_*.
    pub v4l2: i32,
    /// Max macroblocks per second, per frame, and max bitrate (kbit/s, Baseline VCL).
    max_mbps: u32,
    max_fs: u32,
    max_br_kbps: u32,
}

const LEVELS: [Level; 16] = [
    Level { name: "1", v4l2: 0, max_mbps: 1485, max_fs: 99, max_br_kbps: 64 },
    Level { name: "1.1", v4l2: 2, max_mbps: 3000, max_fs: 396, max_br_kbps: 192 },
    Level { name: "1.2", v4l2: 3, max_mbps: 6000, max_fs: 396, max_br_kbps: 384 },
    Level { name: "1.3", v4l2: 4, max_mbps: 11880, max_fs: 396, max_br_kbps: 768 },
    Level { name: "2", v4l2: 5, max_mbps: 11880, max_fs: 396, max_br_kbps: 2000 },
    Level { name: "2.1", v4l2: 6, max_mbps: 19800, max_fs: 792, max_br_kbps: 4000 },
    Level { name: "2.2", v4l2: 7, max_mbps: 20250, max_fs: 1620, max_br_kbps: 4000 },
    Level { name: "3", v4l2: 8, max_mbps: 40500, max_fs: 1620, max_br_kbps: 10000 },
    Level { name: "3.1", v4l2: 9, max_mbps: 108000, max_fs: 3600, max_br_kbps: 14000 },
    Level { name: "3.2", v4l2: 10, max_mbps: 216000, max_fs: 5120, max_br_kbps: 20000 },
    Level { name: "4", v4l2: 11, max_mbps: 245760, max_fs: 8192, max_br_kbps: 20000 },
    Level { name: "4.1", v4l2: 12, max_mbps: 245760, max_fs: 8192, max_br_kbps: 50000 },
    Level { name: "4.2", v4l2: 13, max_mbps: 522240, max_fs: 8704, max_br_kbps: 50000 },
    Level { name: "5", v4l2: 14, max_mbps: 589824, max_fs: 22080, max_br_kbps: 135000 },
    Level { name: "5.1", v4l2: 15, max_mbps: 983040, max_fs: 36864, max_br_kbps: 240000 },
    Level { name: "5.2", v4l2: 16, max_mbps: 2073600, max_fs: 36864, max_br_kbps: 240000 },
];

/// The lowest level whose limits hold `width`x`height` at `fps` and `bitrate_bps`: frame size
/// in macroblocks, macroblock rate, bitrate, and neither side longer than √(8·MaxFS) macroblocks.
/// None if even 5.2 is too small.
pub fn h264_level(width: u32, height: u32, fps: u32, bitrate_bps: u32) -> Option<Level> {
    let (mbw, mbh) = (width.div_ceil(16) as u64, height.div_ceil(16) as u64);
    let fs = mbw * mbh;
    LEVELS.iter().copied().find(|l| {
        let side = ((8 * l.max_fs) as f64).sqrt() as u64;
        fs <= l.max_fs as u64
            && fs * fps as u64 <= l.max_mbps as u64
            && bitrate_bps as u64 <= l.max_br_kbps as u64 * 1000
            && mbw <= side
            && mbh <= side
    })
}

/// One control to set: id, value, and a name for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctrl {
    pub id: u32,
    pub name: &'static str,
    pub value: i32,
}

/// Controls set once per stream, before STREAMON: profile, level, SPS/PPS before every IDR.
pub fn stream_controls(codec: Codec, cfg: &EncoderConfig) -> Vec<Ctrl> {
    match codec {
        Codec::H264 => {
            let mut v = vec![Ctrl {
                id: cid::H264_PROFILE,
                name: "profile (constrained baseline)",
                value: cid::H264_PROFILE_CONSTRAINED_BASELINE,
            }];
            // Past level 5.2 the driver keeps its own choice (it will refuse the size anyway).
            if let Some(l) = h264_level(cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps) {
                v.push(Ctrl { id: cid::H264_LEVEL, name: "level", value: l.v4l2 });
            }
            v.push(Ctrl { id: cid::REPEAT_SEQ_HEADER, name: "repeat SPS/PPS", value: 1 });
            v.push(Ctrl {
                id: cid::HEADER_MODE,
                name: "header with 1st frame",
                value: cid::HEADER_MODE_JOINED_WITH_1ST_FRAME,
            });
            v
        }
        Codec::Fwht => Vec::new(),
    }
}

/// Controls for rate and GOP: at stream start and again on `configure` while streaming.
/// GOP goes to both H264_I_PERIOD (what bcm2835-codec reads) and GOP_SIZE (most others).
pub fn rate_controls(codec: Codec, cfg: &EncoderConfig) -> Vec<Ctrl> {
    let gop = cfg.gop_frames.clamp(1, i32::MAX as u32) as i32;
    match codec {
        Codec::H264 => vec![
            Ctrl { id: cid::BITRATE, name: "bitrate", value: cfg.bitrate_bps.min(i32::MAX as u32) as i32 },
            Ctrl { id: cid::H264_I_PERIOD, name: "I period", value: gop },
            Ctrl { id: cid::GOP_SIZE, name: "GOP size", value: gop },
        ],
        Codec::Fwht => vec![Ctrl { id: cid::GOP_SIZE, name: "GOP size", value: gop }],
    }
}

/// The plane layout a one-plane V4L2 format defines: YU12 is Y (`bytesperline` × height), then
/// U and V at half the stride and height; NV12 is Y then interleaved UV at the full stride.
pub fn driver_layout(f: &PixFmt) -> Option<FrameLayout> {
    let (w, h, bpl) = (f.width, f.height, f.bytesperline as usize);
    let y_len = bpl * h as usize;
    let (format, offsets, strides) = match f.fourcc {
        PIX_FMT_YUV420 => {
            let c = bpl / 2;
            (PixelFormat::I420, [0, y_len, y_len + c * h.div_ceil(2) as usize], [bpl, c, c])
        }
        PIX_FMT_NV12 => (PixelFormat::Nv12, [0, y_len, 0], [bpl, bpl, 0]),
        PIX_FMT_BGR24 => (PixelFormat::Bgr888, [0; 3], [bpl, 0, 0]),
        _ => return None,
    };
    (bpl > 0).then_some(FrameLayout { format, width: w, height: h, offsets, strides })
}

/// Whether a camera buffer of `mem_len` bytes laid out as `frame` is exactly what the driver
/// reads for `driver` (format, size, strides, plane offsets), so it can be imported in place.
pub fn importable(frame: &FrameLayout, mem_len: usize, driver: &PixFmt) -> Result<(), String> {
    let want = driver_layout(driver).ok_or_else(|| format!("unknown driver format {}", fourcc_name(driver.fourcc)))?;
    if *frame != want {
        return Err(format!(
            "the camera's layout (strides {:?}, offsets {:?}) is not the driver's (strides {:?}, offsets {:?})",
            frame.strides, frame.offsets, want.strides, want.offsets
        ));
    }
    if mem_len < driver.sizeimage as usize {
        return Err(format!("buffer of {mem_len} bytes is smaller than the driver's sizeimage {}", driver.sizeimage));
    }
    Ok(())
}

/// Copy one frame from `src` (laid out as `sl`) into `dst` (laid out as `dl`), re-laying rows
/// out and converting between I420 and NV12 where the formats differ. `dl` may be larger than
/// `sl` (a driver whose coded size is a multiple of 16): the edges are then padded by repeating
/// the last column and row, which costs the encoder the fewest bits.
pub fn copy_frame(sl: &FrameLayout, src: &[u8], dl: &FrameLayout, dst: &mut [u8]) -> Result<(), String> {
    if sl.width > dl.width || sl.height > dl.height {
        return Err(format!("copy {}x{} into {}x{}", sl.width, sl.height, dl.width, dl.height));
    }
    if src.len() < sl.len() || dst.len() < dl.len() {
        return Err(format!("buffers too small: {} < {} or {} < {}", src.len(), sl.len(), dst.len(), dl.len()));
    }
    let (w, h) = (sl.width as usize, sl.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let copy_plane = |dst: &mut [u8], i: usize, row_len: usize, rows: usize| {
        for r in 0..rows {
            let s = &src[sl.offsets[i] + r * sl.strides[i]..][..row_len];
            dst[dl.offsets[i] + r * dl.strides[i]..][..row_len].copy_from_slice(s);
        }
    };
    use PixelFormat::*;
    match (sl.format, dl.format) {
        (Bgr888, Bgr888) => copy_plane(dst, 0, 3 * w, h),
        (I420, I420) => {
            copy_plane(dst, 0, w, h);
            copy_plane(dst, 1, cw, ch);
            copy_plane(dst, 2, cw, ch);
        }
        (Nv12, Nv12) => {
            copy_plane(dst, 0, w, h);
            copy_plane(dst, 1, 2 * cw, ch);
        }
        (I420, Nv12) => {
            copy_plane(dst, 0, w, h);
            for r in 0..ch {
                let u = &src[sl.offsets[1] + r * sl.strides[1]..][..cw];
                let v = &src[sl.offsets[2] + r * sl.strides[2]..][..cw];
                let d = &mut dst[dl.offsets[1] + r * dl.strides[1]..][..2 * cw];
                for x in 0..cw {
                    d[2 * x] = u[x];
                    d[2 * x + 1] = v[x];
                }
            }
        }
        (Nv12, I420) => {
            copy_plane(dst, 0, w, h);
            for r in 0..ch {
                let s = &src[sl.offsets[1] + r * sl.strides[1]..][..2 * cw];
                for x in 0..cw {
                    dst[dl.offsets[1] + r * dl.strides[1] + x] = s[2 * x];
                    dst[dl.offsets[2] + r * dl.strides[2] + x] = s[2 * x + 1];
                }
            }
        }
        (a, b) => return Err(format!("no conversion from {a:?} to {b:?}")),
    }
    if (sl.width, sl.height) != (dl.width, dl.height) {
        pad_edges(dl, dst, w, h);
    }
    Ok(())
}

/// Fill the part of each plane of `dst` beyond a `w`x`h` picture by repeating its last pixel
/// of each row, then its last row.
fn pad_edges(dl: &FrameLayout, dst: &mut [u8], w: usize, h: usize) {
    let (dw, dh) = (dl.width as usize, dl.height as usize);
    // (plane, bytes per pixel group, visible groups per row, rows, coded groups, coded rows)
    let planes: Vec<(usize, usize, usize, usize, usize, usize)> = match dl.format {
        PixelFormat::I420 => vec![
            (0, 1, w, h, dw, dh),
            (1, 1, w.div_ceil(2), h.div_ceil(2), dw.div_ceil(2), dh.div_ceil(2)),
            (2, 1, w.div_ceil(2), h.div_ceil(2), dw.div_ceil(2), dh.div_ceil(2)),
        ],
        PixelFormat::Nv12 => {
            vec![(0, 1, w, h, dw, dh), (1, 2, w.div_ceil(2), h.div_ceil(2), dw.div_ceil(2), dh.div_ceil(2))]
        }
        PixelFormat::Bgr888 => vec![(0, 3, w, h, dw, dh)],
    };
    for (i, g, vis, rows, coded, coded_rows) in planes {
        if vis == 0 || rows == 0 {
            continue;
        }
        let (off, stride) = (dl.offsets[i], dl.strides[i]);
        for r in 0..rows {
            let row = &mut dst[off + r * stride..][..coded * g];
            let (head, tail) = row.split_at_mut(vis * g);
            let last = &head[(vis - 1) * g..];
            for chunk in tail.chunks_exact_mut(g) {
                chunk.copy_from_slice(last);
            }
        }
        for r in rows..coded_rows {
            let (before, after) = dst.split_at_mut(off + r * stride);
            after[..coded * g].copy_from_slice(&before[off + (rows - 1) * stride..][..coded * g]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Size;
    use crate::sys::v4l2::PIX_FMT_H264;

    fn cfg(w: u32, h: u32, fps: u32, bps: u32, gop: u32) -> EncoderConfig {
        EncoderConfig { width: w, height: h, fps, bitrate_bps: bps, gop_frames: gop }
    }

    #[test]
    fn levels_follow_table_a1() {
        let name = |w, h, fps, bps| h264_level(w, h, fps, bps).map(|l| l.name);
        // 960x1080 is 60x68 = 4080 macroblocks: above 3.1's 3600, so 3.2 (as the field notes say).
        assert_eq!(name(960, 1080, 30, 3_000_000), Some("3.2"));
        assert_eq!(name(1280, 720, 30, 3_000_000), Some("3.1"));
        assert_eq!(name(1920, 1080, 30, 8_000_000), Some("4"));
        assert_eq!(name(1920, 1080, 30, 25_000_000), Some("4.1"), "bitrate above level 4's 20 Mbit/s");
        assert_eq!(name(1920, 1080, 60, 8_000_000), Some("4.2"));
        assert_eq!(name(320, 240, 30, 500_000), Some("1.3"));
        assert_eq!(name(320, 240, 30, 3_000_000), Some("2.1"), "the bitrate decides");
        assert_eq!(name(176, 144, 15, 64_000), Some("1"));
        // 4096x16 is only 256 macroblocks, but a side of 256 macroblocks needs √(8·MaxFS) ≥ 256:
        // level 4 (√(8·8192) = 256), whatever the small levels' frame size and rate allow.
        assert_eq!(name(4096, 16, 30, 1_000_000), Some("4"));
        assert_eq!(name(8192, 8192, 30, 1_000_000), None);
        assert_eq!(h264_level(960, 1080, 30, 3_000_000).unwrap().v4l2, 10);
    }

    #[test]
    fn controls_for_h264_and_fwht() {
        let c = cfg(960, 1080, 30, 3_000_000, 60);
        let s = stream_controls(Codec::H264, &c);
        let ids: Vec<(u32, i32)> = s.iter().map(|c| (c.id, c.value)).collect();
        assert_eq!(
            ids,
            vec![(cid::H264_PROFILE, 1), (cid::H264_LEVEL, 10), (cid::REPEAT_SEQ_HEADER, 1), (cid::HEADER_MODE, 1)]
        );
        let r: Vec<(u32, i32)> = rate_controls(Codec::H264, &c).iter().map(|c| (c.id, c.value)).collect();
        assert_eq!(r, vec![(cid::BITRATE, 3_000_000), (cid::H264_I_PERIOD, 60), (cid::GOP_SIZE, 60)]);
        assert!(stream_controls(Codec::Fwht, &c).is_empty());
        let r: Vec<(u32, i32)> =
            rate_controls(Codec::Fwht, &cfg(320, 240, 30, 1, 10)).iter().map(|c| (c.id, c.value)).collect();
        assert_eq!(r, vec![(cid::GOP_SIZE, 10)]);
        // A GOP of 0 frames is not a thing: at least every frame is a keyframe.
        assert_eq!(rate_controls(Codec::Fwht, &cfg(320, 240, 30, 1, 0))[0].value, 1);
        // No level past 5.2: the control is left out rather than lying.
        assert!(stream_controls(Codec::H264, &cfg(8192, 8192, 30, 1, 1)).iter().all(|c| c.id != cid::H264_LEVEL));
    }

    fn fmt(fourcc: u32, w: u32, h: u32, bpl: u32, size: u32) -> PixFmt {
        PixFmt { fourcc, width: w, height: h, bytesperline: bpl, sizeimage: size, num_planes: 1 }
    }

    #[test]
    fn driver_layouts_and_import_decisions() {
        let size = Size { w: 320, h: 240 };
        let cam = FrameLayout::i420(size);
        let drv = fmt(PIX_FMT_YUV420, 320, 240, 320, 115_200);
        assert_eq!(driver_layout(&drv), Some(cam));
        assert_eq!(importable(&cam, 115_200, &drv), Ok(()));
        assert!(importable(&cam, 100_000, &drv).unwrap_err().contains("smaller than the driver's sizeimage"));
        // A driver that wants 64-byte aligned rows cannot read an unpadded 330-wide frame in place.
        let odd = FrameLayout::i420(Size { w: 330, h: 240 });
        let padded = fmt(PIX_FMT_YUV420, 330, 240, 384, 384 * 240 * 3 / 2);
        assert!(importable(&odd, 1 << 20, &padded).unwrap_err().contains("is not the driver's"));
        let nv12 = driver_layout(&fmt(PIX_FMT_NV12, 320, 240, 320, 115_200)).unwrap();
        assert_eq!((nv12.offsets, nv12.strides, nv12.len()), ([0, 76_800, 0], [320, 320, 0], 115_200));
        assert!(driver_layout(&fmt(PIX_FMT_H264, 320, 240, 0, 0)).is_none());
        assert!(driver_layout(&fmt(PIX_FMT_YUV420, 320, 240, 0, 0)).is_none());
    }

    /// A 4x2 I420 frame with distinct bytes in every plane.
    fn i420_4x2() -> (FrameLayout, Vec<u8>) {
        let l = FrameLayout::i420(Size { w: 4, h: 2 });
        (l, (1..=12).collect())
    }

    #[test]
    fn a_larger_coded_frame_is_padded_with_the_edge_pixels() {
        // 4x2 picture into a 6x4 coded I420 frame (as a driver rounding up to 16 lines would).
        let (l, src) = i420_4x2();
        let coded = driver_layout(&fmt(PIX_FMT_YUV420, 6, 4, 6, 36)).unwrap();
        let mut dst = vec![0u8; coded.len()];
        copy_frame(&l, &src, &coded, &mut dst).unwrap();
        let y: Vec<&[u8]> = dst[..24].chunks(6).collect();
        assert_eq!(y, vec![&[1, 2, 3, 4, 4, 4][..], &[5, 6, 7, 8, 8, 8], &[5, 6, 7, 8, 8, 8], &[5, 6, 7, 8, 8, 8]]);
        // Chroma: 2x1 visible in a 3x2 plane.
        assert_eq!(&dst[coded.offsets[1]..][..6], &[9, 10, 10, 9, 10, 10]);
        assert_eq!(&dst[coded.offsets[2]..][..6], &[11, 12, 12, 11, 12, 12]);
        // NV12 pads whole U/V pairs.
        let nv = driver_layout(&fmt(PIX_FMT_NV12, 6, 4, 6, 36)).unwrap();
        let mut n = vec![0u8; nv.len()];
        copy_frame(&l, &src, &nv, &mut n).unwrap();
        assert_eq!(&n[nv.offsets[1]..][..12], &[9, 11, 10, 12, 10, 12, 9, 11, 10, 12, 10, 12]);
    }

    #[test]
    fn copies_relayout_rows_and_convert_between_i420_and_nv12() {
        let (l, src) = i420_4x2();
        // Into a driver layout with 8-byte rows.
        let wide = driver_layout(&fmt(PIX_FMT_YUV420, 4, 2, 8, 24)).unwrap();
        let mut dst = vec![0u8; wide.len()];
        copy_frame(&l, &src, &wide, &mut dst).unwrap();
        assert_eq!(&dst[..4], &[1, 2, 3, 4]);
        assert_eq!(&dst[8..12], &[5, 6, 7, 8]);
        assert_eq!(dst[wide.offsets[1]..wide.offsets[1] + 2], [9, 10]);
        assert_eq!(dst[wide.offsets[2]..wide.offsets[2] + 2], [11, 12]);
        // I420 → NV12 interleaves U and V; NV12 → I420 takes them apart again.
        let nv = driver_layout(&fmt(PIX_FMT_NV12, 4, 2, 4, 12)).unwrap();
        let mut n = vec![0u8; 12];
        copy_frame(&l, &src, &nv, &mut n).unwrap();
        assert_eq!(n, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 10, 12]);
        let mut back = vec![0u8; 12];
        copy_frame(&nv, &n, &l, &mut back).unwrap();
        assert_eq!(back, src);
        // A smaller destination and formats without a conversion are errors, not garbage.
        let other = FrameLayout::i420(Size { w: 2, h: 2 });
        assert!(copy_frame(&l, &src, &other, &mut [0u8; 6]).is_err());
        let bgr =
            FrameLayout { format: PixelFormat::Bgr888, width: 4, height: 2, offsets: [0; 3], strides: [12, 0, 0] };
        assert!(copy_frame(&l, &src, &bgr, &mut [0u8; 24]).is_err());
        assert!(copy_frame(&l, &src[..5], &nv, &mut n).is_err());
    }
}
