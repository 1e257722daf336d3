//! The encoder seam, shaped like a V4L2 memory-to-memory encoder: a frame buffer (an fd) plus
//! its metadata goes in, an access unit comes out later and rings the completion fd, and the
//! buffer comes back with it so the loop can return it to the camera. "Force IDR" rides on the
//! frame it applies to, as V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME does.

pub mod h264;
pub mod openh264_api;
pub mod picture;
pub mod pin;
pub mod rate;
pub mod software;
pub mod v4l2;

use std::os::fd::BorrowedFd;

use crate::camera::{FrameBuffer, FrameMeta};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Distance between periodic IDRs, in frames.
    pub gop_frames: u32,
}

pub struct EncodeJob {
    pub buffer: FrameBuffer,
    pub meta: FrameMeta,
    pub force_idr: bool,
}

/// One encoded picture in Annex-B byte-stream form. `data[..headroom]` is reserved space in
/// front of the NAL units so a transport can write its headers in place instead of copying.
pub struct AccessUnit {
    pub data: Vec<u8>,
    pub headroom: usize,
    pub keyframe: bool,
}

impl AccessUnit {
    pub fn annexb(&self) -> &[u8] {
        &self.data[self.headroom..]
    }
}

pub struct Encoded {
    pub buffer: FrameBuffer,
    pub meta: FrameMeta,
    pub result: Result<AccessUnit, String>,
    /// CPU time the encoder spent on this frame, µs.
    pub cpu_us: u64,
    /// CLOCK_MONOTONIC time the access unit was ready, µs.
    pub done_us: u64,
}

/// What the loop waits for on an encoder's completion fd: POLLIN, POLLOUT, or nothing at all
/// (then the fd stays out of that poll).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    pub const NONE: Interest = Interest { readable: false, writable: false };

    pub fn any(self) -> bool {
        self.readable || self.writable
    }
}

pub trait Encoder {
    /// Ready (as [`Encoder::interest`] says) when [`Encoder::drain`] has results. Ask again
    /// every loop iteration: an encoder may hand out another fd from one to the next (the V4L2
    /// encoder: its device, or an eventfd while finished frames wait outside the device).
    fn completion_fd(&self) -> BorrowedFd<'_>;

    /// What to wait for on [`Encoder::completion_fd`] now. An eventfd doorbell: readable.
    /// A V4L2 M2M device: readable (CAPTURE done), writable too while a result waits for its
    /// OUTPUT buffer, nothing while no frame is inside.
    fn interest(&self) -> Interest {
        Interest::READABLE
    }

    /// Hand a frame to the encoder. On failure the job (and its buffer) comes back.
    fn queue(&mut self, job: EncodeJob) -> Result<(), Box<(EncodeJob, String)>>;

    /// Move finished frames into `out`.
    fn drain(&mut self, out: &mut Vec<Encoded>);

    /// Frames queued and not yet drained.
    fn in_flight(&self) -> usize;

    /// New rate settings (bitrate, fps, GOP) from the next frame on, which is then an IDR.
    fn configure(&mut self, cfg: EncoderConfig);

    fn name(&self) -> &'static str;

    /// The CPU the encoder's own thread is kept on, if it has one (see `--encoder-cpus`).
    fn cpu(&self) -> Option<usize> {
        None
    }

    /// Threads encoding one picture (slices in parallel; see `--encoder-threads`).
    fn threads(&self) -> u16 {
        1
    }
}
