//! `selftest dmabuf`: the software encoder reading dma-bufs in place between
//! DMA_BUF_IOCTL_SYNC START/END, and memfds without (they answer ENOTTY, once).

use std::sync::Arc;

use super::frames::{Painter, Source, heap_path, pool};
use super::{Args, Report};
use crate::camera::{FrameBuffer, FrameLayout, FrameMeta, Rect, Size};
use crate::encoder::software::{SoftwareEncoder, Tuning};
use crate::encoder::{EncodeJob, Encoder, EncoderConfig};
use crate::event_loop::{PollSet, Token};
use crate::inject::Faults;
use crate::sys::clock::monotonic_us;
use crate::sys::dmabuf::{self, Access, Heap};

const SIZE: Size = Size { w: 320, h: 240 };

pub(super) fn run(a: &Args) -> Result<i32, String> {
    a.check_known(&["heap", "frames"])?;
    let heap_path = heap_path(a);
    let frames = a.num("frames", 10)?;
    let mut rep = Report::default();
    let heap = Heap::open(&heap_path).map_err(|e| format!("{}: {e}", heap_path.display()))?;
    for source in [Source::Heap, Source::Memfd] {
        let what = if source == Source::Heap { "dma-buf" } else { "memfd" };
        let mut free = pool(source, Some(&heap), FrameLayout::i420(SIZE), 3, 0)?;
        check_kind(&mut rep, what, source, &free[0]);
        check_encoding(&mut rep, what, source, &mut free, frames)?;
    }
    Ok(rep.finish("dmabuf"))
}

/// `<what>-kind`: the kernel agrees on what the buffer is.
fn check_kind(rep: &mut Report, what: &str, source: Source, buf: &FrameBuffer) {
    let dmabuf = dmabuf::is_dmabuf(buf.fd());
    rep.check(&format!("{what}-kind"), dmabuf == (source == Source::Heap), format!("is a dma-buf: {dmabuf}"));
}

/// `<what>-software`: OpenH264 encodes every frame, and brackets its reads of each dma-buf
/// (and of nothing else) with SYNC START/END.
fn check_encoding(
    rep: &mut Report,
    what: &str,
    source: Source,
    free: &mut Vec<FrameBuffer>,
    frames: u32,
) -> Result<(), String> {
    let cfg = EncoderConfig { width: SIZE.w, height: SIZE.h, fps: 30, bitrate_bps: 1_000_000, gop_frames: 30 };
    let mut enc = SoftwareEncoder::start(0, cfg, None, Tuning::default(), Arc::new(Faults::default()))
        .map_err(|e| e.to_string())?;
    let mut painter = Painter::new(SIZE);
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
        format!(
            "{ok}/{frames} frames encoded by OpenH264 ({keys} keyframes, {waits} wakes), encoder's SYNC brackets: {syncs} (want {want_syncs})"
        ),
    );
    Ok(())
}
