//! `selftest v4l2`: the V4L2 encoder module through a poll loop shaped like the daemon's
//! (`completion_fd` + `interest`, at most two frames inside), one named check after another:
//!
//! - `device`, `source`: the encoder found by what it does; frames of the kind asked for;
//! - `stream-1`, `controls`, `segment-1-*`, `forced-keyframe`: ≥ 100 frames through the first
//!   stream, with a forced keyframe;
//! - `restart`, `old-buffers`, `stream-2`, `segment-2-*`: a resolution change requested with
//!   frames inside restarts the stream at the new size;
//! - `stop`, `buffers`: a stop with frames inside drains them, every frame buffer came back
//!   exactly once, and the device holds nothing.
//!
//! A check that later ones depend on ends the run when it fails (`Stop::Failed`).

use std::path::PathBuf;
use std::sync::Arc;

use super::frames::{Painter, Source, heap_path, layout_of, pool};
use super::{Args, Report};
use crate::camera::{FrameBuffer, FrameMeta, PixelFormat, Rect, Size};
use crate::encoder::v4l2::bitstream::FwhtHeader;
use crate::encoder::v4l2::{self, CaptureRecord, Codec, DeviceInfo, MemoryChoice, StreamInfo, V4l2Encoder};
use crate::encoder::{EncodeJob, Encoded, Encoder, EncoderConfig};
use crate::event_loop::{PollSet, Token};
use crate::inject::{Faults, SharedFaults};
use crate::sys::clock::monotonic_us;
use crate::sys::dmabuf::{self, Heap};
use crate::sys::v4l2::{BUF_FLAG_ERROR, BUF_FLAG_KEYFRAME, BUF_FLAG_LAST, Memory, cid, fourcc_name};

/// Frames inside an encoder at once, as the daemon allows (`eye::MAX_ENCODER_BACKLOG`).
const MAX_INSIDE: usize = 2;

/// Why a run ends early.
enum Stop {
    /// A check that the later ones depend on failed (it is reported).
    Failed,
    /// Something outside the checks went wrong (an allocation, say): no verdict.
    Error(String),
}

impl From<String> for Stop {
    fn from(e: String) -> Stop {
        Stop::Error(e)
    }
}

/// The command line of `selftest v4l2`.
struct Options {
    codec: Codec,
    device: Option<PathBuf>,
    frames: u32,
    size: Size,
    resize: Option<Size>,
    resize_frames: u32,
    format: PixelFormat,
    source: Source,
    heap: PathBuf,
    memory: MemoryChoice,
    expect_memory: Option<Memory>,
    gop: u32,
    force_at: u32,
}

impl Options {
    fn parse(a: &Args) -> Result<Options, String> {
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
        let frames = a.num("frames", 100)?;
        // vicodec codes nothing smaller than 640x360, in multiples of 16: 640x480 and 720x400
        // are taken as they are (zero-copy possible); 640x360 is coded as 640x368 (padded copy).
        let size = a.size("size", Some(Size { w: 640, h: 480 }))?.ok_or("--size none?")?;
        Ok(Options {
            codec: Codec::parse(a.get("codec").unwrap_or("h264")).ok_or("--codec: h264 or fwht")?,
            device: a.get("device").map(PathBuf::from),
            frames,
            size,
            resize: a.size("resize", Some(Size { w: size.w + 80, h: size.h.saturating_sub(80).max(16) }))?,
            resize_frames: a.num("resize-frames", 30)?,
            format: match a.get("format").unwrap_or("i420") {
                "i420" => PixelFormat::I420,
                "nv12" => PixelFormat::Nv12,
                f => return Err(format!("--format: i420 or nv12, not {f}")),
            },
            source: match a.get("source").unwrap_or("heap") {
                "heap" => Source::Heap,
                "memfd" => Source::Memfd,
                s => return Err(format!("--source: heap or memfd, not {s}")),
            },
            heap: heap_path(a),
            memory: MemoryChoice::parse(a.get("memory").unwrap_or("auto")).ok_or("--memory: auto, dmabuf or mmap")?,
            expect_memory: match a.get("expect-memory") {
                None => None,
                Some("dmabuf") => Some(Memory::Dmabuf),
                Some("mmap") => Some(Memory::Mmap),
                Some(m) => return Err(format!("--expect-memory: dmabuf or mmap, not {m}")),
            },
            gop: a.num("gop", 10)?,
            force_at: a.num("force-key-at", (frames / 2).saturating_sub(3))?,
        })
    }

    fn config(&self, size: Size) -> EncoderConfig {
        EncoderConfig { width: size.w, height: size.h, fps: 30, bitrate_bps: 1_000_000, gop_frames: self.gop }
    }
}

pub(super) fn run(a: &Args) -> Result<i32, String> {
    let o = Options::parse(a)?;
    let mut rep = Report::default();
    match checks(&mut rep, &o) {
        Ok(()) | Err(Stop::Failed) => Ok(rep.finish("v4l2")),
        Err(Stop::Error(e)) => Err(e),
    }
}

fn checks(rep: &mut Report, o: &Options) -> Result<(), Stop> {
    let t0 = monotonic_us();
    let info = check_device(rep, o)?;
    let mut rig = Rig::new(rep, o, info)?;
    let s1 = rig.first_stream(rep)?;
    let mut generation = s1.generation;
    if let Some(size) = o.resize {
        generation = rig.resolution_change(rep, &s1, size)?;
    }
    rig.clean_stop(rep, generation)?;
    rig.check_buffers(rep);
    println!(
        "facts: driver {}, {} polls ({} also for POLLOUT), {} streams, {} stray CAPTURE buffers, {:.1} s",
        rig.enc.device().driver,
        rig.polls,
        rig.writable_waits,
        rig.enc.counters().streams,
        rig.enc.counters().stray_buffers,
        (monotonic_us() - t0) as f64 / 1e6
    );
    Ok(())
}

/// `device`: the encoder, found by what it does (or at `--device`).
fn check_device(rep: &mut Report, o: &Options) -> Result<DeviceInfo, Stop> {
    match v4l2::find_encoder(o.codec, o.device.as_deref()) {
        Ok(info) => {
            rep.check("device", true, info.describe());
            Ok(info)
        }
        Err(e) => {
            rep.check("device", false, e);
            Err(Stop::Failed)
        }
    }
}

/// What came back for one frame.
struct Got {
    sequence: u32,
    ok: Result<(), String>,
    keyframe: bool,
    len: usize,
    head: Vec<u8>,
}

/// The encoder under test, the frames it is fed and what it gave back.
struct Rig<'o> {
    o: &'o Options,
    heap: Option<Heap>,
    enc: V4l2Encoder,
    free: Vec<FrameBuffer>,
    painter: Painter,
    /// The sequence of the next frame fed.
    next_seq: u32,
    /// Frames queued per buffer index, and returned per index.
    queued: Vec<u32>,
    returned: Vec<u32>,
    got: Vec<Got>,
    writable_waits: u32,
    polls: u32,
    queue_errors: Vec<String>,
    /// The GOP the driver took (`--gop` when it does not say).
    gop: u32,
}

impl<'o> Rig<'o> {
    /// Allocate the frames (`source`) and open the encoder.
    fn new(rep: &mut Report, o: &'o Options, info: DeviceInfo) -> Result<Rig<'o>, Stop> {
        let heap = match o.source {
            Source::Heap => Some(Heap::open(&o.heap).map_err(|e| format!("{}: {e}", o.heap.display()))?),
            Source::Memfd => None,
        };
        let layout = layout_of(o.format, o.size);
        let free = pool(o.source, heap.as_ref(), layout, 4, 0)?;
        let is_dmabuf = dmabuf::is_dmabuf(free[0].fd());
        rep.check(
            "source",
            is_dmabuf == (o.source == Source::Heap),
            format!(
                "{} {:?} {} frames, {} bytes each, dma-buf: {is_dmabuf}",
                if o.source == Source::Heap { o.heap.display().to_string() } else { "memfd".into() },
                o.format,
                o.size,
                layout.len()
            ),
        );
        let opts = v4l2::Options { codec: o.codec, memory: o.memory, trace: true, ..v4l2::Options::default() };
        let faults: SharedFaults = Arc::new(Faults::default());
        let enc = V4l2Encoder::open(info, 0, o.config(o.size), opts, faults)?;
        Ok(Rig {
            o,
            heap,
            enc,
            free,
            painter: Painter::new(o.size),
            next_seq: 0,
            queued: vec![0; 64],
            returned: vec![0; 64],
            got: Vec::new(),
            writable_waits: 0,
            polls: 0,
            queue_errors: Vec::new(),
            gop: o.gop,
        })
    }

    /// Segment 1: `--frames` frames at `--size` with a forced keyframe, then (with `--resize`)
    /// a resolution change requested while the last frames are still inside.
    fn first_stream(&mut self, rep: &mut Report) -> Result<StreamInfo, Stop> {
        let o = self.o;
        let mut stream = None;
        let resize = o.resize.map(|s| o.config(s));
        let fed = self.feed(o.frames, Some(o.force_at), &mut |enc| {
            stream = enc.stream_info();
            if let Some(c) = resize {
                enc.configure(c);
            }
        });
        if let Err(e) = fed {
            rep.check("segment-1", false, e);
            return Err(Stop::Failed);
        }
        let Some(s1) = stream else {
            let why = self.queue_errors.first().cloned().unwrap_or_default();
            rep.check("stream-1", false, format!("no stream after the first frames: {why}"));
            return Err(Stop::Failed);
        };
        rep.check(
            "stream-1",
            o.expect_memory.is_none_or(|m| m == s1.memory),
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
        self.check_controls(rep);
        let trace = self.enc.take_trace();
        let segment = Segment {
            name: "segment-1",
            size: o.size,
            frames: o.frames,
            first_seq: 0,
            force_at: Some(o.force_at),
            generation: s1.generation,
            drained: o.resize.is_some(),
        };
        self.check_segment(rep, &segment, &trace);
        let c = self.enc.counters();
        rep.check(
            "forced-keyframe",
            c.forced_by_control + c.forced_by_capture_restart >= 1,
            format!(
                "frame {}: by FORCE_KEY_FRAME {}, by CAPTURE queue restart {}",
                o.force_at, c.forced_by_control, c.forced_by_capture_restart
            ),
        );
        Ok(s1)
    }

    /// `controls`: what the driver took; its GOP is what the keyframe checks expect.
    fn check_controls(&mut self, rep: &mut Report) {
        let codec = self.o.codec;
        let gop_control = if codec == Codec::H264 { cid::H264_I_PERIOD } else { cid::GOP_SIZE };
        let applied_gop = self
            .enc
            .applied_controls()
            .iter()
            .find(|c| c.ctrl.id == gop_control)
            .and_then(|c| c.got)
            .map(|v| v.max(1) as u32);
        rep.check(
            "controls",
            applied_gop.is_some() || codec == Codec::H264,
            format!(
                "applied: {}; unsupported: {}",
                self.enc
                    .applied_controls()
                    .iter()
                    .map(|c| format!("{}={}", c.ctrl.name, c.got.map_or("?".into(), |v| v.to_string())))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.enc.unsupported_controls().len()
            ),
        );
        self.gop = applied_gop.unwrap_or(self.o.gop);
    }

    /// Segment 2, after the resolution change: the old stream stopped, a new one at `size`.
    /// Returns the new stream's generation.
    fn resolution_change(&mut self, rep: &mut Report, s1: &StreamInfo, size: Size) -> Result<u32, Stop> {
        rep.check(
            "restart",
            self.enc.stream_info().is_none() && self.enc.counters().restarts == 1 && self.enc.device_holds() == (0, 0),
            format!(
                "configure({size}) stopped stream {} with frames inside; restarts {}",
                s1.generation,
                self.enc.counters().restarts
            ),
        );
        // The old pool goes away: none of it may still be inside the encoder.
        let held_back = self.queued.iter().zip(&self.returned).filter(|(q, r)| q != r).count();
        rep.check(
            "old-buffers",
            held_back == 0,
            format!("{} buffers of the old size, {held_back} not returned", self.free.len()),
        );
        drop(std::mem::take(&mut self.free));
        self.free = pool(self.o.source, self.heap.as_ref(), layout_of(self.o.format, size), 4, 8)?;
        self.painter = Painter::new(size);
        let first_seq = self.next_seq;
        if let Err(e) = self.feed(self.o.resize_frames, None, &mut |_| {}) {
            rep.check("segment-2", false, e);
            return Err(Stop::Failed);
        }
        let trace = self.enc.take_trace();
        let s2 = self.enc.stream_info().ok_or("no stream after the resolution change".to_string())?;
        rep.check(
            "stream-2",
            // The coded size may be larger (padded); the visible size is checked per frame.
            s2.generation == s1.generation + 1 && s2.output.width >= size.w && s2.output.height >= size.h,
            format!(
                "generation {}, OUTPUT {:?} {}x{}, CAPTURE sizeimage {}",
                s2.generation, s2.memory, s2.output.width, s2.output.height, s2.capture.sizeimage
            ),
        );
        let segment = Segment {
            name: "segment-2",
            size,
            frames: self.o.resize_frames,
            first_seq,
            force_at: None,
            generation: s2.generation,
            drained: false,
        };
        self.check_segment(rep, &segment, &trace);
        Ok(s2.generation)
    }

    /// `stop`: a stop with two frames inside drains them (one LAST buffer), everything comes
    /// back, the device holds nothing.
    fn clean_stop(&mut self, rep: &mut Report, generation: u32) -> Result<(), Stop> {
        let mut inside = 0;
        for _ in 0..2 {
            let Some(buf) = self.free.pop() else { break };
            if self.queue(buf, false)? {
                inside += 1;
            }
        }
        let mut out = self.enc.finish();
        let finished = out.len();
        let pictures = out.iter().filter(|e| e.result.is_ok()).count();
        self.take(&mut out);
        let trace = self.enc.take_trace();
        let last = trace.iter().filter(|r| r.generation == generation && r.buffer.flags & BUF_FLAG_LAST != 0).count();
        let holds = self.enc.device_holds();
        rep.check(
            "stop",
            finished == inside && pictures == inside && last == 1 && holds == (0, 0) && self.enc.in_flight() == 0,
            format!(
                "{inside} frames inside at stop, {finished} returned ({pictures} with pictures), LAST buffers {last}, EOS events {}, device holds {holds:?}",
                self.enc.counters().eos_events,
            ),
        );
        Ok(())
    }

    /// `buffers`: every frame buffer came back exactly once per time it was queued.
    fn check_buffers(&self, rep: &mut Report) {
        let mismatched: Vec<String> = self
            .queued
            .iter()
            .zip(&self.returned)
            .enumerate()
            .filter(|(_, (q, r))| q != r)
            .map(|(i, (q, r))| format!("buffer {i}: queued {q}, returned {r}"))
            .collect();
        let total: u32 = self.queued.iter().sum();
        rep.check(
            "buffers",
            mismatched.is_empty() && self.queue_errors.is_empty(),
            format!(
                "{total} frames queued, each buffer returned exactly once per queue{}{}",
                if mismatched.is_empty() { String::new() } else { format!("; {}", mismatched.join(", ")) },
                if self.queue_errors.is_empty() {
                    String::new()
                } else {
                    format!("; queue errors: {}", self.queue_errors.join("; "))
                }
            ),
        );
    }

    // ---- the poll loop ---------------------------------------------------------------------

    /// Paint the next frame into `buf` and queue it; false if the encoder refused it (the
    /// buffer is back in `free`, the error in `queue_errors`).
    fn queue(&mut self, mut buf: FrameBuffer, force_idr: bool) -> Result<bool, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.painter.paint(&mut buf, seq)?;
        let meta = FrameMeta { eye: 0, sequence: seq, capture_us: monotonic_us(), crop: Rect::new(0, 0, 1, 1) };
        self.queued[buf.index] += 1;
        match self.enc.queue(EncodeJob { buffer: buf, meta, force_idr }) {
            Ok(()) => Ok(true),
            Err(rejected) => {
                let (job, e) = *rejected;
                self.queue_errors.push(format!("frame {seq}: {e}"));
                self.returned[job.buffer.index] += 1;
                self.free.push(job.buffer);
                Ok(false)
            }
        }
    }

    /// Frames back from the encoder: count them, keep what came back, free their buffers.
    fn take(&mut self, out: &mut Vec<Encoded>) {
        for e in out.drain(..) {
            self.returned[e.buffer.index] += 1;
            let (ok, keyframe, len, head) = match &e.result {
                Ok(au) => (Ok(()), au.keyframe, au.annexb().len(), au.annexb()[..au.annexb().len().min(64)].to_vec()),
                Err(why) => (Err(why.clone()), false, 0, Vec::new()),
            };
            self.got.push(Got { sequence: e.meta.sequence, ok, keyframe, len, head });
            self.free.push(e.buffer);
        }
    }

    /// One poll of the encoder as the daemon does it (interest, then its fd); false on timeout.
    fn wait(&mut self, timeout_ms: i32) -> Result<bool, String> {
        let want = self.enc.interest();
        if !want.any() {
            return Ok(true);
        }
        self.polls += 1;
        if want.writable {
            self.writable_waits += 1;
        }
        let mut ready = Vec::new();
        let mut set = PollSet::default();
        set.add(self.enc.completion_fd(), Token::Encoder(0), want.readable, want.writable);
        set.wait(timeout_ms, &mut ready).map_err(|e| format!("poll: {e}"))?;
        Ok(!ready.is_empty())
    }

    /// Feed `frames` frames (at most two inside, as the daemon allows), forcing a keyframe on
    /// sequence `force_at`; after queuing the last one call `after_last` (with frames still
    /// inside), then run until nothing is inside.
    fn feed(
        &mut self,
        frames: u32,
        force_at: Option<u32>,
        after_last: &mut dyn FnMut(&mut V4l2Encoder),
    ) -> Result<(), String> {
        let end = self.next_seq + frames;
        let mut out = Vec::new();
        let mut called = false;
        loop {
            while self.next_seq < end && self.enc.in_flight() < MAX_INSIDE {
                let force = force_at == Some(self.next_seq);
                // Without FORCE_KEY_FRAME the encoder forces a keyframe by restarting its
                // CAPTURE queue, which waits for an empty encoder: give it one, so the
                // keyframe lands on exactly this frame.
                if force && self.enc.in_flight() > 0 {
                    break;
                }
                let Some(buf) = self.free.pop() else { break };
                self.queue(buf, force)?;
            }
            if self.next_seq == end && !called {
                called = true;
                after_last(&mut self.enc);
            }
            if self.next_seq == end && self.enc.in_flight() == 0 {
                return Ok(());
            }
            if !self.wait(3000)? {
                return Err(format!("nothing from the encoder for 3 s ({} frames inside)", self.enc.in_flight()));
            }
            self.enc.drain(&mut out);
            self.take(&mut out);
        }
    }

    // ---- one stream's frames against what the driver said -----------------------------------

    /// `<segment>-frames`, `-driver`, `-keyframes` and (for a stream stopped with frames
    /// inside) `-drain`.
    fn check_segment(&self, rep: &mut Report, s: &Segment, trace: &[CaptureRecord]) {
        let got: Vec<&Got> =
            self.got.iter().filter(|g| (s.first_seq..s.first_seq + s.frames).contains(&g.sequence)).collect();
        check_frames(rep, s, &got);
        check_driver(rep, s, self.o.codec, &got, trace);
        check_keyframes(rep, s, self.o.codec, self.gop, &got);
        if s.drained {
            let last =
                trace.iter().filter(|r| r.generation == s.generation && r.buffer.flags & BUF_FLAG_LAST != 0).count();
            rep.check(
                &format!("{}-drain", s.name),
                last == 1,
                format!("{last} LAST buffer(s) when the stream was stopped"),
            );
        }
    }
}

/// One stream's worth of frames and what to expect of them.
struct Segment {
    name: &'static str,
    size: Size,
    frames: u32,
    first_seq: u32,
    force_at: Option<u32>,
    /// The encoder's stream generation these frames went through.
    generation: u32,
    /// The stream was stopped with frames inside (a drain).
    drained: bool,
}

/// `-frames`: every frame came back with a picture, in order.
fn check_frames(rep: &mut Report, s: &Segment, got: &[&Got]) {
    let seqs: Vec<u32> = got.iter().map(|g| g.sequence).collect();
    let expect: Vec<u32> = (s.first_seq..s.first_seq + s.frames).collect();
    let errors: Vec<String> =
        got.iter().filter_map(|g| g.ok.as_ref().err().map(|e| format!("{}: {e}", g.sequence))).collect();
    rep.check(
        &format!("{}-frames", s.name),
        seqs == expect && errors.is_empty(),
        format!(
            "{} of {} frames back in order, {} errors{}",
            got.len(),
            s.frames,
            errors.len(),
            errors.first().map_or(String::new(), |e| format!(" ({e})"))
        ),
    );
}

/// `-driver`: what the driver said about each CAPTURE buffer of this stream agrees with the
/// access units: sizes, flags, sequence numbers, timestamps, and (FWHT) the picture headers.
fn check_driver(rep: &mut Report, s: &Segment, codec: Codec, got: &[&Got], trace: &[CaptureRecord]) {
    let recs: Vec<&CaptureRecord> = trace.iter().filter(|r| r.generation == s.generation && r.picture).collect();
    let headers = trace.iter().filter(|r| r.generation == s.generation && !r.picture && r.buffer.bytesused > 0).count();
    let mut problems = Vec::new();
    if recs.len() != got.len() {
        problems.push(format!("{} CAPTURE buffers with pictures for {} frames", recs.len(), got.len()));
    }
    // Sequence numbers count from 0 in each CAPTURE epoch (a queue restart resets them), over
    // every buffer that carried bytes (an empty LAST buffer carries no sequence of its own).
    let mut prev: Option<(u32, u32)> = None;
    for r in trace.iter().filter(|r| r.generation == s.generation && r.buffer.bytesused > 0) {
        let want_seq = match prev {
            Some((epoch, q)) if epoch == r.epoch => q + 1,
            _ => 0,
        };
        if r.buffer.sequence != want_seq {
            problems.push(format!("sequence {} (epoch {}), expected {want_seq}", r.buffer.sequence, r.epoch));
        }
        prev = Some((r.epoch, r.buffer.sequence));
    }
    let mut prev_timestamp = 0;
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
        if b.timestamp_us <= prev_timestamp {
            problems.push(format!("frame {}: timestamp {} not after {prev_timestamp}", g.sequence, b.timestamp_us));
        }
        prev_timestamp = b.timestamp_us;
        if codec == Codec::Fwht {
            problems.extend(fwht_problems(s.size, g, b.bytesused));
        }
    }
    let sizes: Vec<u32> = recs.iter().map(|r| r.buffer.bytesused).collect();
    rep.check(
        &format!("{}-driver", s.name),
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
}

/// What is wrong with one FWHT picture's header (vicodec's format) against its buffer.
fn fwht_problems(size: Size, g: &Got, bytesused: u32) -> Vec<String> {
    let Some(h) = FwhtHeader::parse(&g.head) else {
        return vec![format!("frame {}: no FWHT header", g.sequence)];
    };
    let mut problems = Vec::new();
    if (h.width, h.height) != (size.w, size.h) {
        problems.push(format!("frame {}: FWHT header says {}x{}", g.sequence, h.width, h.height));
    }
    if h.size as usize + 44 != bytesused as usize {
        problems.push(format!("frame {}: header size {} + 44 != bytesused {bytesused}", g.sequence, h.size));
    }
    if h.is_intra() != g.keyframe {
        problems.push(format!("frame {}: I-frame flag {} but keyframe {}", g.sequence, h.is_intra(), g.keyframe));
    }
    problems
}

/// `-keyframes`: the first, the forced one, one at least every GOP; and P pictures between.
fn check_keyframes(rep: &mut Report, s: &Segment, codec: Codec, gop: u32, got: &[&Got]) {
    let keys: Vec<u32> = got.iter().filter(|g| g.keyframe).map(|g| g.sequence - s.first_seq).collect();
    let forced_ok = s.force_at.is_none_or(|f| keys.contains(&(f - s.first_seq)));
    let max_gap =
        keys.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0).max(s.frames - keys.last().copied().unwrap_or(0));
    let exact = if codec == Codec::Fwht {
        // vicodec counts its GOP from each keyframe it was asked for.
        let mut want = Vec::new();
        let mut base = 0;
        for i in 0..s.frames {
            if s.force_at.is_some_and(|f| f - s.first_seq == i) {
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
        &format!("{}-keyframes", s.name),
        keys.first() == Some(&0) && forced_ok && max_gap <= gop && keys.len() < s.frames as usize && exact,
        format!(
            "keyframes at {keys:?} (GOP {gop}{})",
            s.force_at.map_or(String::new(), |f| format!(", forced at {}", f - s.first_seq))
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(s: &str) -> Result<Options, String> {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        Options::parse(&Args::parse(&args)?)
    }

    #[test]
    fn defaults_and_flags() {
        let o = options("").unwrap();
        assert_eq!(
            (o.codec, o.frames, o.size, o.resize),
            (Codec::H264, 100, Size { w: 640, h: 480 }, Some(Size { w: 720, h: 400 }))
        );
        assert_eq!((o.force_at, o.gop, o.resize_frames, o.expect_memory), (47, 10, 30, None));
        let o = options("--codec fwht --frames 40 --resize none --format nv12 --source memfd --expect-memory mmap")
            .unwrap();
        assert_eq!((o.codec, o.force_at, o.resize, o.format), (Codec::Fwht, 17, None, PixelFormat::Nv12));
        assert!(o.source == Source::Memfd && o.expect_memory == Some(Memory::Mmap));
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            "--codec vp8",
            "--size 641x480",
            "--size 8x8",
            "--format yuyv",
            "--frames",
            "--nope 1",
            "stray",
            "--memory x",
        ] {
            assert!(options(bad).is_err(), "{bad}");
        }
    }
}
