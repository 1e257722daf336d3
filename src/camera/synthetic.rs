//! The synthetic stereo camera: a virtual sensor pair that needs no hardware. One capture
//! thread ticks from a timerfd at the configured fps and, on every tick, fills the oldest
//! queued request of each eye (both eyes on the same tick, the way hardware-synchronised
//! sensors do), paints the stamp, and rings that eye's completion doorbell. A tick that finds
//! no request queued for an eye is a starved frame: the sequence still advances, as a real
//! sensor's does.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::scene::{Misalign, Scene};
use super::stamp::Stamp;
use super::{
    Camera, CameraError, CameraInfo, Completed, Flip, FrameBuffer, FrameLayout, FrameMeta, FrameStatus, Rect, Request,
    Size, clamp_crop, flip_i420,
};
use crate::inject::{Kind, SharedFaults};
use crate::sys::clock::monotonic_us;
use crate::sys::notify::Doorbell;
use crate::sys::shm::SharedMemory;
use crate::sys::timer::Timer;

/// Smallest crop the synthetic sensor accepts (a real ISP has a similar floor).
pub const MIN_CROP: Size = Size { w: 64, h: 64 };

#[derive(Clone, Debug)]
pub struct SyntheticConfig {
    pub sensor: Size,
    pub output: Size,
    pub fps: u32,
    /// Horizontal disparity between the eyes, sensor pixels.
    pub disparity: u32,
    /// How eye 1's camera is mounted off eye 0's (tests of `calibrate`).
    pub misalign: Misalign,
    /// One being captured, one being encoded (see `pipeline::MAX_ENCODER_BACKLOG`), and one
    /// for each frame tap to hold (memfd pages cost memory only once a frame is drawn in them).
    pub buffers_per_eye: usize,
    /// The CPU the capture thread stays on, if any. The daemon gives it eye 1's encoder CPU:
    /// eye 0 is rendered while eye 1's encoder sleeps, and eye 1 before it wakes, so the
    /// renders never wait behind an encode (a Pi's ISP does this work in hardware).
    pub cpu: Option<usize>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            sensor: Size { w: 2304, h: 1296 },
            output: Size { w: 960, h: 1080 },
            fps: 30,
            disparity: 24,
            misalign: Misalign::default(),
            buffers_per_eye: 2 + crate::limits::MAX_TAPS,
            cpu: None,
        }
    }
}

#[derive(Default)]
struct EyeQueues {
    pending: VecDeque<Request>,
    done: VecDeque<Completed>,
    starved: u64,
    flip: Flip,
}

struct RigState {
    eyes: [EyeQueues; 2],
    /// Sequence number the next tick will carry.
    next_tick: u32,
    running: bool,
    /// A new frame rate for the capture thread to take up.
    new_fps: Option<u32>,
}

struct Shared {
    state: Mutex<RigState>,
    doorbells: [Doorbell; 2],
    stop: AtomicBool,
}

/// Owns the capture thread; the two eyes are handed out as [`SyntheticEye`]s.
pub struct SyntheticRig {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub struct SyntheticEye {
    eye: u8,
    info: CameraInfo,
    shared: Arc<Shared>,
    buffers: Vec<FrameBuffer>,
}

impl SyntheticRig {
    pub fn start(cfg: &SyntheticConfig, faults: SharedFaults) -> std::io::Result<(SyntheticRig, [SyntheticEye; 2])> {
        if cfg.output.w % 2 != 0 || cfg.output.h % 2 != 0 || cfg.sensor.w % 2 != 0 || cfg.sensor.h % 2 != 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "sizes must be even"));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(RigState {
                eyes: [EyeQueues::default(), EyeQueues::default()],
                next_tick: 0,
                running: true,
                new_fps: None,
            }),
            doorbells: [Doorbell::new()?, Doorbell::new()?],
            stop: AtomicBool::new(false),
        });
        let layout = FrameLayout::i420(cfg.output);
        let make_eye = |eye: u8| -> std::io::Result<SyntheticEye> {
            let buffers = (0..cfg.buffers_per_eye)
                .map(|index| {
                    Ok(FrameBuffer {
                        index,
                        memory: SharedMemory::memfd(&format!("pieyes-eye{eye}-{index}"), layout.len())?,
                        layout,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(SyntheticEye {
                eye,
                info: CameraInfo {
                    id: format!("synthetic:{eye}"),
                    sensor: Rect::new(0, 0, cfg.sensor.w, cfg.sensor.h),
                    output: cfg.output,
                    min_crop: MIN_CROP,
                    fps: cfg.fps,
                    crop_supported: true,
                    sensor_mode: None,
                },
                shared: shared.clone(),
                buffers,
            })
        };
        let eyes = [make_eye(0)?, make_eye(1)?];
        let timer = Timer::new(false)?;
        let period = Duration::from_nanos(1_000_000_000 / cfg.fps.max(1) as u64);
        let origin = monotonic_us() + period.as_micros() as u64;
        timer.set_periodic_from(origin, period)?;
        let scene = Scene::new(cfg.sensor, cfg.disparity).with_misalign(cfg.misalign);
        let thread_shared = shared.clone();
        let sensor = Rect::new(0, 0, cfg.sensor.w, cfg.sensor.h);
        let cpu = cfg.cpu;
        let thread = std::thread::Builder::new().name("synthetic-cam".into()).spawn(move || {
            if let Some(cpu) = cpu
                && let Err(e) = crate::sys::thread::pin_to_cpu(cpu)
            {
                crate::warn!("synthetic camera: cannot stay on CPU {cpu}: {e}; it runs unpinned");
            }
            capture_thread(thread_shared, timer, scene, sensor, origin, period, faults)
        })?;
        Ok((SyntheticRig { shared, thread: Some(thread) }, eyes))
    }
}

impl Drop for SyntheticRig {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn capture_thread(
    shared: Arc<Shared>,
    timer: Timer,
    scene: Scene,
    sensor: Rect,
    first_us: u64,
    period: Duration,
    faults: SharedFaults,
) {
    let mut xmap = Vec::new();
    let mut period_us = period.as_micros() as u64;
    // Nominal time of the next tick: the capture timestamp is the tick's, not the wake-up's.
    let mut next_us = first_us;
    while !shared.stop.load(Ordering::SeqCst) {
        let ticks = timer.expirations();
        if ticks == 0 {
            continue;
        }
        let now = monotonic_us();
        let stalled = [0u8, 1].map(|eye| faults.active(Kind::CameraStall, eye, now).is_some());
        // A late wake-up (ticks > 1) skips the missed ticks: their sequences are simply gone.
        // The tick's own requests are taken under the same lock that advances `next_tick`, so a
        // request queued meanwhile is promised (and gets) the next sequence, never this one.
        let (seq, new_fps, flips, mut taken) = {
            let mut st = shared.state.lock().unwrap();
            let seq = st.next_tick.wrapping_add(ticks as u32 - 1);
            st.next_tick = seq.wrapping_add(1);
            // Ticks the thread slept through are frames the sensor lost. Each takes the request
            // queued for it (handed back as skipped), so every later request still lands on the
            // sequence it was queued for — what a crop command's reply promised.
            for (i, e) in st.eyes.iter_mut().enumerate() {
                for lost in 0..ticks as u32 - 1 {
                    match e.pending.pop_front() {
                        Some(Request { buffer, controls }) => {
                            let sequence = seq.wrapping_sub(ticks as u32 - 1).wrapping_add(lost);
                            let meta = FrameMeta { eye: i as u8, sequence, capture_us: 0, crop: controls.crop };
                            e.done.push_back(Completed { buffer, meta, status: FrameStatus::Skipped });
                        }
                        None => e.starved += 1,
                    }
                }
            }
            let mut taken: [Option<Request>; 2] = [None, None];
            for (i, e) in st.eyes.iter_mut().enumerate() {
                if stalled[i] {
                    continue; // injected: the sensor delivers nothing, the request waits
                }
                taken[i] = e.pending.pop_front();
                if taken[i].is_none() {
                    e.starved += 1;
                }
            }
            (seq, st.new_fps.take(), [st.eyes[0].flip, st.eyes[1].flip], taken)
        };
        if ticks > 1 {
            shared.doorbells.iter().for_each(|d| d.ring());
        }
        let capture_us = next_us + (ticks - 1) * period_us;
        next_us = capture_us + period_us;
        if let Some(fps) = new_fps {
            period_us = 1_000_000 / fps.max(1) as u64;
            next_us = monotonic_us() + period_us;
            if let Err(e) = timer.set_periodic_from(next_us, Duration::from_micros(period_us)) {
                crate::error!("synthetic camera: cannot change the frame rate: {e}");
            }
        }
        for eye in 0..2u8 {
            let Some(req) = taken[eye as usize].take() else { continue };
            let Request { mut buffer, controls } = req;
            if faults.active(Kind::CameraError, eye, now).is_some() {
                let meta = FrameMeta { eye, sequence: seq, capture_us, crop: controls.crop };
                let status = FrameStatus::Failed("injected camera error".into());
                shared.state.lock().unwrap().eyes[eye as usize].done.push_back(Completed { buffer, meta, status });
                shared.doorbells[eye as usize].ring();
                continue;
            }
            let crop = clamp_crop(controls.crop, sensor, MIN_CROP);
            let layout = buffer.layout.as_i420().expect("synthetic buffers are contiguous I420");
            scene.render(eye, capture_us, crop, layout, buffer.pixels_mut(), &mut xmap);
            if flips[eye as usize] != Flip::None {
                flip_i420(layout, buffer.pixels_mut(), flips[eye as usize]);
            }
            let meta = FrameMeta { eye, sequence: seq, capture_us, crop };
            Stamp { eye, sequence: seq, capture_us, crop }.paint(layout, buffer.pixels_mut());
            shared.state.lock().unwrap().eyes[eye as usize].done.push_back(Completed {
                buffer,
                meta,
                status: FrameStatus::Ok,
            });
            shared.doorbells[eye as usize].ring();
        }
    }
}

impl Camera for SyntheticEye {
    fn info(&self) -> &CameraInfo {
        &self.info
    }

    fn completion_fd(&self) -> BorrowedFd<'_> {
        self.shared.doorbells[self.eye as usize].as_fd()
    }

    fn take_buffers(&mut self) -> Vec<FrameBuffer> {
        std::mem::take(&mut self.buffers)
    }

    fn queue_request(&mut self, request: Request) -> Result<u32, Box<(Request, CameraError)>> {
        let mut st = self.shared.state.lock().unwrap();
        if !st.running {
            return Err(Box::new((request, CameraError::NotRunning)));
        }
        let q = &mut st.eyes[self.eye as usize];
        q.pending.push_back(request);
        let n = q.pending.len() as u32;
        Ok(st.next_tick.wrapping_add(n - 1))
    }

    fn next_sequence(&self) -> u32 {
        let st = self.shared.state.lock().unwrap();
        st.next_tick.wrapping_add(st.eyes[self.eye as usize].pending.len() as u32)
    }

    fn queued(&self) -> usize {
        self.shared.state.lock().unwrap().eyes[self.eye as usize].pending.len()
    }

    fn drain_completed(&mut self, out: &mut Vec<Completed>) {
        self.shared.doorbells[self.eye as usize].drain();
        out.extend(self.shared.state.lock().unwrap().eyes[self.eye as usize].done.drain(..));
    }

    fn starved_frames(&self) -> u64 {
        self.shared.state.lock().unwrap().eyes[self.eye as usize].starved
    }

    fn set_flip(&mut self, flip: Flip) -> Result<(), CameraError> {
        self.shared.state.lock().unwrap().eyes[self.eye as usize].flip = flip;
        Ok(())
    }

    /// Both eyes share one sensor clock: changing one eye's rate changes the rig's.
    fn set_fps(&mut self, fps: u32) -> Result<(), CameraError> {
        if fps == 0 || fps > 1000 {
            return Err(CameraError::Other(format!("{fps} fps is not possible")));
        }
        self.shared.state.lock().unwrap().new_fps = Some(fps);
        self.info.fps = fps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Controls;

    /// A small rig (two buffers per eye, unpinned) at `fps`.
    fn small(fps: u32) -> SyntheticConfig {
        SyntheticConfig {
            sensor: Size { w: 640, h: 360 },
            output: Size { w: 320, h: 240 },
            fps,
            disparity: 8,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn both_eyes_complete_on_the_same_tick_with_the_requested_crop() {
        let cfg = small(20);
        let (_rig, mut eyes) = SyntheticRig::start(&cfg, Default::default()).unwrap();
        let crop = Rect::new(100, 40, 320, 240);
        let mut predicted = [0u32; 2];
        for (i, eye) in eyes.iter_mut().enumerate() {
            let b = eye.take_buffers().remove(0);
            predicted[i] = eye.queue_request(Request { buffer: b, controls: Controls { crop } }).ok().unwrap();
        }
        let mut got: Vec<Vec<Completed>> = vec![Vec::new(), Vec::new()];
        let deadline = monotonic_us() + 2_000_000;
        while (got[0].is_empty() || got[1].is_empty()) && monotonic_us() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            for (i, eye) in eyes.iter_mut().enumerate() {
                eye.drain_completed(&mut got[i]);
            }
        }
        let (a, b) = (&got[0][0], &got[1][0]);
        assert_eq!(a.meta.sequence, b.meta.sequence, "same tick for both eyes");
        assert_eq!(a.meta.capture_us, b.meta.capture_us);
        assert_eq!(a.meta.crop, crop);
        // Both requests were queued before any tick, or both after the same one.
        assert_eq!(predicted[0], a.meta.sequence);
        let s = Stamp::read(a.buffer.pixels(), 320, 320).unwrap();
        assert_eq!((s.eye, s.sequence, s.crop), (0, a.meta.sequence, crop));
        let s = Stamp::read(b.buffer.pixels(), 320, 320).unwrap();
        assert_eq!(s.eye, 1);
    }

    #[test]
    fn every_request_lands_on_the_sequence_it_was_promised_even_when_the_capture_falls_behind() {
        let cfg = small(100);
        let (_rig, [mut eye, _other]) = SyntheticRig::start(&cfg, Default::default()).unwrap();
        let mut free = eye.take_buffers();
        let mut promised = std::collections::HashMap::new();
        let (mut ok, mut skipped) = (0, 0);
        let deadline = monotonic_us() + 1_500_000;
        let mut n = 0u32;
        while monotonic_us() < deadline {
            if let Some(buffer) = free.pop() {
                let crop = Rect::new(2 * (n % 100), 0, 320, 240);
                let seq = eye.queue_request(Request { buffer, controls: Controls { crop } }).ok().unwrap();
                promised.insert(seq, crop);
                n += 1;
            }
            // Now and then hold the capture thread up for a few frame times.
            if n % 20 == 0 {
                let _held = eye.shared.state.lock().unwrap();
                std::thread::sleep(Duration::from_millis(35));
            }
            std::thread::sleep(Duration::from_millis(3));
            let mut done = Vec::new();
            eye.drain_completed(&mut done);
            for c in done {
                let want = promised.remove(&c.meta.sequence);
                assert_eq!(
                    want,
                    Some(c.meta.crop),
                    "frame {} was not the one its request was queued for",
                    c.meta.sequence
                );
                match c.status {
                    FrameStatus::Ok => ok += 1,
                    FrameStatus::Skipped => skipped += 1,
                    FrameStatus::Failed(e) => panic!("{e}"),
                }
                free.push(c.buffer);
            }
        }
        assert!(ok > 50, "{ok} frames captured");
        assert!(skipped > 0, "the capture really fell behind ({skipped} skipped)");
    }
}
