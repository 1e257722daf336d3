//! The software H.264 encoder (the Pi 5 path: it has no hardware encoder): OpenH264 on one
//! worker thread per eye. The worker reads the camera's buffer in place (no copy into the
//! encoder; a dma-buf between DMA_BUF_IOCTL_SYNC START and END), writes the access unit after
//! some reserved headroom, and rings the loop's doorbell.
//!
//! Settings are the low-latency ones (see `openh264_api`): Constrained Baseline (no B-frames,
//! no reordering), one frame in → one frame out (no lookahead), bitrate rate control without
//! frame skipping (a skipped frame would be a hole in the stream) held at its target by
//! `rate::RateGuard`, an IDR's budget of [`IDR_PERCENT`] of a mean frame, periodic IDR every
//! `gop_frames`, SPS/PPS in front of every IDR, one reference picture.
//!
//! `--encoder-threads N`: each picture is cut into N slices that OpenH264's thread pool encodes
//! in parallel. That pool is one per process, shared by both eyes, and its threads inherit the
//! CPU affinity of the thread that first initialises an encoder: so a worker initialises its
//! encoder *before* `--encoder-cpus` pins it, and the slice threads may run on every CPU pieyes
//! may use while each eye's own thread (frame in, rate control, bitstream out) stays on its CPU.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::openh264_api::{Settings, Wels};
use super::picture::{Scratch, picture};
use super::pin::PinWatch;
use super::rate::RateGuard;
use super::{AccessUnit, EncodeJob, Encoded, Encoder, EncoderConfig};
use crate::camera::FrameBuffer;
use crate::inject::{Kind, SharedFaults};
use crate::sys::clock::{monotonic_us, thread_cpu_us};
use crate::sys::dmabuf::{Access, SyncPolicy};
use crate::sys::notify::Doorbell;

/// How much nicer than the rest of the daemon the encoder threads run.
pub const ENCODER_NICE: i32 = 5;

/// Bytes reserved in front of each access unit: the largest WebSocket frame header (10) plus
/// pieyes' wire header (32), so the stream layer never copies the picture.
pub const HEADROOM: usize = 42;

/// An IDR's bit budget in percent of a mean frame's (OpenH264's default is 400): within a VBV of
/// [`VBV_FRAMES`]. Stock OpenH264 clamps an IDR's QP to a table by bits per pixel
/// (`RcCalculateIdrQp`), which at 960x1080 and 3 Mbit/s overrides this: its IDRs stay ~10× a
/// P-frame. `--keyframe-size small` holds them to it (pieyes' OpenH264 option; README, Keyframe
/// size).
pub const IDR_PERCENT: u32 = 200;

/// The frame-size ceiling the bench measures the encoder against: a frame interval's share of
/// a VBV this many frames long.
pub const VBV_FRAMES: u32 = 3;

enum Msg {
    Frame(EncodeJob),
    Configure(EncoderConfig),
}

struct Shared {
    done: Mutex<VecDeque<Encoded>>,
    doorbell: Doorbell,
    /// The CPU the worker is kept on ([`UNPINNED`]: none), as the worker last set it.
    cpu: AtomicUsize,
}

const UNPINNED: usize = usize::MAX;

pub struct SoftwareEncoder {
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
    threads: u16,
}

/// OpenH264 with pieyes' settings and its rate guard: what one eye's worker encodes with.
pub struct H264Encoder {
    wels: Wels,
    guard: RateGuard,
}

impl H264Encoder {
    pub fn settings(&self) -> &Settings {
        self.wels.settings()
    }

    /// The target OpenH264 is given now (the guard's correction of the real one).
    pub fn inner_bitrate(&self) -> u32 {
        self.guard.inner_bps()
    }
}

/// How the software encoder is set up beyond what the controller commands: fixed for the
/// daemon's life (`--encoder-threads`, `--deblock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Slices per picture (1..=4), each encoded by a thread of OpenH264's pool.
    pub threads: u16,
    /// H.264's in-loop deblocking filter.
    pub deblock: bool,
    /// Each IDR held to its budget (`--keyframe-size small`).
    pub small_idr: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { threads: 1, deblock: true, small_idr: false }
    }
}

/// OpenH264 for `cfg` as `tuning` says; `share`: the inner target as a share of the real one,
/// from the encoder this one replaces (1 for a new eye).
pub fn new_h264_encoder(cfg: &EncoderConfig, tuning: Tuning, share: f64) -> Result<H264Encoder, String> {
    let guard = RateGuard::new(cfg.bitrate_bps, cfg.fps, cfg.gop_frames, share);
    let settings = Settings {
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
        bitrate_bps: guard.inner_bps(),
        gop_frames: cfg.gop_frames,
        threads: tuning.threads,
        idr_percent: IDR_PERCENT,
        deblock: tuning.deblock,
        small_idr: tuning.small_idr,
    };
    Ok(H264Encoder { wels: Wels::new(&settings)?, guard })
}

/// Encode one picture into a fresh access unit with `HEADROOM` bytes in front.
pub fn encode_one(
    enc: &mut H264Encoder,
    buffer: &FrameBuffer,
    force_idr: bool,
    scratch: &mut Scratch,
) -> Result<AccessUnit, String> {
    let pic = picture(&buffer.layout, buffer.pixels(), scratch);
    let mut data = Vec::with_capacity(HEADROOM + 64 * 1024);
    data.resize(HEADROOM, 0);
    let keyframe = enc.wels.encode(&pic, force_idr, &mut data)?;
    if data.len() == HEADROOM {
        return Err("openh264 produced no output for a frame".into());
    }
    if let Some(bps) = enc.guard.record(data.len() - HEADROOM) {
        enc.wels.set_bitrate(bps)?;
    }
    Ok(AccessUnit { data, headroom: HEADROOM, keyframe })
}

fn worker(
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    cfg: EncoderConfig,
    eye: u8,
    cpu: Option<usize>,
    tuning: Tuning,
    faults: SharedFaults,
) {
    // Below the loop and the capture thread: they only move frames and must never wait for us.
    // (OpenH264's slice threads, made by the first encoder initialised, inherit this.)
    if let Err(e) = crate::sys::thread::lower_priority(ENCODER_NICE) {
        crate::debug!("encoder {eye}: cannot lower its priority: {e}");
    }
    // Initialised before pinning: OpenH264's slice threads inherit this thread's CPU mask.
    let mut enc = new_h264_encoder(&cfg, tuning, 1.0);
    // One core per eye: unpinned, the two encoders were woken together and, now and then,
    // queued on the same core while the other idled (seen with `perf sched`: a keyframe's
    // 9 ms encode took 13-17 ms); pinned, the p99 of the daemon's encode equals the encoder's.
    // Unless something else holds that CPU and will not move: then the encoder leaves it
    // (see `pin`).
    let allowed = crate::sys::thread::allowed_cpus().unwrap_or_default();
    let mut pinned = None;
    if let Some(cpu) = cpu {
        match crate::sys::thread::pin_to_cpu(cpu) {
            Ok(()) => pinned = Some(cpu),
            Err(e) => crate::warn!("eye {eye}: cannot keep the encoder on CPU {cpu}: {e}; it runs unpinned"),
        }
    }
    shared.cpu.store(pinned.unwrap_or(UNPINNED), Ordering::Relaxed);
    let mut fps = cfg.fps;
    let mut watch = pinned.and_then(|cpu| PinnedCpu::new(cpu, &allowed, fps));
    let mut scratch = Scratch::default();
    // A camera's dma-buf is read in place between DMA_BUF_IOCTL_SYNC START and END; a memfd
    // answers the first SYNC with ENOTTY and is never asked again.
    let mut sync = SyncPolicy::default();
    let mut sync_error_reported = false;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Configure(cfg) => {
                // OpenH264 is rebuilt with the new settings; its first frame is an IDR. The old
                // one goes after the new one is made, so the slice thread pool (refcounted)
                // stays, with its CPU mask. The guard's learned correction carries over.
                let share = enc.as_ref().map_or(1.0, |e| e.guard.share());
                enc = new_h264_encoder(&cfg, tuning, share);
                fps = cfg.fps;
                if let Some(w) = &mut watch {
                    w.watch.set_fps(fps);
                    w.frame_done(None);
                }
            }
            Msg::Frame(job) => {
                if let Some(until) = faults.active(Kind::EncoderHang, eye, monotonic_us()) {
                    std::thread::sleep(std::time::Duration::from_micros(until.saturating_sub(monotonic_us())));
                }
                let cpu0 = thread_cpu_us();
                let access = match sync.begin(job.buffer.fd(), Access::Read) {
                    Ok(a) => {
                        if a.is_some() && !sync_error_reported && sync.dmabuf() == Some(true) {
                            // First dma-buf: say once that frames are read in place with syncs.
                            sync_error_reported = true;
                            crate::debug!(
                                "eye {eye}: software encoder reads the camera's dma-bufs in place (DMA_BUF_IOCTL_SYNC)"
                            );
                        }
                        a
                    }
                    Err(e) => {
                        if !sync_error_reported {
                            sync_error_reported = true;
                            crate::warn!("eye {eye}: DMA_BUF_IOCTL_SYNC on a camera buffer: {e}; reading anyway");
                        }
                        None
                    }
                };
                let result = match enc.as_mut() {
                    _ if faults.active(Kind::EncoderError, eye, monotonic_us()).is_some() => {
                        Err("injected encoder error".to_string())
                    }
                    Ok(e) => encode_one(e, &job.buffer, job.force_idr, &mut scratch),
                    Err(e) => Err(e.clone()),
                };
                drop(access);
                let out = Encoded {
                    buffer: job.buffer,
                    meta: job.meta,
                    result,
                    cpu_us: thread_cpu_us() - cpu0,
                    done_us: monotonic_us(),
                };
                shared.done.lock().unwrap().push_back(out);
                shared.doorbell.ring();
                let verdict = watch.as_mut().and_then(|w| w.frame_done(Some(monotonic_us())));
                if let Some(v) = verdict.filter(|v| !v.leave) {
                    crate::debug!(
                        "eye {eye}: encoder stays on its CPU: its frames waited {:.2} s of {:.1} s there, the other CPUs idled {:.2} s",
                        v.waited_us as f64 / 1e6,
                        v.window_us as f64 / 1e6,
                        v.idle_us as f64 / 1e6
                    );
                }
                if let Some(w) = &watch
                    && let Some(v) = verdict.filter(|v| v.leave)
                {
                    let cpu = w.cpu;
                    watch = None;
                    match crate::sys::thread::set_affinity(&allowed) {
                        Ok(()) => {
                            shared.cpu.store(UNPINNED, Ordering::Relaxed);
                            crate::warn!(
                                "eye {eye}: encoder leaves CPU {cpu}: its frames waited {:.1} s of the last {:.1} s for it \
                                 while the other CPUs idled {:.1} s (something there does not make way, at {fps} fps); \
                                 it runs on any CPU from now on",
                                v.waited_us as f64 / 1e6,
                                v.window_us as f64 / 1e6,
                                v.idle_us as f64 / 1e6
                            );
                        }
                        Err(e) => crate::warn!("eye {eye}: encoder cannot leave CPU {cpu}: {e}"),
                    }
                }
            }
        }
    }
}

/// A pinned worker's watch on its CPU: its run-queue wait per frame, fed to [`PinWatch`].
struct PinnedCpu {
    cpu: usize,
    others: Vec<usize>,
    run_delay: crate::sys::thread::RunDelay,
    last_delay_us: u64,
    watch: PinWatch,
}

impl PinnedCpu {
    /// None when there is nowhere else to go or the kernel does not say how long a thread
    /// waits (no CONFIG_SCHED_INFO): the pin then simply stays.
    fn new(cpu: usize, allowed: &[usize], fps: u32) -> Option<PinnedCpu> {
        let others: Vec<usize> = allowed.iter().copied().filter(|&c| c != cpu).collect();
        if others.is_empty() {
            return None;
        }
        let Some(mut run_delay) = crate::sys::thread::RunDelay::open() else {
            crate::debug!("encoder on CPU {cpu}: no /proc/thread-self/schedstat: it stays there whatever waits");
            return None;
        };
        let last_delay_us = run_delay.read_us()?;
        Some(PinnedCpu { cpu, others, run_delay, last_delay_us, watch: PinWatch::new(fps) })
    }

    /// After a message: the run-queue wait since the last one goes to the watch when it was a
    /// frame finished at `frame_done_us`.
    fn frame_done(&mut self, frame_done_us: Option<u64>) -> Option<super::pin::Verdict> {
        let now = self.run_delay.read_us()?;
        let wait = now.saturating_sub(self.last_delay_us);
        self.last_delay_us = now;
        let others = &self.others;
        self.watch.frame(frame_done_us?, wait, &mut || crate::sys::thread::cpus_idle_us(others))
    }
}

impl SoftwareEncoder {
    /// Start eye `eye`'s worker thread, kept on `cpu` when given, its pictures cut into
    /// `tuning.threads` slices (1..=4) that OpenH264's thread pool encodes in parallel.
    pub fn start(
        eye: u8,
        cfg: EncoderConfig,
        cpu: Option<usize>,
        tuning: Tuning,
        faults: SharedFaults,
    ) -> std::io::Result<Self> {
        let tuning = Tuning { threads: tuning.threads.clamp(1, super::openh264_api::MAX_THREADS), ..tuning };
        let threads = tuning.threads;
        let shared = Arc::new(Shared {
            done: Mutex::new(VecDeque::new()),
            doorbell: Doorbell::new()?,
            cpu: AtomicUsize::new(cpu.unwrap_or(UNPINNED)),
        });
        let (tx, rx) = channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("encoder-{eye}"))
            .spawn(move || worker(rx, s, cfg, eye, cpu, tuning, faults))?;
        Ok(SoftwareEncoder { tx: Some(tx), shared, thread: Some(thread), in_flight: 0, threads })
    }
}

impl Encoder for SoftwareEncoder {
    fn completion_fd(&self) -> BorrowedFd<'_> {
        self.shared.doorbell.as_fd()
    }

    fn queue(&mut self, job: EncodeJob) -> Result<(), Box<(EncodeJob, String)>> {
        let Some(tx) = &self.tx else {
            return Err(Box::new((job, "encoder stopped".into())));
        };
        match tx.send(Msg::Frame(job)) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(std::sync::mpsc::SendError(Msg::Frame(job))) => Err(Box::new((job, "encoder thread is gone".into()))),
            Err(_) => unreachable!("sent a frame"),
        }
    }

    fn drain(&mut self, out: &mut Vec<Encoded>) {
        self.shared.doorbell.drain();
        let mut done = self.shared.done.lock().unwrap();
        self.in_flight -= done.len().min(self.in_flight);
        out.extend(done.drain(..));
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn configure(&mut self, cfg: EncoderConfig) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Configure(cfg));
        }
    }

    fn name(&self) -> &'static str {
        "software (OpenH264)"
    }

    fn cpu(&self) -> Option<usize> {
        Some(self.shared.cpu.load(Ordering::Relaxed)).filter(|&c| c != UNPINNED)
    }

    fn threads(&self) -> u16 {
        self.threads
    }
}

impl Drop for SoftwareEncoder {
    fn drop(&mut self) {
        self.tx = None; // closes the channel: the worker finishes its frame and exits
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    use super::*;
    use crate::camera::scene::Scene;
    use crate::camera::stamp::Stamp;
    use crate::camera::{FrameLayout, I420Layout, Rect, Size, full_view};
    use crate::encoder::h264;
    use crate::sys::shm::SharedMemory;

    /// The synthetic scene as the daemon streams it, `threads` slices, an IDR every second:
    /// every decoded frame's stamp readable (the frames after each IDR too), and the bitrate
    /// at its target once the guard has settled. Not timed: frames go in as fast as they encode.
    fn encode_synthetic(threads: u16) {
        let (out, sensor, fps, bps) = (Size { w: 960, h: 1080 }, Size { w: 2304, h: 1296 }, 30u32, 3_000_000u32);
        let cfg = EncoderConfig { width: out.w, height: out.h, fps, bitrate_bps: bps, gop_frames: fps };
        let mut enc = new_h264_encoder(&cfg, Tuning { threads, ..Tuning::default() }, 1.0).unwrap();
        let layout = I420Layout::new(out);
        let mut buf = FrameBuffer {
            index: 0,
            memory: SharedMemory::memfd("test", layout.frame_len()).unwrap(),
            layout: FrameLayout::i420(out),
        };
        let scene = Scene::new(sensor, 24);
        let crop = full_view(Rect::new(0, 0, sensor.w, sensor.h), out);
        let (mut xmap, mut scratch) = (Vec::new(), Scratch::default());
        let mut dec = Decoder::new().unwrap();
        let mut sizes = Vec::new();
        let frames = 10 * fps;
        for i in 0..frames {
            let t = i as u64 * 1_000_000 / fps as u64;
            scene.render(0, t, crop, layout, buf.pixels_mut(), &mut xmap);
            Stamp { eye: 0, sequence: i, capture_us: t, crop }.paint(layout, buf.pixels_mut());
            let au = encode_one(&mut enc, &buf, false, &mut scratch).unwrap();
            let n = au.annexb().len();
            assert_eq!(au.keyframe, i % fps == 0, "frame {i}");
            if threads > 1 {
                let slices = h264::nal_units(au.annexb()).filter(|n| matches!(h264::nal_type(n), 1 | 5)).count();
                assert_eq!(slices, threads as usize, "frame {i}: one slice per thread");
            }
            let pic = dec.decode(au.annexb()).unwrap().expect("a picture per access unit");
            let s = Stamp::read(pic.y(), out.w, pic.strides().0).unwrap_or_else(|| panic!("frame {i}: no stamp"));
            assert_eq!(s.sequence, i);
            sizes.push(n);
        }
        // The last 5 s (the guard settles in its first seconds) at the target ±5 %.
        let tail = &sizes[sizes.len() - 5 * fps as usize..];
        let got = tail.iter().sum::<usize>() as f64 * 8.0 / 5.0;
        assert!((got / bps as f64 - 1.0).abs() < 0.05, "{got} bit/s for {bps}");
    }

    #[test]
    fn one_slice_keeps_its_stamps_and_bitrate() {
        encode_synthetic(1);
    }

    #[test]
    fn two_slices_on_two_threads_keep_their_stamps_and_bitrate() {
        encode_synthetic(2);
    }
}
