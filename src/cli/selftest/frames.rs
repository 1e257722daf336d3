//! The frames a selftest feeds an encoder: buffers from a DMA heap or memfds, painted with the
//! synthetic scene and its stamp (so every picture differs a little from the last).

use std::os::fd::AsFd;
use std::path::PathBuf;

use super::Args;
use crate::camera::scene::Scene;
use crate::camera::stamp::Stamp;
use crate::camera::{FrameBuffer, FrameLayout, I420Layout, PixelFormat, Rect, Size};
use crate::encoder::v4l2::params::copy_frame;
use crate::sys::dmabuf::{Access, CpuAccess, Heap};
use crate::sys::shm::SharedMemory;

/// `--heap`, else the CMA heap where there is one (what libcamera allocates from on a Pi, and
/// what a dma-contig driver like bcm2835-codec can import), else the system heap.
pub(super) fn heap_path(a: &Args) -> PathBuf {
    match a.get("heap") {
        Some(p) => PathBuf::from(p),
        None if std::path::Path::new("/dev/dma_heap/linux,cma").exists() => "/dev/dma_heap/linux,cma".into(),
        None => "/dev/dma_heap/system".into(),
    }
}

/// Where frame buffers come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Heap,
    Memfd,
}

pub(super) fn layout_of(format: PixelFormat, size: Size) -> FrameLayout {
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
pub(super) fn pool(
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
pub(super) struct Painter {
    scene: Scene,
    size: Size,
    i420: Vec<u8>,
    xmap: Vec<u32>,
}

impl Painter {
    pub(super) fn new(size: Size) -> Painter {
        Painter { scene: Scene::new(size, 0), size, i420: Vec::new(), xmap: Vec::new() }
    }

    pub(super) fn paint(&mut self, buf: &mut FrameBuffer, seq: u32) -> Result<(), String> {
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
