//! `pieyes selftest …`: drive real kernel interfaces end to end and check what the kernel
//! answers, not what the code hoped. Runs in the test VM (vicodec's FWHT encoder, dma-bufs from
//! `/dev/dma_heap/system`) and on a Raspberry Pi 4 (bcm2835-codec, H.264) alike.
//!
//! - `selftest v4l2`: the V4L2 encoder module through a poll loop shaped like the daemon's
//!   (`completion_fd` + `interest`, at most two frames inside): ≥ 100 frames, a forced
//!   keyframe, a resolution change with frames inside (stream restart), a stop with frames
//!   inside (drain), every frame buffer back exactly once, the device holding nothing.
//! - `selftest dmabuf`: the software encoder reading dma-bufs in place between
//!   DMA_BUF_IOCTL_SYNC START/END, and memfds without (ENOTTY, once).
//!
//! One `check <name>: ok|FAIL <detail>` line each on stdout, then a summary; exit 1 on any FAIL.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::camera::scene::Scene;
use crate::camera::stamp::Stamp;
use crate::camera::{FrameBuffer, FrameLayout, FrameMeta, I420Layout, PixelFormat, Rect, Size};
use crate::encoder::software::SoftwareEncoder;
use crate::encoder::v4l2::bitstream::FwhtHeader;
use crate::encoder::v4l2::params::copy_frame;
use crate::encoder::v4l2::{self, Codec, MemoryChoice, Options, V4l2Encoder};
use crate::encoder::{EncodeJob, Encoded, Encoder, EncoderConfig};
use crate::event_loop::{PollSet, Token};
use crate::inject::{Faults, SharedFaults};
use crate::sys::clock::monotonic_us;
use crate::sys::dmabuf::{self, Access, CpuAccess, Heap};
use crate::sys::shm::SharedMemory;
use crate::sys::v4l2::{BUF_FLAG_ERROR, BUF_FLAG_KEYFRAME, BUF_FLAG_LAST, Memory, cid, fourcc_name};

pub const USAGE: &str = "\
usage:
  pieyes selftest v4l2 [--codec h264|fwht] [--device PATH] [--frames N] [--size WxH]
                       [--resize WxH|none] [--resize-frames N] [--format i420|nv12]
                       [--source heap|memfd] [--heap PATH] [--memory auto|dmabuf|mmap]
                       [--expect-memory dmabuf|mmap] [--gop N] [--force-key-at N]
  pieyes selftest dmabuf [--heap PATH] [--frames N]
--heap defaults to /dev/dma_heap/linux,cma if present (a Pi), else /dev/dma_heap/system.
";

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) -> bool {
        if ok {
            self.passed += 1;
            println!("check {name}: ok {detail}");
        } else {
            self.failed += 1;
            println!("check {name}: FAIL {detail}");
        }
        ok
    }
    fn finish(&self, what: &str) -> i32 {
        println!("selftest {what}: {} checks passed, {} failed", self.passed, self.failed);
        if self.failed == 0 { 0 } else { 1 }
    }
}

/// `--key value` pairs.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut v = Vec::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let key = k.strip_prefix("--").ok_or_else(|| format!("unexpected {k:?}"))?;
            let val = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            v.push((key.to_string(), val.clone()));
        }
        Ok(Args(v))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn num(&self, k: &str, default: u32) -> Result<u32, String> {
        self.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{k}: not a number: {v:?}")))
    }
    fn size(&self, k: &str, default: Option<Size>) -> Result<Option<Size>, String> {
        match self.get(k) {
            None => Ok(default),
            Some("none") => Ok(None),
            Some(v) => {
                let (w, h) = v.split_once('x').ok_or_else(|| format!("--{k}: expected WxH"))?;
                let s = Size { w: w.parse().map_err(|_| "bad width")?, h: h.parse().map_err(|_| "bad height")? };
                if s.w % 2 != 0 || s.h % 2 != 0 || s.w < 16 || s.h < 16 {
                    return Err(format!("--{k}: {v} must be even and at least 16x16"));
                }
                Ok(Some(s))
            }
        }
    }
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

pub fn run(args: &[String]) -> i32 {
    let r = match args.first().map(String::as_str) {
        Some("v4l2") => Args::parse(&args[1..]).and_then(|a| v4l2_selftest(&a)),
        Some("dmabuf") => Args::parse(&args[1..]).and_then(|a| dmabuf_selftest(&a)),
        _ => Err("which selftest? v4l2 or dmabuf".into()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pieyes selftest: {e}\n{USAGE}");
            2
        }
    }
}

// ---- frames ----------------------------------------------------------------------------------

/// `--heap`, else the CMA heap where there is one (what libcamera allocates from on a Pi, and
/// what a dma-contig driver like bcm2835-codec can import), else the system heap.
fn heap_path(a: &Args) -> PathBuf {
    match a.get("heap") {
        Some(p) => PathBuf::from(p),
        None if std::path::Path::new("/dev/dma_heap/linux,cma").exists() => "/dev/dma_heap/linux,cma".into(),
        None => "/dev/dma_heap/system".into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Heap,
    Memfd,
}

fn layout_of(format: PixelFormat, size: Size) -> FrameLayout {
    match format {
        PixelFormat::Nv12 => {
            let y = (size.w * size.h) as usize;
            FrameLayout {
                format,
                width: size.w,
                height: size.h,
                offsets: [0, y, 0],
                strides: [size.w as usize, size.w as usize, 0],
            }
        }
        _ => FrameLayout::i420(size),
    }
}

/// A pool of frame buffers of one layout, allocated from a DMA heap or as memfds; indices
/// start at `first_index` (pools of different sizes never share an index).
fn pool(
    source: Source,
    heap: Option<&Heap>,
    layout: FrameLayout,
    n: usize,
    first_index: usize,
) -> Result<Vec<FrameBuffer>, String> {
    let len = layout.len();
    (0..n)
        .map(|i| {
            let memory = match (source, heap) {
                (Source::Heap, Some(h)) => {
                    let fd = h.alloc(len).map_err(|e| format!("DMA heap allocation of {len} bytes: {e}"))?;
                    SharedMemory::map(fd, len).map_err(|e| format!("mmap of a dma-buf: {e}"))?
                }
                (Source::Heap, None) => return Err("no heap".to_string()),
                (Source::Memfd, _) => SharedMemory::memfd("pieyes-selftest", len).map_err(|e| e.to_string())?,
            };
            Ok(FrameBuffer { index: first_index + i, memory, layout })
        })
        .collect()
}

/// Renders the synthetic scene (with its stamp) into frame buffers of one size.
struct Painter {
    scene: Scene,
    size: Size,
    i420: Vec<u8>,
    xmap: Vec<u32>,
}

impl Painter {
    fn new(size: Size) -> Painter {
        Painter { scene: Scene::new(size, 0), size, i420: Vec::new(), xmap: Vec::new() }
    }

    fn paint(&mut self, buf: &mut FrameBuffer, seq: u32) -> Result<(), String> {
        let l = I420Layout::new(self.size);
        self.i420.resize(l.frame_len(), 0);
        let crop = Rect::new(0, 0, self.size.w, self.size.h);
        // 40 ms per frame: the disc moves, the picture changes a little each frame.
        let t = seq as u64 * 40_000;
        self.scene.render(0, t, crop, l, &mut self.i420, &mut self.xmap);
        Stamp { eye: 0, sequence: seq, capture_us: t, crop }.paint(l, &mut self.i420);
        let src = FrameLayout::i420(self.size);
        let layout = buf.layout;
        // CPU writes into a dma-buf are bracketed too (a memfd answers ENOTTY: nothing to do).
        let fd = buf.memory.as_fd().try_clone_to_owned().map_err(|e| e.to_string())?;
        let _w = CpuAccess::begin(fd.as_fd(), Access::Write).ok();
        copy_frame(&src, &self.i420, &layout, buf.pixels_mut())
    }
}

// ---- a poll loop shaped like the daemon's ------------------------------------------------------

/// Frames inside an encoder at once, as the daemon allows (`eye::MAX_ENCODER_BACKLOG`).
const MAX_INSIDE: usize = 2;

/// What came back for one frame.
struct Got {
    sequence: u32,
    ok: Result<(), String>,
    keyframe: bool,
    len: usize,
    head: Vec<u8>,
}

struct Loop {
    /// Frames queued per buffer index, and returned per index.
    queued: Vec<u32>,
    returned: Vec<u32>,
    got: Vec<Got>,
    writable_waits: u32,
    polls: u32,
    queue_errors: Vec<String>,
}

impl Loop {
    fn new() -> Loop {
        Loop {
            queued: vec![0; 64],
            returned: vec![0; 64],
            got: Vec::new(),
            writable_waits: 0,
            polls: 0,
            queue_errors: Vec::new(),
        }
    }

    fn take(&mut self, out: &mut Vec<Encoded>, free: &mut Vec<FrameBuffer>) {
        for e in out.drain(..) {
            self.returned[e.buffer.index] += 1;
            let (ok, keyframe, len, head) = match &e.result {
                Ok(au) => (Ok(()), au.keyframe, au.annexb().len(), au.annexb()[..au.annexb().len().min(64)].to_vec()),
                Err(why) => (Err(why.clone()), false, 0, Vec::new()),
            };
            self.got.push(Got { sequence: e.meta.sequence, ok, keyframe, len, head });
            free.push(e.buffer);
        }
    }

    /// One poll of the encoder as the daemon does it (interest, then its fd); false on timeout.
    fn wait(&mut self, enc: &dyn Encoder, timeout_ms: i32) -> Result<bool, String> {
        let want = enc.interest();
        if !want.any() {
            return Ok(true);
        }
        self.polls += 1;
        if want.writable {
            self.writable_waits += 1;
        }
        let mut ready = Vec::new();
        let mut set = PollSet::default();
        set.add(enc.completion_fd(), Token::Encoder(0), want.readable, want.writable);
        set.wait(timeout_ms, &mut ready).map_err(|e| format!("poll: {e}"))?;
        Ok(!ready.is_empty())
    }

    /// Feed `frames` frames from `free` (at most two inside, as the daemon allows), forcing a
    /// keyframe on `force_at`; after queuing the last one call `after_last` (with frames still
    /// inside), then run until nothing is inside.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        enc: &mut V4l2Encoder,
        free: &mut Vec<FrameBuffer>,
        painter: &mut Painter,
        first_seq: u32,
        frames: u32,
        force_at: Option<u32>,
        after_last: &mut dyn FnMut(&mut V4l2Encoder),
    ) -> Result<(), String> {
        let mut next = first_seq;
        let end = first_seq + frames;
        let mut out = Vec::new();
        let mut called = false;
        loop {
            while next < end && enc.in_flight() < MAX_INSIDE {
                // Without FORCE_KEY_FRAME the encoder forces a keyframe by restarting its
                // CAPTURE queue, which waits for an empty encoder: give it one, so the
                // keyframe lands on exactly this frame.
                if force_at == Some(next) && enc.in_flight() > 0 {
                    break;
                }
                let Some(mut buf) = free.pop() else { break };
                painter.paint(&mut buf, next)?;
                let meta =
                    FrameMeta { eye: 0, sequence: next, capture_us: monotonic_us(), crop: Rect::new(0, 0, 1, 1) };
                self.queued[buf.index] += 1;
                match enc.queue(EncodeJob { buffer: buf, meta, force_idr: force_at == Some(next) }) {
                    Ok(()) => {}
                    Err(rejected) => {
                        let (job, e) = *rejected;
                        self.queue_errors.push(format!("frame {next}: {e}"));
                        self.returned[job.buffer.index] += 1;
                        free.push(job.buffer);
                    }
                }
                next += 1;
            }
            if next == end && !called {
                called = true;
                after_last(enc);
            }
            if next == end && enc.in_flight() == 0 {
                return Ok(());
            }
            if !self.wait(enc, 3000)? {
                return Err(format!("nothing from the encoder for 3 s ({} frames inside)", enc.in_flight()));
            }
            enc.drain(&mut out);
            self.take(&mut out, free);
        }
    }
}

// ---- selftest v4l2 -----------------------------------------------------------------------------

fn v4l2_selftest(a: &Args) -> Result<i32, String> {
    a.check_known(&[
        "codec",
        "device",
        "frames",
        "size",
        "resize",
        "resize-frames",
        "format",
        "source",
        "heap",
        "memory",
        "expect-memory",
        "gop",
        "force-key-at",
    ])?;
    let codec = Codec::parse(a.get("codec").unwrap_or("h264")).ok_or("--codec: h264 or fwht")?;
    let frames = a.num("frames", 100)?;
    // vicodec codes nothing smaller than 640x360, in multiples of 16: 640x480 and 720x400 are
    // taken as they are (zero-copy possible); 640x360 is coded as 640x368 (padded copy).
    let size = a.size("size", Some(Size { w: 640, h: 480 }))?.ok_or("--size none?")?;
    let resize = a.size("resize", Some(Size { w: size.w + 80, h: size.h.saturating_sub(80).max(16) }))?;
    let resize_frames = a.num("resize-frames", 30)?;
    let format = match a.get("format").unwrap_or("i420") {
        "i420" => PixelFormat::I420,
        "nv12" => PixelFormat::Nv12,
        f => return Err(format!("--format: i420 or nv12, not {f}")),
    };
    let source = match a.get("source").unwrap_or("heap") {
        "heap" => Source::Heap,
        "memfd" => Source::Memfd,
        s => return Err(format!("--source: heap or memfd, not {s}")),
    };
    let memory = MemoryChoice::parse(a.get("memory").unwrap_or("auto")).ok_or("--memory: auto, dmabuf or mmap")?;
    let expect = match a.get("expect-memory") {
        None => None,
        Some("dmabuf") => Some(Memory::Dmabuf),
        Some("mmap") => Some(Memory::Mmap),
        Some(m) => return Err(format!("--expect-memory: dmabuf or mmap, not {m}")),
    };
    let gop = a.num("gop", 10)?;
    let force_at = a.num("force-key-at", (frames / 2).saturating_sub(3))?;
    let heap_path = heap_path(a);
    let device = a.get("device").map(PathBuf::from);

    let mut rep = Report { passed: 0, failed: 0 };
    let t0 = monotonic_us();

    // 1. The device, found by what it does.
    let info = match v4l2::find_encoder(codec, device.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            rep.check("device", false, e);
            return Ok(rep.finish("v4l2"));
        }
    };
    rep.check("device", true, info.describe());

    // 2. Frames.
    let heap = match source {
        Source::Heap => Some(Heap::open(&heap_path).map_err(|e| format!("{}: {e}", heap_path.display()))?),
        Source::Memfd => None,
    };
    let layout = layout_of(format, size);
    let mut free = pool(source, heap.as_ref(), layout, 4, 0)?;
    let is_dmabuf = dmabuf::is_dmabuf(free[0].fd());
    rep.check(
        "source",
        is_dmabuf == (source == Source::Heap),
        format!(
            "{} {:?} {size} frames, {} bytes each, dma-buf: {is_dmabuf}",
            if source == Source::Heap { heap_path.display().to_string() } else { "memfd".into() },
            format,
            layout.len()
        ),
    );

    let cfg = EncoderConfig { width: size.w, height: size.h, fps: 30, bitrate_bps: 1_000_000, gop_frames: gop };
    let opts = Options { codec, memory, trace: true, ..Options::default() };
    let faults: SharedFaults = Arc::new(Faults::default());
    let mut enc = V4l2Encoder::open(info, 0, cfg, opts, faults)?;
    let mut lp = Loop::new();
    let mut painter = Painter::new(size);

    // 3. Segment 1: `frames` frames at `size`, a forced keyframe, then a resolution change
    //    requested while the last frames are still inside.
    let mut stream1 = None;
    let new_cfg = resize.map(|s| EncoderConfig { width: s.w, height: s.h, ..cfg });
    let r = lp.run(&mut enc, &mut free, &mut painter, 0, frames, Some(force_at), &mut |enc| {
        stream1 = enc.stream_info();
        if let Some(c) = new_cfg {
            enc.configure(c);
        }
    });
    if let Err(e) = r {
        rep.check("segment-1", false, e);
        return Ok(rep.finish("v4l2"));
    }
    let Some(s1) = stream1 else {
        let why = lp.queue_errors.first().cloned().unwrap_or_default();
        rep.check("stream-1", false, format!("no stream after the first frames: {why}"));
        return Ok(rep.finish("v4l2"));
    };
    rep.check(
        "stream-1",
        expect.is_none_or(|m| m == s1.memory),
        format!(
            "generation {}, OUTPUT {:?} {} {}x{} bpl {} sizeimage {}, CAPTURE {} sizeimage {}, {}+{} buffers, {}",
            s1.generation,
            s1.memory,
            fourcc_name(s1.output.fourcc),
            s1.output.width,
            s1.output.height,
            s1.output.bytesperline,
            s1.output.sizeimage,
            fourcc_name(s1.capture.fourcc),
            s1.capture.sizeimage,
            s1.output_buffers,
            s1.capture_buffers,
            if s1.mplane { "multi-planar" } else { "single-planar" }
        ),
    );
    let applied_gop = enc
        .applied_controls()
        .iter()
        .find(|c| c.ctrl.id == if codec == Codec::H264 { cid::H264_I_PERIOD } else { cid::GOP_SIZE })
        .and_then(|c| c.got)
        .map(|v| v.max(1) as u32);
    rep.check(
        "controls",
        applied_gop.is_some() || codec == Codec::H264,
        format!(
            "applied: {}; unsupported: {}",
            enc.applied_controls()
                .iter()
                .map(|c| format!("{}={}", c.ctrl.name, c.got.map_or("?".into(), |v| v.to_string())))
                .collect::<Vec<_>>()
                .join(", "),
            enc.unsupported_controls().len()
        ),
    );
    let trace = enc.take_trace();
    let seg1: Vec<&Got> = lp.got.iter().filter(|g| g.sequence < frames).collect();
    check_segment(
        &mut rep,
        "segment-1",
        codec,
        size,
        frames,
        0,
        Some(force_at),
        applied_gop.unwrap_or(gop),
        &seg1,
        &trace,
        s1.generation,
        resize.is_some(),
    );
    let c = enc.counters();
    rep.check(
        "forced-keyframe",
        c.forced_by_control + c.forced_by_capture_restart >= 1,
        format!(
            "frame {force_at}: by FORCE_KEY_FRAME {}, by CAPTURE queue restart {}",
            c.forced_by_control, c.forced_by_capture_restart
        ),
    );

    // 4. Segment 2 after the resolution change: a new stream at the new size.
    let mut last_generation = s1.generation;
    let mut next_seq = frames;
    if let Some(rs) = resize {
        rep.check(
            "restart",
            enc.stream_info().is_none() && enc.counters().restarts == 1 && enc.device_holds() == (0, 0),
            format!(
                "configure({rs}) stopped stream {} with frames inside; restarts {}",
                s1.generation,
                enc.counters().restarts
            ),
        );
        // The old pool goes away: none of it may still be inside the encoder.
        let held_back = lp.queued.iter().zip(&lp.returned).filter(|(q, r)| q != r).count();
        rep.check(
            "old-buffers",
            held_back == 0,
            format!("{} buffers of the old size, {held_back} not returned", free.len()),
        );
        drop(std::mem::take(&mut free));
        free = pool(source, heap.as_ref(), layout_of(format, rs), 4, 8)?;
        let mut painter2 = Painter::new(rs);
        let r = lp.run(&mut enc, &mut free, &mut painter2, next_seq, resize_frames, None, &mut |_| {});
        if let Err(e) = r {
            rep.check("segment-2", false, e);
            return Ok(rep.finish("v4l2"));
        }
        let trace = enc.take_trace();
        let s2 = enc.stream_info().ok_or("no stream after the resolution change")?;
        rep.check(
            "stream-2",
            // The coded size may be larger (padded); the visible size is checked per frame.
            s2.generation == s1.generation + 1 && s2.output.width >= rs.w && s2.output.height >= rs.h,
            format!(
                "generation {}, OUTPUT {:?} {}x{}, CAPTURE sizeimage {}",
                s2.generation, s2.memory, s2.output.width, s2.output.height, s2.capture.sizeimage
            ),
        );
        let seg2: Vec<&Got> = lp.got.iter().filter(|g| g.sequence >= next_seq).collect();
        check_segment(
            &mut rep,
            "segment-2",
            codec,
            rs,
            resize_frames,
            next_seq,
            None,
            applied_gop.unwrap_or(gop),
            &seg2,
            &trace,
            s2.generation,
            false,
        );
        last_generation = s2.generation;
        next_seq += resize_frames;
        painter = painter2;
    }

    // 5. Clean stop with two frames inside: drained (LAST), everything back, nothing held.
    let mut inside = 0;
    for seq in next_seq..next_seq + 2 {
        let Some(mut buf) = free.pop() else { break };
        painter.paint(&mut buf, seq)?;
        lp.queued[buf.index] += 1;
        let meta = FrameMeta { eye: 0, sequence: seq, capture_us: monotonic_us(), crop: Rect::new(0, 0, 1, 1) };
        match enc.queue(EncodeJob { buffer: buf, meta, force_idr: false }) {
            Ok(()) => inside += 1,
            Err(rejected) => {
                let (job, e) = *rejected;
                lp.queue_errors.push(e);
                lp.returned[job.buffer.index] += 1;
                free.push(job.buffer);
            }
        }
    }
    let mut out = enc.finish();
    let finished = out.len();
    let pictures = out.iter().filter(|e| e.result.is_ok()).count();
    lp.take(&mut out, &mut free);
    let trace = enc.take_trace();
    let last = trace.iter().filter(|r| r.generation == last_generation && r.buffer.flags & BUF_FLAG_LAST != 0).count();
    let c = enc.counters();
    rep.check(
        "stop",
        finished == inside && pictures == inside && last == 1 && enc.device_holds() == (0, 0) && enc.in_flight() == 0,
        format!(
            "{inside} frames inside at stop, {finished} returned ({pictures} with pictures), LAST buffers {last}, EOS events {}, device holds {:?}",
            c.eos_events,
            enc.device_holds()
        ),
    );
    let mismatched: Vec<String> = lp
        .queued
        .iter()
        .zip(&lp.returned)
        .enumerate()
        .filter(|(_, (q, r))| q != r)
        .map(|(i, (q, r))| format!("buffer {i}: queued {q}, returned {r}"))
        .collect();
    let total: u32 = lp.queued.iter().sum();
    rep.check(
        "buffers",
        mismatched.is_empty() && lp.queue_errors.is_empty(),
        format!(
            "{total} frames queued, each buffer returned exactly once per queue{}{}",
            if mismatched.is_empty() { String::new() } else { format!("; {}", mismatched.join(", ")) },
            if lp.queue_errors.is_empty() {
                String::new()
            } else {
                format!("; queue errors: {}", lp.queue_errors.join("; "))
            }
        ),
    );
    println!(
        "facts: driver {}, {} polls ({} also for POLLOUT), {} streams, {} stray CAPTURE buffers, {:.1} s",
        enc.device().driver,
        lp.polls,
        lp.writable_waits,
        c.streams,
        c.stray_buffers,
        (monotonic_us() - t0) as f64 / 1e6
    );
    Ok(rep.finish("v4l2"))
}

/// Checks on one stream's frames against what the driver returned for them.
#[allow(clippy::too_many_arguments)]
fn check_segment(
    rep: &mut Report,
    name: &str,
    codec: Codec,
    size: Size,
    frames: u32,
    first_seq: u32,
    force_at: Option<u32>,
    gop: u32,
    got: &[&Got],
    trace: &[v4l2::CaptureRecord],
    generation: u32,
    drained: bool,
) {
    // Every frame came back with a picture, in order.
    let seqs: Vec<u32> = got.iter().map(|g| g.sequence).collect();
    let expect: Vec<u32> = (first_seq..first_seq + frames).collect();
    let errors: Vec<String> =
        got.iter().filter_map(|g| g.ok.as_ref().err().map(|e| format!("{}: {e}", g.sequence))).collect();
    rep.check(
        &format!("{name}-frames"),
        seqs == expect && errors.is_empty(),
        format!(
            "{} of {frames} frames back in order, {} errors{}",
            got.len(),
            errors.len(),
            errors.first().map_or(String::new(), |e| format!(" ({e})"))
        ),
    );
    // What the driver said about each CAPTURE buffer of this stream.
    let recs: Vec<&v4l2::CaptureRecord> = trace.iter().filter(|r| r.generation == generation && r.picture).collect();
    let headers = trace.iter().filter(|r| r.generation == generation && !r.picture && r.buffer.bytesused > 0).count();
    let mut problems = Vec::new();
    if recs.len() != got.len() {
        problems.push(format!("{} CAPTURE buffers with pictures for {} frames", recs.len(), got.len()));
    }
    // Sequence numbers count from 0 in each CAPTURE epoch (a queue restart resets them), over
    // every buffer that carried bytes (an empty LAST buffer carries no sequence of its own).
    let mut prev: Option<(u32, u32)> = None;
    for r in trace.iter().filter(|r| r.generation == generation && r.buffer.bytesused > 0) {
        let want_seq = match prev {
            Some((epoch, s)) if epoch == r.epoch => s + 1,
            _ => 0,
        };
        if r.buffer.sequence != want_seq {
            problems.push(format!("sequence {} (epoch {}), expected {want_seq}", r.buffer.sequence, r.epoch));
        }
        prev = Some((r.epoch, r.buffer.sequence));
    }
    let mut prev_key = 0;
    for (r, g) in recs.iter().zip(got) {
        let b = &r.buffer;
        // FWHT: the access unit is the buffer. H.264: parameter sets from a header-only buffer
        // or put in front of an IDR that lacked them may make it longer, never shorter.
        if b.bytesused as usize != g.len && (codec == Codec::Fwht || (b.bytesused as usize) > g.len) {
            problems.push(format!("frame {}: bytesused {} but access unit {}", g.sequence, b.bytesused, g.len));
        }
        if b.bytesused > r.sizeimage {
            problems.push(format!("frame {}: bytesused {} > sizeimage {}", g.sequence, b.bytesused, r.sizeimage));
        }
        if b.flags & BUF_FLAG_ERROR != 0 {
            problems.push(format!("frame {}: ERROR flag", g.sequence));
        }
        if b.timestamp_us <= prev_key {
            problems.push(format!("frame {}: timestamp {} not after {prev_key}", g.sequence, b.timestamp_us));
        }
        prev_key = b.timestamp_us;
        if codec == Codec::Fwht {
            match FwhtHeader::parse(&g.head) {
                Some(h) => {
                    if (h.width, h.height) != (size.w, size.h) {
                        problems.push(format!("frame {}: FWHT header says {}x{}", g.sequence, h.width, h.height));
                    }
                    if h.size as usize + 44 != b.bytesused as usize {
                        problems.push(format!(
                            "frame {}: header size {} + 44 != bytesused {}",
                            g.sequence, h.size, b.bytesused
                        ));
                    }
                    if h.is_intra() != g.keyframe {
                        problems.push(format!(
                            "frame {}: I-frame flag {} but keyframe {}",
                            g.sequence,
                            h.is_intra(),
                            g.keyframe
                        ));
                    }
                }
                None => problems.push(format!("frame {}: no FWHT header", g.sequence)),
            }
        }
    }
    let sizes: Vec<u32> = recs.iter().map(|r| r.buffer.bytesused).collect();
    rep.check(
        &format!("{name}-driver"),
        problems.is_empty(),
        format!(
            "{} CAPTURE buffers with pictures (+{headers} with headers only), bytesused {}..{} of sizeimage {}, sequence 0.. per epoch ({} epochs), KEYFRAME flags set by the driver: {}{}",
            recs.len(),
            sizes.iter().min().unwrap_or(&0),
            sizes.iter().max().unwrap_or(&0),
            recs.first().map_or(0, |r| r.sizeimage),
            recs.last().map_or(0, |r| r.epoch + 1),
            recs.iter().filter(|r| r.buffer.flags & BUF_FLAG_KEYFRAME != 0).count(),
            if problems.is_empty() { String::new() } else { format!("; {}", problems[..problems.len().min(5)].join("; ")) }
        ),
    );
    // Keyframes: the first, the forced one, one at least every GOP; and P pictures between.
    let keys: Vec<u32> = got.iter().filter(|g| g.keyframe).map(|g| g.sequence - first_seq).collect();
    let forced_ok = force_at.is_none_or(|f| keys.contains(&(f - first_seq)));
    let max_gap =
        keys.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0).max(frames - keys.last().copied().unwrap_or(0));
    let exact = if codec == Codec::Fwht {
        // vicodec counts its GOP from each keyframe it was asked for.
        let mut want = Vec::new();
        let mut base = 0;
        for i in 0..frames {
            if force_at.is_some_and(|f| f - first_seq == i) {
                base = i;
            }
            if (i - base) % gop == 0 {
                want.push(i);
            }
        }
        keys == want
    } else {
        true
    };
    rep.check(
        &format!("{name}-keyframes"),
        keys.first() == Some(&0) && forced_ok && max_gap <= gop && keys.len() < frames as usize && exact,
        format!(
            "keyframes at {keys:?} (GOP {gop}{})",
            force_at.map_or(String::new(), |f| format!(", forced at {}", f - first_seq))
        ),
    );
    // A drained stream ends in exactly one LAST buffer.
    if drained {
        let last = trace.iter().filter(|r| r.generation == generation && r.buffer.flags & BUF_FLAG_LAST != 0).count();
        rep.check(&format!("{name}-drain"), last == 1, format!("{last} LAST buffer(s) when the stream was stopped"));
    }
}

// ---- selftest dmabuf (the software encoder) ---------------------------------------------------

fn dmabuf_selftest(a: &Args) -> Result<i32, String> {
    a.check_known(&["heap", "frames"])?;
    let heap_path = heap_path(a);
    let frames = a.num("frames", 10)?;
    let mut rep = Report { passed: 0, failed: 0 };
    let size = Size { w: 320, h: 240 };
    let layout = FrameLayout::i420(size);
    let heap = Heap::open(&heap_path).map_err(|e| format!("{}: {e}", heap_path.display()))?;
    let cfg = EncoderConfig { width: size.w, height: size.h, fps: 30, bitrate_bps: 1_000_000, gop_frames: 30 };
    for source in [Source::Heap, Source::Memfd] {
        let what = if source == Source::Heap { "dma-buf" } else { "memfd" };
        let mut free = pool(source, Some(&heap), layout, 3, 0)?;
        let dmabuf = dmabuf::is_dmabuf(free[0].fd());
        rep.check(&format!("{what}-kind"), dmabuf == (source == Source::Heap), format!("is a dma-buf: {dmabuf}"));
        let mut enc = SoftwareEncoder::start(0, cfg, None, Arc::new(Faults::default())).map_err(|e| e.to_string())?;
        let mut painter = Painter::new(size);
        let (mut sent, mut ok, mut keys, mut waits) = (0, 0, 0, 0);
        let mut out = Vec::new();
        // The painter's writes are bracketed too (Write); the encoder's are reads.
        let before = dmabuf::sync_starts(Access::Read);
        while ok < frames {
            if sent < frames && enc.in_flight() < 2 {
                if let Some(mut buf) = free.pop() {
                    painter.paint(&mut buf, sent)?;
                    let meta =
                        FrameMeta { eye: 0, sequence: sent, capture_us: monotonic_us(), crop: Rect::new(0, 0, 1, 1) };
                    enc.queue(EncodeJob { buffer: buf, meta, force_idr: false }).map_err(|r| r.1)?;
                    sent += 1;
                    continue;
                }
            }
            let mut ready = Vec::new();
            let mut set = PollSet::default();
            set.add(enc.completion_fd(), Token::Encoder(0), true, false);
            set.wait(5000, &mut ready).map_err(|e| e.to_string())?;
            if ready.is_empty() {
                break;
            }
            waits += 1;
            enc.drain(&mut out);
            for e in out.drain(..) {
                if let Ok(au) = &e.result {
                    ok += 1;
                    keys += au.keyframe as u32;
                }
                free.push(e.buffer);
            }
        }
        let syncs = dmabuf::sync_starts(Access::Read) - before;
        let want_syncs = if source == Source::Heap { frames as u64 } else { 0 };
        rep.check(
            &format!("{what}-software"),
            ok == frames && keys >= 1 && syncs == want_syncs,
            format!("{ok}/{frames} frames encoded by OpenH264 ({keys} keyframes, {waits} wakes), encoder's SYNC brackets: {syncs} (want {want_syncs})"),
        );
    }
    Ok(rep.finish("dmabuf"))
}
