//! The software H.264 encoder (the Pi 5 path: it has no hardware encoder): OpenH264 on one
//! worker thread per eye. The worker reads the camera's buffer in place (no copy into the
//! encoder; a dma-buf between DMA_BUF_IOCTL_SYNC START and END), writes the access unit after
//! some reserved headroom, and rings the loop's doorbell.
//!
//! Settings are the low-latency ones: Constrained Baseline (no B-frames, no reordering), one
//! frame in → one frame out (no lookahead), bitrate rate control without frame skipping (a
//! skipped frame would be a hole in the stream), periodic IDR every `gop_frames`, SPS/PPS in
//! front of every IDR.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use openh264::encoder::{
    BitRate, Complexity, Encoder as H264Encoder, EncoderConfig as H264Config, FrameRate, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};

use super::picture::{Scratch, picture};
use super::{AccessUnit, EncodeJob, Encoded, Encoder, EncoderConfig, h264};
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

enum Msg {
    Frame(EncodeJob),
    Configure(EncoderConfig),
}

struct Shared {
    done: Mutex<VecDeque<Encoded>>,
    doorbell: Doorbell,
}

pub struct SoftwareEncoder {
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
    cpu: Option<usize>,
}

fn h264_config(cfg: &EncoderConfig) -> H264Config {
    H264Config::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(cfg.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
        .skip_frames(false)
        .complexity(Complexity::Low)
        .intra_frame_period(IntraFramePeriod::from_num_frames(cfg.gop_frames))
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        // Background detection lets the encoder skip "static" macroblocks; the stamp's cells
        // change every frame and must never be skipped.
        .background_detection(false)
        .scene_change_detect(false)
        .num_threads(1)
}

/// Encode one picture into a fresh access unit with `HEADROOM` bytes in front.
pub fn encode_one(
    enc: &mut H264Encoder,
    buffer: &FrameBuffer,
    force_idr: bool,
    scratch: &mut Scratch,
) -> Result<AccessUnit, String> {
    if force_idr {
        enc.force_intra_frame();
    }
    let pic = picture(&buffer.layout, buffer.pixels(), scratch);
    let bs = enc.encode(&pic).map_err(|e| format!("openh264: {e}"))?;
    let mut data = Vec::with_capacity(HEADROOM + 64 * 1024);
    data.resize(HEADROOM, 0);
    bs.write_vec(&mut data);
    if data.len() == HEADROOM {
        return Err("openh264 produced no output for a frame".into());
    }
    let keyframe = h264::is_idr(&data[HEADROOM..]);
    Ok(AccessUnit { data, headroom: HEADROOM, keyframe })
}

#[allow(unsafe_code)] // FFI: one raw OpenH264 call the wrapper does not expose
pub fn new_h264_encoder(cfg: &EncoderConfig) -> Result<H264Encoder, String> {
    let mut enc = H264Encoder::with_api_config(openh264::OpenH264API::from_source(), h264_config(cfg))
        .map_err(|e| format!("openh264 init: {e}"))?;
    // OpenH264 initialises on the first frame and meanwhile prints to stderr, in its own format,
    // that its bitrate control "needs" frame skipping, which pieyes leaves off on purpose (every
    // frame carries a stamp and a crop). Only its errors stay on; a failure also comes back as an
    // error value, logged by us. (The wrapper silences it entirely once initialised.)
    let mut level: std::os::raw::c_int = openh264_sys2::WELS_LOG_ERROR;
    // SAFETY: SetOption(ENCODER_OPTION_TRACE_LEVEL) reads one int through the pointer during the
    // call; OpenH264 accepts this option before initialisation (welsEncoderExt.cpp, SetOption).
    unsafe { enc.raw_api().set_option(openh264_sys2::ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast()) };
    Ok(enc)
}

fn worker(
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    cfg: EncoderConfig,
    eye: u8,
    cpu: Option<usize>,
    faults: SharedFaults,
) {
    // Below the loop and the capture thread: they only move frames and must never wait for us.
    if let Err(e) = crate::sys::thread::lower_priority(ENCODER_NICE) {
        crate::debug!("encoder {eye}: cannot lower its priority: {e}");
    }
    // One core per eye: unpinned, the two encoders were woken together and, now and then,
    // queued on the same core while the other idled (seen with `perf sched`: a keyframe's
    // 9 ms encode took 13-17 ms); pinned, the p99 of the daemon's encode equals the encoder's.
    if let Some(cpu) = cpu
        && let Err(e) = crate::sys::thread::pin_to_cpu(cpu)
    {
        crate::warn!("eye {eye}: cannot keep the encoder on CPU {cpu}: {e}; it runs unpinned");
    }
    let mut enc = new_h264_encoder(&cfg);
    let mut scratch = Scratch::default();
    // A camera's dma-buf is read in place between DMA_BUF_IOCTL_SYNC START and END; a memfd
    // answers the first SYNC with ENOTTY and is never asked again.
    let mut sync = SyncPolicy::default();
    let mut sync_error_reported = false;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Configure(cfg) => {
                // OpenH264 is rebuilt with the new settings; its first frame is an IDR.
                enc = new_h264_encoder(&cfg);
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
            }
        }
    }
}

impl SoftwareEncoder {
    /// Start eye `eye`'s worker thread, kept on `cpu` when given.
    pub fn start(eye: u8, cfg: EncoderConfig, cpu: Option<usize>, faults: SharedFaults) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { done: Mutex::new(VecDeque::new()), doorbell: Doorbell::new()? });
        let (tx, rx) = channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("encoder-{eye}"))
            .spawn(move || worker(rx, s, cfg, eye, cpu, faults))?;
        Ok(SoftwareEncoder { tx: Some(tx), shared, thread: Some(thread), in_flight: 0, cpu })
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
        self.cpu
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
