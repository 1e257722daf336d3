//! Taking a stereo pair for `calibrate`. While a calibration waits, each eye's pipeline offers
//! every good frame to its `EyeGrab`, which copies a downscaled luma plane out of the camera's
//! buffer (between dma-buf syncs, on the loop: every row, every fourth pixel) and hands the
//! buffer straight back. `PairGrab` pairs the copies of the two eyes by capture
//! time (`camera::pairing`, as `status.stereo` does) and gives the first pair to the worker.
//! Only the copy happens on the loop; the estimate runs on the worker (`worker`).

use std::collections::VecDeque;

use super::estimate::{Estimate, Luma, estimate};
use crate::camera::pairing::Pairing;
use crate::camera::{FrameBuffer, FrameMeta, PixelFormat, Rect, Size};
use crate::sys::dmabuf::{Access, SyncPolicy};

/// One pixel in this many along a row is copied.
pub const DOWNSCALE: usize = 4;
/// Copies kept per eye while waiting for the other eye's partner.
const KEEP: usize = 4;
/// A calibration that finds no pair within this long fails.
pub const GRAB_TIMEOUT_US: u64 = 3_000_000;

/// One eye's copies, filled by the pipeline while `wanted`.
#[derive(Debug, Default)]
pub struct EyeGrab {
    pub wanted: bool,
    sync: SyncPolicy,
    frames: Vec<(FrameMeta, Luma)>,
    /// Why a frame could not be copied (its format), once.
    pub refused: Option<String>,
}

impl EyeGrab {
    /// A good frame was captured: copy its luma if a calibration waits for one.
    pub fn offer(&mut self, meta: &FrameMeta, buffer: &FrameBuffer) {
        if !self.wanted {
            return;
        }
        let l = buffer.layout;
        if !matches!(l.format, PixelFormat::I420 | PixelFormat::Nv12) {
            self.refused = Some(format!("eye {} delivers {:?}, not YUV", meta.eye, l.format));
            return;
        }
        let _cpu = match self.sync.begin(buffer.fd(), Access::Read) {
            Ok(guard) => guard,
            Err(e) => {
                crate::debug!("eye {}: dma-buf sync for calibrate: {e}", meta.eye);
                None
            }
        };
        let started = crate::sys::clock::monotonic_us();
        let plane = l.plane(buffer.pixels(), 0);
        let luma = Luma::from_plane(plane, l.strides[0], l.width as usize, l.height as usize, DOWNSCALE);
        let us = crate::sys::clock::monotonic_us() - started;
        crate::debug!("eye {}: frame {} copied for calibrate in {us} µs", meta.eye, meta.sequence);
        self.frames.push((*meta, luma));
    }

    fn take(&mut self) -> Vec<(FrameMeta, Luma)> {
        std::mem::take(&mut self.frames)
    }
}

/// A pair of frames captured together, as the worker gets it.
#[derive(Clone, Debug)]
pub struct Pair {
    pub meta: [FrameMeta; 2],
    pub luma: [Luma; 2],
    /// The eyes' output size (the copies are narrower by `DOWNSCALE`).
    pub output: Size,
}

/// What a pair says about the eyes, in sensor pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    /// How far eye 1's picture sits below eye 0's, sensor pixels (0: aligned).
    pub dy: f64,
    pub rotation_deg: f64,
    pub confidence: f64,
    /// The applied crops of the two frames measured.
    pub crops: [Rect; 2],
}

/// Run the estimate on a pair (the worker does this) and express it in sensor pixels.
pub fn measure(pair: &Pair) -> Result<Measurement, String> {
    let [c0, c1] = [pair.meta[0].crop, pair.meta[1].crop];
    if c0.h != c1.h || c0.w != c1.w {
        return Err(format!("the eyes crop differently ({c0} and {c1}): zoom both eyes alike first"));
    }
    // Sensor pixels per row of the copy, and per column of it.
    let row = c0.h as f64 / pair.output.h.max(1) as f64;
    let col = c0.w as f64 / pair.output.w.max(1) as f64 * DOWNSCALE as f64;
    let Estimate { shift_rows, rotation_deg, confidence } = estimate(&pair.luma[0], &pair.luma[1], col / row)
        .ok_or_else(|| "the frames are too small to compare".to_string())?;
    Ok(Measurement { dy: shift_rows * row, rotation_deg, confidence, crops: [c0, c1] })
}

/// Pairs the two eyes' copies while a calibration waits.
#[derive(Debug)]
pub struct PairGrab {
    /// Tickets waiting for the pair, and when the first started.
    pub waiting: Vec<u64>,
    started_us: u64,
    pairing: Pairing,
    kept: [VecDeque<(FrameMeta, Luma)>; 2],
}

/// What the grab has for the daemon after frames came in or time passed.
#[derive(Debug)]
pub enum Grabbed {
    Nothing,
    /// A pair for the worker, for these tickets.
    Pair(Vec<u64>, Box<Pair>),
    /// These tickets fail.
    Failed(Vec<u64>, String),
}

impl PairGrab {
    pub fn new(period_us: u64) -> PairGrab {
        PairGrab { waiting: Vec::new(), started_us: 0, pairing: Pairing::new(period_us), kept: Default::default() }
    }

    /// A calibration asks for a pair: both eyes start copying.
    pub fn request(&mut self, ticket: u64, now_us: u64, eyes: [&mut EyeGrab; 2], period_us: u64) {
        if self.waiting.is_empty() {
            self.started_us = now_us;
            self.pairing = Pairing::new(period_us);
            self.kept = Default::default();
        }
        self.waiting.push(ticket);
        for e in eyes {
            e.wanted = true;
            e.refused = None;
        }
    }

    /// Collect what the eyes copied (after their frames came in) and look for a pair; or
    /// give up after `GRAB_TIMEOUT_US`.
    pub fn collect(&mut self, eyes: [&mut EyeGrab; 2], output: Size, now_us: u64) -> Grabbed {
        if self.waiting.is_empty() {
            return Grabbed::Nothing;
        }
        let mut found = None;
        let mut refused = None;
        for (i, e) in eyes.into_iter().enumerate() {
            refused = refused.or(e.refused.take());
            for (meta, luma) in e.take() {
                if found.is_some() {
                    continue;
                }
                if let Some(p) = self.pairing.push(i as u8, meta.sequence, meta.capture_us) {
                    let mine = (meta, luma);
                    let other = 1 - i;
                    let Some(pos) = self.kept[other].iter().position(|(m, _)| m.sequence == p.sequence[other]) else {
                        continue;
                    };
                    let theirs = self.kept[other].remove(pos).expect("found");
                    let (a, b) = if i == 0 { (mine, theirs) } else { (theirs, mine) };
                    found = Some(Pair { meta: [a.0, b.0], luma: [a.1, b.1], output });
                } else {
                    self.kept[i].push_back((meta, luma));
                    if self.kept[i].len() > KEEP {
                        self.kept[i].pop_front();
                    }
                }
            }
        }
        let done = found.is_some() || refused.is_some() || now_us >= self.started_us + GRAB_TIMEOUT_US;
        if !done {
            return Grabbed::Nothing;
        }
        self.kept = Default::default();
        let tickets = std::mem::take(&mut self.waiting);
        match (found, refused) {
            (Some(p), _) => Grabbed::Pair(tickets, Box::new(p)),
            (None, Some(why)) => Grabbed::Failed(tickets, why),
            (None, None) => Grabbed::Failed(tickets, "no pair of frames came from the cameras in time".into()),
        }
    }

    pub fn active(&self) -> bool {
        !self.waiting.is_empty()
    }
}

/// Stop both eyes copying (after `collect` gave a pair or failed).
pub fn stop(eyes: [&mut EyeGrab; 2]) {
    for e in eyes {
        e.wanted = false;
        e.frames.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::FrameLayout;
    use crate::sys::shm::SharedMemory;

    fn frame(eye: u8, seq: u32, t: u64, fill: impl Fn(usize, usize) -> u8) -> (FrameMeta, FrameBuffer) {
        let size = Size { w: 128, h: 96 };
        let layout = FrameLayout::i420(size);
        let mut buffer =
            FrameBuffer { index: 0, memory: SharedMemory::memfd("grab-test", layout.len()).unwrap(), layout };
        let px = buffer.pixels_mut();
        for y in 0..96 {
            for x in 0..128 {
                px[y * 128 + x] = fill(x, y);
            }
        }
        (FrameMeta { eye, sequence: seq, capture_us: t, crop: Rect::new(0, 0, 256, 192) }, buffer)
    }

    #[test]
    fn copies_pair_by_capture_time_and_only_while_wanted() {
        let (mut e0, mut e1) = (EyeGrab::default(), EyeGrab::default());
        let mut g = PairGrab::new(33_333);
        let out = Size { w: 128, h: 96 };
        let (m, b) = frame(0, 1, 1_000_000, |x, _| x as u8);
        e0.offer(&m, &b);
        assert!(e0.frames.is_empty(), "not wanted yet");
        g.request(7, 1_000_000, [&mut e0, &mut e1], 33_333);
        g.request(8, 1_010_000, [&mut e0, &mut e1], 33_333);
        e0.offer(&m, &b);
        assert_eq!(e0.frames[0].1.width, 32, "downscaled along rows");
        assert!(matches!(g.collect([&mut e0, &mut e1], out, 1_020_000), Grabbed::Nothing));
        // Eye 1's frame of the same tick, with its sequence numbered apart.
        let (m1, b1) = frame(1, 41, 1_002_000, |_, y| y as u8);
        e1.offer(&m1, &b1);
        match g.collect([&mut e0, &mut e1], out, 1_030_000) {
            Grabbed::Pair(tickets, p) => {
                assert_eq!(tickets, vec![7, 8]);
                assert_eq!([p.meta[0].sequence, p.meta[1].sequence], [1, 41]);
                assert_eq!(p.luma[1].data[32 * 5], 5, "eye 1's plane in eye 1's place");
            }
            other => panic!("{other:?}"),
        }
        stop([&mut e0, &mut e1]);
        assert!(!e0.wanted && !g.active());
    }

    #[test]
    fn no_pair_in_time_fails_the_waiting_tickets() {
        let (mut e0, mut e1) = (EyeGrab::default(), EyeGrab::default());
        let mut g = PairGrab::new(33_333);
        g.request(3, 5_000_000, [&mut e0, &mut e1], 33_333);
        let out = Size { w: 128, h: 96 };
        assert!(matches!(g.collect([&mut e0, &mut e1], out, 5_100_000), Grabbed::Nothing));
        assert!(matches!(
            g.collect([&mut e0, &mut e1], out, 5_000_000 + GRAB_TIMEOUT_US),
            Grabbed::Failed(t, _) if t == vec![3]
        ));
    }

    #[test]
    fn a_measurement_is_in_sensor_pixels() {
        // A vertical ramp with bumps, eye 1 two rows lower; crops twice the output: 4 px.
        let bumps = |y: usize| ((y * y * 7 + y * 13) % 23 * 10) as u8;
        let (m0, b0) = frame(0, 1, 0, |_, y| bumps(y));
        let (m1, b1) = frame(1, 1, 0, |_, y| bumps(y.saturating_sub(2)));
        let l = |b: &FrameBuffer| Luma::from_plane(&b.pixels()[..128 * 96], 128, 128, 96, DOWNSCALE);
        let p = Pair { meta: [m0, m1], luma: [l(&b0), l(&b1)], output: Size { w: 128, h: 96 } };
        let m = measure(&p).unwrap();
        assert!((m.dy - 4.0).abs() < 0.5, "{m:?}");
        let mut q = p.clone();
        q.meta[1].crop.h = 100;
        assert!(measure(&q).is_err());
    }
}
