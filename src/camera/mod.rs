//! The camera seam, shaped like libcamera: a camera owns a fixed pool of frame buffers (fds);
//! the loop queues *requests* (a buffer plus per-request controls, the crop above all);
//! completions arrive asynchronously and ring an fd; a completed request hands back the buffer
//! with its sequence number, CLOCK_MONOTONIC capture time and the crop actually applied.
//! The output size is fixed while the crop moves, as on the Pi where the ISP scales the crop.

pub mod completion;
pub mod fixup;
#[cfg(feature = "libcamera")]
#[allow(unsafe_code)] // FFI: the libcamera crate's lifetimes and raw fds (each block says why)
pub mod libcamera;
pub mod listing;
pub mod modes;
pub mod pacing;
pub mod pairing;
pub mod requests;
pub mod retry;
pub mod scene;
pub mod select;
pub mod stamp;
pub mod sync;
pub mod synthetic;

use std::os::fd::BorrowedFd;

use crate::sys::shm::SharedMemory;

/// A rectangle in sensor pixel coordinates (libcamera's `Rectangle`, as used by `ScalerCrop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Rect { x, y, w, h }
    }

    pub fn right(&self) -> u32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }
}

impl std::fmt::Display for Rect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// Width and height in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub w: u32,
    pub h: u32,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.w, self.h)
    }
}

/// Planar YUV 4:2:0 (I420 / libcamera's YUV420): a full-size Y plane, then U and V at half
/// resolution, no padding between rows. Width and height are even.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I420Layout {
    pub width: u32,
    pub height: u32,
}

impl I420Layout {
    pub fn new(size: Size) -> Self {
        assert!(size.w % 2 == 0 && size.h % 2 == 0, "I420 needs even dimensions, got {size}");
        I420Layout { width: size.w, height: size.h }
    }
    pub fn y_len(&self) -> usize {
        (self.width * self.height) as usize
    }
    pub fn chroma_width(&self) -> usize {
        (self.width / 2) as usize
    }
    pub fn c_len(&self) -> usize {
        self.y_len() / 4
    }
    pub fn frame_len(&self) -> usize {
        self.y_len() + 2 * self.c_len()
    }
    /// (Y, U, V) plane views of one frame.
    pub fn planes<'a>(&self, frame: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8]) {
        let (y, rest) = frame[..self.frame_len()].split_at(self.y_len());
        let (u, v) = rest.split_at(self.c_len());
        (y, u, v)
    }
    pub fn planes_mut<'a>(&self, frame: &'a mut [u8]) -> (&'a mut [u8], &'a mut [u8], &'a mut [u8]) {
        let (y, rest) = frame[..self.frame_len()].split_at_mut(self.y_len());
        let (u, v) = rest.split_at_mut(self.c_len());
        (y, u, v)
    }
}

/// Pixel formats a camera may deliver (libcamera's names: YUV420, NV12, BGR888).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Planar Y, U, V (4:2:0): what the Pi's ISP gives and what H.264 encoders take.
    I420,
    /// Y plane, then interleaved U/V (4:2:0).
    Nv12,
    /// Packed 24-bit B, G, R.
    Bgr888,
}

/// Where the planes of one frame sit in its buffer: format, size, per-plane offset and stride
/// (a real camera pads rows; unused planes have stride 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub offsets: [usize; 3],
    pub strides: [usize; 3],
}

impl FrameLayout {
    /// Contiguous I420 without padding (the synthetic camera's buffers).
    pub fn i420(size: Size) -> FrameLayout {
        let l = I420Layout::new(size);
        let (w, cw) = (size.w as usize, l.chroma_width());
        FrameLayout {
            format: PixelFormat::I420,
            width: size.w,
            height: size.h,
            offsets: [0, l.y_len(), l.y_len() + l.c_len()],
            strides: [w, cw, cw],
        }
    }

    /// Rows of plane `i`.
    pub fn rows(&self, i: usize) -> usize {
        match (self.format, i) {
            (_, 0) => self.height as usize,
            (PixelFormat::I420 | PixelFormat::Nv12, _) => self.height.div_ceil(2) as usize,
            (PixelFormat::Bgr888, _) => 0,
        }
    }

    /// Bytes the buffer must hold.
    pub fn len(&self) -> usize {
        (0..3)
            .map(|i| if self.strides[i] == 0 { 0 } else { self.offsets[i] + self.strides[i] * self.rows(i) })
            .max()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contiguous-I420 view, when that is what this is.
    pub fn as_i420(&self) -> Option<I420Layout> {
        (*self == FrameLayout::i420(Size { w: self.width, h: self.height }))
            .then(|| I420Layout::new(Size { w: self.width, h: self.height }))
    }

    /// Plane `i` of a frame: `rows(i)` rows of `strides[i]` bytes.
    pub fn plane<'a>(&self, frame: &'a [u8], i: usize) -> &'a [u8] {
        &frame[self.offsets[i]..self.offsets[i] + self.strides[i] * self.rows(i)]
    }
}

/// One frame buffer of a camera's pool. Whoever holds the value holds the pixels: it moves
/// camera → loop → encoder → loop → camera and is never copied on the way.
pub struct FrameBuffer {
    /// Index in the owning camera's pool (stable for the buffer's life).
    pub index: usize,
    pub memory: SharedMemory,
    pub layout: FrameLayout,
}

impl FrameBuffer {
    pub fn pixels(&self) -> &[u8] {
        &self.memory.as_slice()[..self.layout.len()]
    }
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        let len = self.layout.len();
        &mut self.memory.as_mut_slice()[..len]
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.memory.as_fd()
    }
    /// `fd()` and `pixels_mut()` together, for a CPU write bracketed by dma-buf syncs.
    pub fn fd_and_pixels_mut(&mut self) -> (BorrowedFd<'_>, &mut [u8]) {
        let len = self.layout.len();
        let (fd, bytes) = self.memory.fd_and_mut_slice();
        (fd, &mut bytes[..len])
    }
}

/// Mirroring of the picture (libcamera's `Transform` for the flips a mount needs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flip {
    #[default]
    None,
    H,
    V,
    HV,
}

impl Flip {
    pub fn h(self) -> bool {
        matches!(self, Flip::H | Flip::HV)
    }
    pub fn v(self) -> bool {
        matches!(self, Flip::V | Flip::HV)
    }
    pub fn name(self) -> &'static str {
        match self {
            Flip::None => "none",
            Flip::H => "h",
            Flip::V => "v",
            Flip::HV => "hv",
        }
    }
    pub fn parse(s: &str) -> Option<Flip> {
        Some(match s {
            "none" => Flip::None,
            "h" => Flip::H,
            "v" => Flip::V,
            "hv" | "vh" => Flip::HV,
            _ => return None,
        })
    }
}

/// Mirror an I420 frame in place.
pub fn flip_i420(layout: I420Layout, frame: &mut [u8], flip: Flip) {
    let (y, u, v) = layout.planes_mut(frame);
    let (w, cw) = (layout.width as usize, layout.chroma_width());
    for (plane, stride) in [(y, w), (u, cw), (v, cw)] {
        if flip.h() {
            plane.chunks_exact_mut(stride).for_each(|row| row.reverse());
        }
        if flip.v() {
            let rows = plane.len() / stride;
            for r in 0..rows / 2 {
                let (top, bottom) = plane.split_at_mut((rows - 1 - r) * stride);
                top[r * stride..(r + 1) * stride].swap_with_slice(&mut bottom[..stride]);
            }
        }
    }
}

/// Controls carried by one request (libcamera's per-request ControlList).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    pub crop: Rect,
}

pub struct Request {
    pub buffer: FrameBuffer,
    pub controls: Controls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameStatus {
    Ok,
    /// The sensor never captured the frame this request was queued for (the capture fell
    /// behind); the buffer comes back unused. Not a fault: a lost frame.
    Skipped,
    /// The camera gave the buffer back without a picture (libcamera's RequestCancelled/error).
    Failed(String),
}

/// What the loop needs to know about a captured frame, wherever it travels next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    pub eye: u8,
    pub sequence: u32,
    /// CLOCK_MONOTONIC capture time (start of exposure), microseconds.
    pub capture_us: u64,
    /// The crop the camera really applied for this frame, in sensor coordinates.
    pub crop: Rect,
}

pub struct Completed {
    pub buffer: FrameBuffer,
    pub meta: FrameMeta,
    pub status: FrameStatus,
}

/// What a camera is, fixed once it is configured.
#[derive(Clone, Debug)]
pub struct CameraInfo {
    /// Human-readable id (libcamera's camera id, or `synthetic:0`).
    pub id: String,
    /// The area crops live in (libcamera's `ScalerCropMaximum`): any crop must fit inside.
    pub sensor: Rect,
    /// The fixed output size the crop is scaled to.
    pub output: Size,
    /// Smallest crop the camera honours (the largest zoom).
    pub min_crop: Size,
    pub fps: u32,
    /// Whether the camera applies `ScalerCrop` at all. When it does not (libcamera's vimc and
    /// virtual cameras), every frame reports the whole `sensor` area as its applied crop.
    pub crop_supported: bool,
    /// The sensor mode the camera runs in (size, bit depth, fastest rate, crop), when it has
    /// modes to choose from (`camera::modes`).
    pub sensor_mode: Option<String>,
}

#[derive(Debug)]
pub enum CameraError {
    /// The camera is not running (stopped or vanished); the buffer comes back.
    NotRunning,
    Other(String),
}

impl std::fmt::Display for CameraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraError::NotRunning => write!(f, "camera is not running"),
            CameraError::Other(s) => f.write_str(s),
        }
    }
}

pub trait Camera {
    fn info(&self) -> &CameraInfo;

    /// Readable when completed requests are waiting in [`Camera::drain_completed`].
    fn completion_fd(&self) -> BorrowedFd<'_>;

    /// The buffer pool, handed out once after start; the caller queues them as requests.
    fn take_buffers(&mut self) -> Vec<FrameBuffer>;

    /// Queue a request. Returns the sequence number the frame is expected to carry (exact for
    /// the synthetic camera, which hands a request back `Skipped` rather than let it slip to a
    /// later frame; a prediction on real hardware, where the completion is the truth).
    fn queue_request(&mut self, request: Request) -> Result<u32, Box<(Request, CameraError)>>;

    /// The sequence a request queued now would be expected to carry.
    fn next_sequence(&self) -> u32;

    /// Number of requests queued and not yet completed.
    fn queued(&self) -> usize;

    /// Move all completed requests into `out` (call when the completion fd is readable).
    fn drain_completed(&mut self, out: &mut Vec<Completed>);

    /// Frames the sensor produced that nobody received: no request was queued, or the
    /// camera itself lost them.
    fn starved_frames(&self) -> u64;

    /// Mirror the picture from the next frame on (a real camera is reconfigured for this).
    fn set_flip(&mut self, flip: Flip) -> Result<(), CameraError>;

    /// Change the frame rate.
    fn set_fps(&mut self, fps: u32) -> Result<(), CameraError>;

    /// Housekeeping from the daemon's timer (~10 Hz): a real camera notices here that it
    /// vanished and retries opening it with backoff. Never blocks for long.
    fn tick(&mut self, _now_us: u64) {}
}

/// The largest crop with the output's aspect ratio, centred in the sensor: the whole view.
pub fn full_view(sensor: Rect, output: Size) -> Rect {
    let (sw, sh) = (sensor.w as u64, sensor.h as u64);
    let (ow, oh) = (output.w as u64, output.h as u64);
    let (w, h) = if sw * oh >= sh * ow { (sh * ow / oh, sh) } else { (sw, sw * oh / ow) };
    let (w, h) = (w as u32 & !1, h as u32 & !1);
    Rect::new((sensor.x + (sensor.w - w) / 2) & !1, (sensor.y + (sensor.h - h) / 2) & !1, w, h)
}

/// Clamp a requested crop into the sensor area with a minimum size and even alignment: what a
/// camera does to a crop it cannot honour exactly (the applied crop is then reported back).
pub fn clamp_crop(req: Rect, sensor: Rect, min: Size) -> Rect {
    let even_down = |v: u32| v & !1;
    let w = even_down(req.w.clamp(min.w.min(sensor.w), sensor.w));
    let h = even_down(req.h.clamp(min.h.min(sensor.h), sensor.h));
    let x = even_down(req.x.clamp(sensor.x, sensor.right() - w));
    let y = even_down(req.y.clamp(sensor.y, sensor.bottom() - h));
    Rect { x, y, w, h }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_keeps_a_valid_crop_and_fixes_a_wild_one() {
        let sensor = Rect::new(0, 0, 2304, 1296);
        let min = Size { w: 64, h: 64 };
        assert_eq!(clamp_crop(Rect::new(100, 50, 960, 1080), sensor, min), Rect::new(100, 50, 960, 1080));
        assert_eq!(clamp_crop(Rect::new(5000, 5000, 9000, 9000), sensor, min), sensor);
        assert_eq!(clamp_crop(Rect::new(2300, 1290, 1, 1), sensor, min), Rect::new(2240, 1232, 64, 64));
        assert_eq!(clamp_crop(Rect::new(3, 7, 101, 99), sensor, min), Rect::new(2, 6, 100, 98));
    }

    #[test]
    fn full_view_keeps_the_output_aspect() {
        let s = Rect::new(0, 0, 2304, 1296);
        assert_eq!(full_view(s, Size { w: 960, h: 1080 }), Rect::new(576, 0, 1152, 1296));
        assert_eq!(full_view(s, Size { w: 1920, h: 1080 }), s);
        assert_eq!(full_view(Rect::new(0, 0, 1000, 1000), Size { w: 1920, h: 1080 }), Rect::new(0, 218, 1000, 562));
    }

    #[test]
    fn flips_mirror_every_plane_and_twice_is_identity() {
        let l = I420Layout::new(Size { w: 4, h: 4 });
        let orig: Vec<u8> = (0..24).collect();
        let mut f = orig.clone();
        flip_i420(l, &mut f, Flip::H);
        assert_eq!(&f[..4], &[3, 2, 1, 0]);
        assert_eq!(&f[16..18], &[17, 16]);
        flip_i420(l, &mut f, Flip::H);
        assert_eq!(f, orig);
        flip_i420(l, &mut f, Flip::V);
        assert_eq!(&f[..4], &[12, 13, 14, 15]);
        assert_eq!(&f[20..24], &[22, 23, 20, 21]);
        flip_i420(l, &mut f, Flip::HV);
        flip_i420(l, &mut f, Flip::H);
        assert_eq!(f, orig, "V then HV then H is the identity");
    }

    #[test]
    fn frame_layouts() {
        let l = FrameLayout::i420(Size { w: 4, h: 2 });
        assert_eq!((l.len(), l.offsets, l.strides), (12, [0, 8, 10], [4, 2, 2]));
        assert!(l.as_i420().is_some());
        let padded = FrameLayout { strides: [8, 4, 4], offsets: [0, 16, 20], ..l };
        assert_eq!(padded.len(), 24);
        assert!(padded.as_i420().is_none());
        let nv12 =
            FrameLayout { format: PixelFormat::Nv12, width: 4, height: 2, offsets: [0, 8, 0], strides: [4, 4, 0] };
        assert_eq!(nv12.len(), 12);
        let buf: Vec<u8> = (0..12).collect();
        assert_eq!(nv12.plane(&buf, 1), &[8, 9, 10, 11]);
        let bgr = FrameLayout { format: PixelFormat::Bgr888, width: 2, height: 2, offsets: [0; 3], strides: [6, 0, 0] };
        assert_eq!(bgr.len(), 12);
    }

    #[test]
    fn i420_planes_split_a_frame() {
        let l = I420Layout::new(Size { w: 4, h: 2 });
        assert_eq!(l.frame_len(), 12);
        let buf: Vec<u8> = (0..12).collect();
        let (y, u, v) = l.planes(&buf);
        assert_eq!((y.len(), u, v), (8, &[8u8, 9][..], &[10u8, 11][..]));
    }
}
