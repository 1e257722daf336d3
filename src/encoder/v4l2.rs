//! The V4L2 memory-to-memory encoder: the Pi 4's `bcm2835-codec` (H.264), and in the test VM
//! the kernel's `vicodec` (FWHT), which speaks the same stateful encoder API.
//!
//! It runs on the poll loop itself, no thread: `queue` is a QBUF on the OUTPUT queue, `drain`
//! DQBUFs both queues without blocking, and the device fd goes into the loop's poll() —
//! POLLIN when an encoded CAPTURE buffer is done, POLLOUT when an OUTPUT buffer (a camera frame)
//! is free again; [`Encoder::interest`] tells the loop which it needs.
//!
//! OUTPUT imports the camera's buffer fds as V4L2_MEMORY_DMABUF (zero copy) when they are
//! dma-bufs laid out the way the driver reads them; otherwise (a memfd, a layout or format the
//! driver does not take, or a driver that refuses the import) it falls back to
//! V4L2_MEMORY_MMAP buffers and one copy per frame. `name()`, the stream log line and `status`
//! say which. CAPTURE is mmap'ed; each access unit is copied out once into a `Vec` with
//! [`HEADROOM`] in front, as the software encoder lays them out.
//!
//! Streams start at the first frame (the OUTPUT format is the camera's layout) and restart when
//! the layout or the configured size changes: drain (V4L2_ENC_CMD_STOP until the LAST buffer),
//! STREAMOFF, REQBUFS 0, set up again. Every frame handed in comes back exactly once in an
//! `Encoded` — with its picture, or with an error after a restart, a device error or a stop
//! (see [`ledger`]).

pub mod bitstream;
pub mod ledger;
pub mod params;
pub mod select;

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

pub use select::{Codec, DeviceInfo, find_encoder};

use self::bitstream::{ParamSets, Payload};
use self::ledger::{Ledger, Matched};
use self::params::{Ctrl, driver_layout, importable, rate_controls, stream_controls};
use super::software::HEADROOM;
use super::{AccessUnit, EncodeJob, Encoded, Encoder, EncoderConfig, Interest};
use crate::camera::{FrameBuffer, FrameLayout, FrameMeta};
use crate::inject::{Kind, SharedFaults};
use crate::sys::clock::{monotonic_us, thread_cpu_us};
use crate::sys::dmabuf::{self, Access, SyncPolicy};
use crate::sys::notify::Doorbell;
use crate::sys::v4l2::{
    BUF_CAP_SUPPORTS_DMABUF, BUF_FLAG_ERROR, BUF_FLAG_LAST, BufType, Dequeued, Device, ENC_CMD_STOP, EVENT_EOS,
    EVENT_SOURCE_CHANGE, Mapping, Memory, Payload as QPayload, PixFmt, cid, fourcc_name,
};

/// How the OUTPUT queue gets the camera's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryChoice {
    /// dma-buf import when the frames are dma-bufs the driver can read in place, else mmap.
    Auto,
    /// Try dma-buf import without asking the buffer first (the driver's refusal is the test);
    /// fall back to mmap when refused.
    Dmabuf,
    /// Always mmap + copy.
    Mmap,
}

impl MemoryChoice {
    pub fn parse(s: &str) -> Option<MemoryChoice> {
        match s {
            "auto" => Some(MemoryChoice::Auto),
            "dmabuf" => Some(MemoryChoice::Dmabuf),
            "mmap" => Some(MemoryChoice::Mmap),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub codec: Codec,
    pub memory: MemoryChoice,
    /// OUTPUT buffers asked for (the driver may grant more or fewer).
    pub output_buffers: u32,
    /// CAPTURE buffers asked for.
    pub capture_buffers: u32,
    /// Keep a [`CaptureRecord`] of every CAPTURE buffer (the self-test asserts on them).
    pub trace: bool,
    /// Longest wait for a drain (ENC_CMD_STOP → LAST buffer) before tearing down anyway.
    pub drain_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            codec: Codec::H264,
            memory: MemoryChoice::Auto,
            output_buffers: 8,
            capture_buffers: 4,
            trace: false,
            drain_timeout_ms: 1000,
        }
    }
}

/// What the driver answered for one CAPTURE buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// Stream number (a restart starts a new one) and CAPTURE-queue epoch within it (a
    /// keyframe forced by restarting the CAPTURE queue starts a new epoch).
    pub generation: u32,
    pub epoch: u32,
    pub buffer: Dequeued,
    /// The CAPTURE format's sizeimage.
    pub sizeimage: u32,
    /// It held a picture (not only parameter sets, not empty).
    pub picture: bool,
}

/// A stream as set up with the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub generation: u32,
    pub memory: Memory,
    pub mplane: bool,
    pub output: PixFmt,
    pub capture: PixFmt,
    pub output_buffers: usize,
    pub capture_buffers: usize,
}

/// One control as asked and as the driver kept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub ctrl: Ctrl,
    /// The value read back (G_CTRL); None when it cannot be read.
    pub got: Option<i32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub streams: u32,
    pub restarts: u32,
    pub eos_events: u32,
    pub source_change_events: u32,
    pub last_buffers: u32,
    pub forced_by_control: u32,
    pub forced_by_capture_restart: u32,
    /// CAPTURE buffers that matched no frame (already failed, or not ours).
    pub stray_buffers: u32,
    /// Frames the device returned without a picture.
    pub lost_frames: u32,
}

struct Pending {
    buffer: FrameBuffer,
    meta: FrameMeta,
    cpu_us: u64,
}

struct Produced {
    au: AccessUnit,
    done_us: u64,
    cpu_us: u64,
}

/// One STREAMON…STREAMOFF run of both queues: their buffers, generation and epoch.
struct Streaming {
    generation: u32,
    epoch: u32,
    /// The camera's layout: the stream's key.
    frame_layout: FrameLayout,
    out_type: BufType,
    cap_type: BufType,
    memory: Memory,
    out_fmt: PixFmt,
    cap_fmt: PixFmt,
    /// How the driver reads an OUTPUT buffer.
    driver_layout: FrameLayout,
    out_maps: Vec<Mapping>,
    cap_maps: Vec<Mapping>,
    /// CAPTURE buffers queued in the device.
    cap_queued: usize,
    frames: u64,
    last_seen: bool,
}

pub struct V4l2Encoder {
    dev: Device,
    info: DeviceInfo,
    eye: u8,
    opts: Options,
    cfg: EncoderConfig,
    stream: Option<Streaming>,
    generation: u32,
    ledger: Ledger<Pending, Produced>,
    /// Frames finished outside the device's own readiness (a restart, an error): the loop is
    /// woken for them through `doorbell`.
    done: VecDeque<Encoded>,
    doorbell: Doorbell,
    /// Controls the driver refused: reported once, never asked again.
    unsupported: Vec<u32>,
    applied: Vec<Applied>,
    /// Whether V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME works (None: not tried yet).
    force_ctrl: Option<bool>,
    idr_pending: bool,
    param_sets: ParamSets,
    /// Parameter sets that came in a buffer of their own, for the next picture.
    header_prefix: Vec<u8>,
    sync: SyncPolicy,
    sync_error_reported: bool,
    /// Why dma-buf import will not be tried again.
    dmabuf_refused: Option<String>,
    subscribed: bool,
    start_error: Option<String>,
    faults: SharedFaults,
    trace: Vec<CaptureRecord>,
    counters: Counters,
}

/// Things other than controls that a driver may lack, reported once like controls (control ids
/// are all above 0x0098_0000, so these cannot collide).
const NO_S_PARM: u32 = 1;
const NO_ENC_STOP: u32 = 2;
const NO_EOS_EVENT: u32 = 3;
const NO_CROP: u32 = 4;

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

impl V4l2Encoder {
    /// Open the encoder at `info.path` (found with [`find_encoder`]). Nothing streams before
    /// the first frame.
    pub fn open(
        info: DeviceInfo,
        eye: u8,
        cfg: EncoderConfig,
        opts: Options,
        faults: SharedFaults,
    ) -> Result<V4l2Encoder, String> {
        if let Some(why) = select::rejection(&info, opts.codec) {
            return Err(format!("{}: {why}", info.path.display()));
        }
        let dev = Device::open(&info.path).map_err(|e| format!("{}: {e}", info.path.display()))?;
        let doorbell = Doorbell::new().map_err(|e| format!("eventfd: {e}"))?;
        crate::info!("eye {eye}: V4L2 {} encoder {}", opts.codec.name(), info.describe());
        Ok(V4l2Encoder {
            dev,
            info,
            eye,
            opts,
            cfg,
            stream: None,
            generation: 0,
            ledger: Ledger::new(opts.output_buffers as usize),
            done: VecDeque::new(),
            doorbell,
            unsupported: Vec::new(),
            applied: Vec::new(),
            force_ctrl: None,
            idr_pending: false,
            param_sets: ParamSets::default(),
            header_prefix: Vec::new(),
            sync: SyncPolicy::default(),
            sync_error_reported: false,
            dmabuf_refused: None,
            subscribed: false,
            start_error: None,
            faults,
            trace: Vec::new(),
            counters: Counters::default(),
        })
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn stream_info(&self) -> Option<StreamInfo> {
        self.stream.as_ref().map(|s| StreamInfo {
            generation: s.generation,
            memory: s.memory,
            mplane: s.out_type.is_mplane(),
            output: s.out_fmt,
            capture: s.cap_fmt,
            output_buffers: self.ledger.slot_count(),
            capture_buffers: s.cap_maps.len(),
        })
    }

    pub fn applied_controls(&self) -> &[Applied] {
        &self.applied
    }

    /// Controls the driver refused so far.
    pub fn unsupported_controls(&self) -> &[u32] {
        &self.unsupported
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn take_trace(&mut self) -> Vec<CaptureRecord> {
        std::mem::take(&mut self.trace)
    }

    /// Buffers the device holds now: (OUTPUT, CAPTURE). Both 0 after [`V4l2Encoder::finish`].
    pub fn device_holds(&self) -> (usize, usize) {
        (self.ledger.busy_slots(), self.stream.as_ref().map_or(0, |s| s.cap_queued))
    }

    /// Clean stop: drain (ENC_CMD_STOP until the LAST buffer), STREAMOFF, free every buffer;
    /// returns every frame still inside, each exactly once.
    pub fn finish(&mut self) -> Vec<Encoded> {
        self.stop_stream("stop", true);
        self.done.drain(..).collect()
    }

    // ---- stream set-up and tear-down ---------------------------------------------------------

    /// Once per driver and thing: "{what} not supported ({e}); {instead}".
    fn report_unsupported(&mut self, id: u32, what: &str, e: &std::io::Error, instead: &str) {
        if self.unsupported.contains(&id) {
            return;
        }
        self.unsupported.push(id);
        crate::warn!("eye {}: V4L2 {}: {what} not supported ({e}); {instead}", self.eye, self.info.driver);
    }

    /// Set `ctrls` (skipping ones refused before), read each back, log one line.
    fn apply_controls(&mut self, ctrls: &[Ctrl]) {
        let mut parts = Vec::new();
        let mut refused = Vec::new();
        for c in ctrls {
            if self.unsupported.contains(&c.id) {
                continue;
            }
            match self.dev.set_control(c.id, c.value) {
                Ok(()) => {
                    let got = self.dev.get_control(c.id).ok();
                    parts.push(match got {
                        Some(v) if v != c.value => format!("{}={} (asked {})", c.name, v, c.value),
                        _ => format!("{}={}", c.name, c.value),
                    });
                    self.applied.retain(|a| a.ctrl.id != c.id);
                    self.applied.push(Applied { ctrl: *c, got });
                }
                Err(e) => {
                    self.unsupported.push(c.id);
                    refused.push(format!("{} ({e})", c.name));
                }
            }
        }
        let refused = if refused.is_empty() {
            String::new()
        } else {
            format!("; not supported, ignored: {}", refused.join(", "))
        };
        crate::info!("eye {}: V4L2 controls: {}{refused}", self.eye, parts.join(", "));
    }

    /// Set up formats, controls and buffers for frames like `first`, and start streaming.
    fn start_stream(&mut self, first: &FrameBuffer) -> Result<(), String> {
        let (out_t, cap_t) = BufType::m2m_pair(self.info.mplane());
        let layout = first.layout;
        let (fourcc, convert) = select::pick_output_format(layout.format, &self.info.output_formats)
            .ok_or_else(|| format!("{} takes no {:?} frames", self.info.path.display(), layout.format))?;
        let (mut memory, mut why) = match self.opts.memory {
            MemoryChoice::Mmap => (Memory::Mmap, "mmap asked for".to_string()),
            _ if self.dmabuf_refused.is_some() => (Memory::Mmap, self.dmabuf_refused.clone().unwrap_or_default()),
            _ if convert => (Memory::Mmap, format!("{:?} frames need converting", layout.format)),
            MemoryChoice::Auto if !dmabuf::is_dmabuf(first.fd()) => {
                (Memory::Mmap, "the camera's buffers are not dma-bufs (memfd)".to_string())
            }
            _ => (Memory::Dmabuf, "zero-copy".to_string()),
        };
        let result = (|| -> Result<Streaming, String> {
            let io = |what: &str| {
                let what = what.to_string();
                move |e: std::io::Error| format!("{what}: {e}")
            };
            // CAPTURE first: the coded format decides which OUTPUT formats are valid.
            let want_cap = PixFmt {
                fourcc: self.opts.codec.fourcc(),
                width: layout.width,
                height: layout.height,
                ..PixFmt::default()
            };
            let cap_fmt = self.dev.set_format(cap_t, want_cap).map_err(io("S_FMT(CAPTURE)"))?;
            if cap_fmt.fourcc != want_cap.fourcc {
                return Err(format!(
                    "driver picked {} instead of {}",
                    fourcc_name(cap_fmt.fourcc),
                    fourcc_name(want_cap.fourcc)
                ));
            }
            let want_out = PixFmt {
                fourcc,
                width: layout.width,
                height: layout.height,
                bytesperline: if convert { 0 } else { layout.strides[0] as u32 },
                ..PixFmt::default()
            };
            let out_fmt = self.dev.set_format(out_t, want_out).map_err(io("S_FMT(OUTPUT)"))?;
            if out_fmt.fourcc != fourcc || out_fmt.width < layout.width || out_fmt.height < layout.height {
                return Err(format!(
                    "driver turned {} {}x{} into {} {}x{}",
                    fourcc_name(fourcc),
                    layout.width,
                    layout.height,
                    fourcc_name(out_fmt.fourcc),
                    out_fmt.width,
                    out_fmt.height
                ));
            }
            if (out_fmt.width, out_fmt.height) != (layout.width, layout.height) {
                // The driver codes a larger frame (16-line multiples, a minimum size): the
                // picture is copied in with padded edges and the visible part set as the crop.
                (memory, why) = (
                    Memory::Mmap,
                    format!("the driver codes {}x{}: copied with padding", out_fmt.width, out_fmt.height),
                );
                if !self.unsupported.contains(&NO_CROP) {
                    match self.dev.set_crop(out_t, layout.width, layout.height) {
                        Ok(got) if got == (layout.width, layout.height) => {}
                        Ok((w, h)) => crate::warn!(
                            "eye {}: V4L2 {}: visible area {}x{} asked, {w}x{h} kept",
                            self.eye,
                            self.info.driver,
                            layout.width,
                            layout.height
                        ),
                        Err(e) => {
                            self.report_unsupported(
                                NO_CROP,
                                "visible-area crop (S_SELECTION)",
                                &e,
                                "the padding is coded too",
                            );
                        }
                    }
                }
            }
            let cap_fmt = self.dev.get_format(cap_t).map_err(io("G_FMT(CAPTURE)"))?;
            let drv_layout = driver_layout(&out_fmt)
                .ok_or_else(|| format!("no layout for driver format {}", fourcc_name(out_fmt.fourcc)))?;
            if memory == Memory::Dmabuf {
                if let Err(e) = importable(&layout, first.memory.len(), &out_fmt) {
                    (memory, why) = (Memory::Mmap, e);
                }
            }
            Ok(Streaming {
                generation: 0,
                epoch: 0,
                frame_layout: layout,
                out_type: out_t,
                cap_type: cap_t,
                memory,
                out_fmt,
                cap_fmt,
                driver_layout: drv_layout,
                out_maps: Vec::new(),
                cap_maps: Vec::new(),
                cap_queued: 0,
                frames: 0,
                last_seen: false,
            })
        })();
        let mut s = result?;
        // The encoder's rate control wants the frame interval; not every driver has S_PARM.
        if !self.unsupported.contains(&NO_S_PARM) {
            if let Err(e) = self.dev.set_frame_interval(out_t, 1, self.cfg.fps.max(1)) {
                self.report_unsupported(NO_S_PARM, "frame interval (S_PARM)", &e, "going on without it");
            }
        }
        let cfg = EncoderConfig { width: layout.width, height: layout.height, ..self.cfg };
        let mut ctrls = stream_controls(self.opts.codec, &cfg);
        ctrls.extend(rate_controls(self.opts.codec, &cfg));
        self.apply_controls(&ctrls);
        if let Err(e) = self.allocate(&mut s, &mut why) {
            self.release(&mut s);
            return Err(e);
        }
        if !self.subscribed {
            self.subscribed = true;
            if let Err(e) = self.dev.subscribe_event(EVENT_EOS) {
                self.report_unsupported(NO_EOS_EVENT, "EOS event", &e, "a drain ends at the LAST buffer alone");
            }
            // Source changes are a decoder's event; an encoder that sends one is counted.
            if let Err(e) = self.dev.subscribe_event(EVENT_SOURCE_CHANGE) {
                crate::debug!("eye {}: V4L2 {}: no source-change events ({e})", self.eye, self.info.driver);
            }
        }
        let on = self.dev.stream_on(s.out_type).and_then(|_| self.dev.stream_on(s.cap_type));
        if let Err(e) = on {
            self.release(&mut s);
            return Err(format!("STREAMON: {e}"));
        }
        self.generation += 1;
        s.generation = self.generation;
        self.counters.streams += 1;
        self.header_prefix.clear();
        crate::info!(
            "eye {}: V4L2 stream {} on {}: {}x{} {} -> {} ({} bytes max), OUTPUT {} ({why}), {} + {} buffers, {}",
            self.eye,
            s.generation,
            self.info.path.display(),
            s.out_fmt.width,
            s.out_fmt.height,
            fourcc_name(s.out_fmt.fourcc),
            fourcc_name(s.cap_fmt.fourcc),
            s.cap_fmt.sizeimage,
            if s.memory == Memory::Dmabuf { "imports the camera's dma-bufs" } else { "mmap + copy" },
            self.ledger.slot_count(),
            s.cap_maps.len(),
            if s.out_type.is_mplane() { "multi-planar" } else { "single-planar" },
        );
        self.stream = Some(s);
        Ok(())
    }

    /// REQBUFS on both queues, mmap what is ours, queue every CAPTURE buffer.
    fn allocate(&mut self, s: &mut Streaming, why: &mut String) -> Result<(), String> {
        let mut granted = None;
        if s.memory == Memory::Dmabuf {
            match self.dev.request_buffers(s.out_type, Memory::Dmabuf, self.opts.output_buffers) {
                Ok((n, caps)) if n > 0 && (caps == 0 || caps & BUF_CAP_SUPPORTS_DMABUF != 0) => granted = Some(n),
                Ok(_) => *why = "the driver's OUTPUT queue does not import dma-bufs".into(),
                Err(e) => *why = format!("REQBUFS(OUTPUT, DMABUF) refused: {e}"),
            }
            if granted.is_none() {
                self.dmabuf_refused = Some(why.clone());
                s.memory = Memory::Mmap;
                let _ = self.dev.request_buffers(s.out_type, Memory::Dmabuf, 0);
            }
        }
        let n_out = match granted {
            Some(n) => n,
            None => {
                let (n, _) = self
                    .dev
                    .request_buffers(s.out_type, Memory::Mmap, self.opts.output_buffers)
                    .map_err(|e| format!("REQBUFS(OUTPUT, MMAP): {e}"))?;
                for i in 0..n {
                    let (off, len) =
                        self.dev.query_buffer(s.out_type, i).map_err(|e| format!("QUERYBUF(OUTPUT): {e}"))?;
                    s.out_maps.push(self.dev.map_buffer(off, len).map_err(|e| format!("mmap(OUTPUT): {e}"))?);
                }
                n
            }
        };
        if n_out == 0 {
            return Err("the driver granted no OUTPUT buffers".into());
        }
        let ok = self.ledger.set_slot_count(n_out as usize);
        debug_assert!(ok, "no OUTPUT buffer may be held across streams");
        let (n_cap, _) = self
            .dev
            .request_buffers(s.cap_type, Memory::Mmap, self.opts.capture_buffers)
            .map_err(|e| format!("REQBUFS(CAPTURE): {e}"))?;
        for i in 0..n_cap {
            let (off, len) = self.dev.query_buffer(s.cap_type, i).map_err(|e| format!("QUERYBUF(CAPTURE): {e}"))?;
            s.cap_maps.push(self.dev.map_buffer(off, len).map_err(|e| format!("mmap(CAPTURE): {e}"))?);
        }
        for i in 0..n_cap {
            self.dev
                .queue(s.cap_type, i, QPayload::Mmap { bytesused: 0 }, 0)
                .map_err(|e| format!("QBUF(CAPTURE): {e}"))?;
            s.cap_queued += 1;
        }
        Ok(())
    }

    /// STREAMOFF both queues (the driver gives every buffer back), unmap, REQBUFS 0.
    fn release(&mut self, s: &mut Streaming) {
        for t in [s.out_type, s.cap_type] {
            if let Err(e) = self.dev.stream_off(t) {
                crate::debug!("eye {}: V4L2 STREAMOFF({t:?}): {e}", self.eye);
            }
        }
        s.cap_queued = 0;
        s.out_maps.clear();
        s.cap_maps.clear();
        let _ = self.dev.request_buffers(s.out_type, s.memory, 0);
        let _ = self.dev.request_buffers(s.cap_type, Memory::Mmap, 0);
    }

    /// End the stream: drain it first when `graceful` (frames inside get their pictures), then
    /// release everything; every frame still inside goes to `done` (the doorbell rings).
    fn stop_stream(&mut self, reason: &str, graceful: bool) {
        let Some(mut s) = self.stream.take() else {
            return;
        };
        let inside = self.ledger.len();
        let mut drained = "";
        if graceful {
            drained = match self.dev.encoder_command(ENC_CMD_STOP) {
                Ok(()) => match self.drain_blocking(&mut s) {
                    Ok(true) => "drained",
                    Ok(false) => "drain timed out",
                    Err(e) => {
                        crate::warn!("eye {}: V4L2 drain: {e}", self.eye);
                        "drain failed"
                    }
                },
                Err(e) => {
                    self.report_unsupported(NO_ENC_STOP, "ENCODER_CMD(STOP)", &e, "streams stop without a drain");
                    "no drain"
                }
            };
        }
        self.release(&mut s);
        let before = self.done.len();
        let mut out = Vec::new();
        self.deliver(&mut out);
        self.done.extend(out);
        // After STREAMOFF the device holds nothing: the rest come back, pictures or not.
        let aborted = self.ledger.abort(&format!("dropped: encoder stream {reason}"));
        let dropped = aborted.iter().filter(|(_, r)| r.is_err()).count();
        let pictures = self.done.len() - before + aborted.len() - dropped;
        let now = monotonic_us();
        for (p, r) in aborted {
            let e = self.encoded(p, r, now);
            self.done.push_back(e);
        }
        self.header_prefix.clear();
        if self.done.len() > before {
            self.doorbell.ring();
        }
        crate::info!(
            "eye {}: V4L2 stream {} stopped ({reason}): {} frames inside, {pictures} finished, {dropped} dropped{}",
            self.eye,
            s.generation,
            inside,
            if drained.is_empty() { String::new() } else { format!(", {drained}") }
        );
    }

    /// After ENC_CMD_STOP: service the device until the LAST buffer (true) or the timeout.
    fn drain_blocking(&mut self, s: &mut Streaming) -> std::io::Result<bool> {
        let deadline = monotonic_us() + self.opts.drain_timeout_ms * 1000;
        while !s.last_seen {
            let now = monotonic_us();
            if now >= deadline {
                return Ok(false);
            }
            let ms = ((deadline - now) / 1000).clamp(1, u16::MAX as u64) as u16;
            let r = self.dev.wait(true, true, ms)?;
            if r.priority {
                self.dequeue_events()?;
            }
            self.service(s)?;
        }
        self.dequeue_events()?;
        Ok(true)
    }

    fn dequeue_events(&mut self) -> std::io::Result<()> {
        while let Some(ev) = self.dev.dequeue_event()? {
            match ev.type_ {
                EVENT_EOS => self.counters.eos_events += 1,
                EVENT_SOURCE_CHANGE => self.counters.source_change_events += 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// A new stream if this frame's layout is not the stream's.
    fn ensure_stream(&mut self, buffer: &FrameBuffer) -> Result<(), String> {
        if self.stream.as_ref().is_some_and(|s| s.frame_layout != buffer.layout) {
            self.counters.restarts += 1;
            self.stop_stream("restarting: the frame layout changed", true);
        }
        if self.stream.is_none() {
            if let Err(e) = self.start_stream(buffer) {
                // Once per distinct reason, not once per frame.
                if self.start_error.as_deref() != Some(e.as_str()) {
                    crate::warn!("eye {}: V4L2 stream cannot start: {e}", self.eye);
                    self.start_error = Some(e.clone());
                }
                return Err(e);
            }
            self.start_error = None;
        }
        Ok(())
    }

    // ---- frames in ---------------------------------------------------------------------------

    /// Make the next queued frame a keyframe: FORCE_KEY_FRAME where the driver has it, else
    /// restart the CAPTURE queue (the stateful encoder's "reset": it starts a new bitstream
    /// with a keyframe). That restart would lose the frames inside, so it waits for a frame
    /// queued while the encoder is empty (usually the next one). False: try again next frame.
    fn force_keyframe(&mut self) -> bool {
        if self.stream.as_ref().is_some_and(|s| s.frames == 0) {
            return true; // a stream starts with one anyway
        }
        if self.force_ctrl != Some(false) {
            match self.dev.set_control(cid::FORCE_KEY_FRAME, 1) {
                Ok(()) => {
                    self.force_ctrl = Some(true);
                    self.counters.forced_by_control += 1;
                    return true;
                }
                Err(e) => {
                    self.force_ctrl = Some(false);
                    self.report_unsupported(
                        cid::FORCE_KEY_FRAME,
                        "FORCE_KEY_FRAME",
                        &e,
                        "keyframes are forced by restarting the CAPTURE queue",
                    );
                }
            }
        }
        if !self.ledger.is_empty() {
            return false;
        }
        let Some(mut s) = self.stream.take() else {
            return false;
        };
        let r = (|| -> std::io::Result<()> {
            self.dev.stream_off(s.cap_type)?;
            s.cap_queued = 0;
            for i in 0..s.cap_maps.len() as u32 {
                self.dev.queue(s.cap_type, i, QPayload::Mmap { bytesused: 0 }, 0)?;
                s.cap_queued += 1;
            }
            self.dev.stream_on(s.cap_type)
        })();
        s.epoch += 1;
        self.stream = Some(s);
        match r {
            Ok(()) => {
                self.counters.forced_by_capture_restart += 1;
                true
            }
            Err(e) => {
                crate::warn!("eye {}: V4L2 CAPTURE restart for a keyframe: {e}; restarting the stream", self.eye);
                self.stop_stream("restarting: CAPTURE restart failed", false);
                true // the next stream starts with a keyframe
            }
        }
    }

    /// QBUF `buffer` into a free OUTPUT slot: import or copy. Returns (slot, key).
    fn submit(&mut self, buffer: &FrameBuffer) -> Result<(usize, u64), String> {
        let slots = self.ledger.slot_count();
        let slot = self
            .ledger
            .free_slot(buffer.index % slots.max(1))
            .ok_or_else(|| format!("all {slots} OUTPUT buffers are in the device"))?;
        let key = self.ledger.next_key();
        let s = self.stream.as_mut().ok_or("no stream")?;
        match s.memory {
            Memory::Dmabuf => {
                let payload = QPayload::Dmabuf {
                    fd: buffer.fd(),
                    length: buffer.memory.len() as u32,
                    bytesused: s.out_fmt.sizeimage,
                };
                self.dev
                    .queue(s.out_type, slot as u32, payload, key)
                    .map_err(|e| format!("QBUF(OUTPUT, DMABUF): {e}"))?;
            }
            Memory::Mmap => {
                let map = s.out_maps.get_mut(slot).ok_or("no mapping for the OUTPUT buffer")?;
                // Reading a camera dma-buf with the CPU: bracket it (a memfd needs nothing).
                let access = match self.sync.begin(buffer.fd(), Access::Read) {
                    Ok(a) => a,
                    Err(e) => {
                        if !self.sync_error_reported {
                            self.sync_error_reported = true;
                            crate::warn!(
                                "eye {}: DMA_BUF_IOCTL_SYNC on a camera buffer: {e}; reading anyway",
                                self.eye
                            );
                        }
                        None
                    }
                };
                params::copy_frame(&buffer.layout, buffer.pixels(), &s.driver_layout, map.as_mut_slice())?;
                drop(access);
                let bytesused = s.out_fmt.sizeimage.min(map.len() as u32);
                self.dev
                    .queue(s.out_type, slot as u32, QPayload::Mmap { bytesused }, key)
                    .map_err(|e| format!("QBUF(OUTPUT, MMAP): {e}"))?;
            }
        }
        s.frames += 1;
        Ok((slot, key))
    }

    // ---- results out -------------------------------------------------------------------------

    /// DQBUF everything that is done on both queues. Ok(true) once the LAST buffer was seen.
    fn service(&mut self, s: &mut Streaming) -> std::io::Result<bool> {
        while let Some(d) = self.dev.dequeue(s.out_type, s.memory)? {
            if !self.ledger.output_returned(d.index as usize) {
                crate::debug!("eye {}: V4L2 OUTPUT buffer {} came back twice", self.eye, d.index);
            }
        }
        loop {
            let d = match self.dev.dequeue(s.cap_type, Memory::Mmap) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) if errno_of(&e) == libc::EPIPE => {
                    s.last_seen = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            s.cap_queued = s.cap_queued.saturating_sub(1);
            self.on_capture(s, d);
            if d.flags & BUF_FLAG_LAST != 0 {
                s.last_seen = true;
                self.counters.last_buffers += 1;
            } else {
                self.dev.queue(s.cap_type, d.index, QPayload::Mmap { bytesused: 0 }, 0)?;
                s.cap_queued += 1;
            }
        }
        Ok(s.last_seen)
    }

    /// One encoded buffer: copy it out (the one unavoidable copy) and match it to its frame.
    fn on_capture(&mut self, s: &Streaming, d: Dequeued) {
        let cpu0 = thread_cpu_us();
        let Some(map) = s.cap_maps.get(d.index as usize) else {
            crate::warn!("eye {}: V4L2 CAPTURE buffer index {} out of range", self.eye, d.index);
            return;
        };
        let (start, end) = (d.data_offset as usize, d.data_offset as usize + d.bytesused as usize);
        let Some(bytes) = map.as_slice().get(start..end) else {
            self.ledger
                .complete(d.timestamp_us, Err(format!("driver reported {end} bytes in a {}-byte buffer", map.len())));
            return;
        };
        let codec = self.opts.codec;
        let kind = bitstream::classify(codec, d.flags, bytes);
        if self.opts.trace {
            self.trace.push(CaptureRecord {
                generation: s.generation,
                epoch: s.epoch,
                buffer: d,
                sizeimage: s.cap_fmt.sizeimage,
                picture: matches!(kind, Payload::Picture { .. }),
            });
        }
        let result = match kind {
            Payload::Empty => return,
            Payload::HeaderOnly => {
                self.param_sets.learn(bytes);
                self.header_prefix.extend_from_slice(bytes);
                return;
            }
            Payload::Invalid(why) => Err(why),
            Payload::Picture { .. } if d.flags & BUF_FLAG_ERROR != 0 => {
                Err("the driver flagged the buffer as an error".into())
            }
            Payload::Picture { keyframe } => {
                let mut data = Vec::with_capacity(HEADROOM + self.header_prefix.len() + bytes.len());
                data.resize(HEADROOM, 0);
                data.append(&mut self.header_prefix);
                data.extend_from_slice(bytes);
                if codec == Codec::H264 {
                    if keyframe {
                        self.param_sets.complete_idr(&mut data, HEADROOM);
                    } else {
                        self.param_sets.learn(&data[HEADROOM..]);
                    }
                }
                Ok(Produced {
                    au: AccessUnit { data, headroom: HEADROOM, keyframe },
                    done_us: monotonic_us(),
                    cpu_us: thread_cpu_us().saturating_sub(cpu0),
                })
            }
        };
        match self.ledger.complete(d.timestamp_us, result) {
            Matched::Frame { skipped: 0 } => {}
            Matched::Frame { skipped } => {
                self.counters.lost_frames += skipped as u32;
                crate::warn!("eye {}: V4L2 encoder returned no picture for {skipped} frame(s)", self.eye);
            }
            Matched::Unknown => {
                self.counters.stray_buffers += 1;
                crate::debug!(
                    "eye {}: V4L2 CAPTURE buffer with timestamp {} matches no frame",
                    self.eye,
                    d.timestamp_us
                );
            }
        }
    }

    fn encoded(&self, p: Pending, r: Result<Produced, String>, now: u64) -> Encoded {
        let (mut result, cpu_us, done_us) = match r {
            Ok(prod) => (Ok(prod.au), p.cpu_us + prod.cpu_us, prod.done_us),
            Err(e) => (Err(e), p.cpu_us, now),
        };
        if result.is_ok() && self.faults.active(Kind::EncoderError, self.eye, now).is_some() {
            result = Err("injected encoder error".into());
        }
        Encoded { buffer: p.buffer, meta: p.meta, result, cpu_us, done_us }
    }

    /// Finished frames, in queue order, into `out`.
    fn deliver(&mut self, out: &mut Vec<Encoded>) {
        let now = monotonic_us();
        while let Some((p, r)) = self.ledger.take_ready() {
            let e = self.encoded(p, r, now);
            out.push(e);
        }
    }
}

impl Encoder for V4l2Encoder {
    /// The device while frames are inside it; the eventfd while finished frames wait outside
    /// it (after a restart or an error).
    fn completion_fd(&self) -> BorrowedFd<'_> {
        if self.done.is_empty() { self.dev.as_fd() } else { self.doorbell.as_fd() }
    }

    fn interest(&self) -> Interest {
        if !self.done.is_empty() {
            Interest::READABLE
        } else if self.ledger.is_empty() {
            // Nothing inside: nothing to wait for (and an idle M2M fd polls as POLLERR).
            Interest::NONE
        } else {
            Interest { readable: true, writable: self.ledger.waiting_for_output() }
        }
    }

    fn queue(&mut self, job: EncodeJob) -> Result<(), Box<(EncodeJob, String)>> {
        let cpu0 = thread_cpu_us();
        if let Err(e) = self.ensure_stream(&job.buffer) {
            return Err(Box::new((job, format!("V4L2 encoder: {e}"))));
        }
        if job.force_idr || self.idr_pending {
            self.idr_pending = !self.force_keyframe();
            if self.stream.is_none() {
                if let Err(e) = self.ensure_stream(&job.buffer) {
                    return Err(Box::new((job, format!("V4L2 encoder: {e}"))));
                }
            }
        }
        let submitted = match self.submit(&job.buffer) {
            Err(e) if self.stream.as_ref().is_some_and(|s| s.memory == Memory::Dmabuf) && self.ledger.is_empty() => {
                // The driver refused this dma-buf: from now on mmap + copy.
                crate::warn!("eye {}: V4L2 {}: {e}; falling back to mmap + copy", self.eye, self.info.driver);
                self.dmabuf_refused = Some(format!("the driver refused dma-buf import ({e})"));
                self.stop_stream("restarting: dma-buf import refused", false);
                self.ensure_stream(&job.buffer).and_then(|_| self.submit(&job.buffer))
            }
            r => r,
        };
        let (slot, key) = match submitted {
            Ok(v) => v,
            Err(e) => return Err(Box::new((job, format!("V4L2 encoder: {e}")))),
        };
        let pending = Pending { buffer: job.buffer, meta: job.meta, cpu_us: thread_cpu_us().saturating_sub(cpu0) };
        match self.ledger.admit(slot, pending) {
            Ok(k) => debug_assert_eq!(k, key),
            Err(_) => unreachable!("the slot was free when it was queued"),
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Encoded>) {
        self.doorbell.drain();
        out.extend(self.done.drain(..));
        if let Some(mut s) = self.stream.take() {
            let r = self.service(&mut s);
            self.stream = Some(s);
            if let Err(e) = r {
                crate::warn!("eye {}: V4L2 device error: {e}; restarting the stream", self.eye);
                self.counters.restarts += 1;
                self.stop_stream("restarting after a device error", false);
                out.extend(self.done.drain(..));
            }
        }
        self.deliver(out);
    }

    fn in_flight(&self) -> usize {
        self.ledger.len() + self.done.len()
    }

    fn configure(&mut self, cfg: EncoderConfig) {
        let resized = (cfg.width, cfg.height) != (self.cfg.width, self.cfg.height);
        self.cfg = cfg;
        if resized {
            // The next frame starts a stream at its size.
            if self.stream.is_some() {
                self.counters.restarts += 1;
                self.stop_stream(&format!("restarting: resolution change to {}x{}", cfg.width, cfg.height), true);
            }
            return;
        }
        if let Some(s) = &self.stream {
            let t = s.out_type;
            if !self.unsupported.contains(&NO_S_PARM) {
                if let Err(e) = self.dev.set_frame_interval(t, 1, cfg.fps.max(1)) {
                    crate::debug!("eye {}: V4L2 frame interval while streaming: {e}", self.eye);
                }
            }
            let fw = EncoderConfig { width: s.frame_layout.width, height: s.frame_layout.height, ..cfg };
            self.apply_controls(&rate_controls(self.opts.codec, &fw));
            self.idr_pending = true;
        }
    }

    fn name(&self) -> &'static str {
        match self.stream.as_ref().map(|s| s.memory) {
            Some(Memory::Dmabuf) => "V4L2 M2M (dma-buf import, zero-copy)",
            Some(Memory::Mmap) => "V4L2 M2M (mmap + copy)",
            None => "V4L2 M2M (not streaming)",
        }
    }
}

impl Drop for V4l2Encoder {
    fn drop(&mut self) {
        if self.stream.is_some() {
            let n = self.finish().len();
            if n > 0 {
                crate::debug!("eye {}: V4L2 encoder dropped with {n} frame(s) inside", self.eye);
            }
        }
    }
}
