//! The libcamera backend (cargo feature `libcamera`): real cameras through the `libcamera`
//! crate 0.7 (libcamera 0.4 to 0.7, upstream or Raspberry Pi's fork).
//!
//! Threads: everything here runs on the daemon's poll loop except the request-completed
//! callback, which runs on libcamera's own thread and only moves the completed request into
//! an inbox and rings a [`Doorbell`]; `drain_completed` (on the loop) reads the metadata and
//! hands the buffer on. Requests are created once per buffer and re-queued, never destroyed
//! while their camera runs (libcamera 0.4's vimc handler touches a request after completing it:
//! see vm/NOTES.md); [`RequestBook`] does the bookkeeping.
//!
//! Per camera: one `VideoRecording` stream at the configured size, YUV420 preferred, NV12 or
//! packed RGB (vimc) accepted; the dmabufs are mapped once ([`SharedMemory::map`]) and travel
//! to the encoder as [`FrameBuffer`]s. The frame rate goes in as `FrameDurationLimits` when the
//! camera starts (a new rate restarts it). Every request carries the eye's crop as `ScalerCrop`
//! when the camera has a `ScalerCropMaximum`; the crop and `SensorTimestamp` of each completed
//! request are what the frame reports. Cameras without `ScalerCropMaximum` (vimc, virtual)
//! ignore crops: their frames report the whole active area as the applied crop.
//!
//! Flips are asked of the camera as its configuration's orientation (the Pi's sensors flip
//! for free); a camera that cannot (vimc) gets them done on the completed frame in place
//! ([`flip_frame`]). The sensor mode is chosen by [`modes::choose`] and asked for with a sensor
//! configuration; what each completion means is [`Completions`]' call (startup frames, the
//! Pi's error state); `rpi::SyncMode` and `NoiseReductionMode` are found by name among the
//! camera's controls (their ids differ between libcamera builds).
//!
//! A camera that vanishes (unplugged, driver unbound) is noticed in [`Camera::tick`]: its
//! outstanding frames come back failed (the daemon's health machinery reports it once), and it
//! is reopened by id with backoff; buffers handed in meanwhile wait (parked) and go in first.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use libcamera::camera::{
    ActiveCamera, CameraConfiguration, CameraConfigurationStatus, Orientation, SensorConfiguration,
};
use libcamera::camera_manager::CameraManager;
use libcamera::control::{ControlEntry, ControlList};
use libcamera::control_value::ControlValue;
use libcamera::controls;
use libcamera::framebuffer::{AsFrameBuffer, FrameMetadataStatus};
use libcamera::framebuffer_allocator::{FrameBuffer as LcBuffer, FrameBufferAllocator};
use libcamera::geometry::{Rectangle, Size as LcSize};
use libcamera::pixel_format::{ColourEncoding, PixelFormat as LcFormat};
use libcamera::properties;
use libcamera::request::{Request as LcRequest, RequestStatus, ReuseFlag};
use libcamera::stream::{Stream, StreamRole};

use super::completion::{self, BufferStatus, Completions, RequestStatus as Status, Verdict};
use super::fixup::{flip_frame, swap_red_blue};
use super::listing::Described;
use super::modes::{self, SensorMode};
use super::pacing::Pacer;
use super::requests::{Queued, RequestBook, Returned, Submit};
use super::retry::{Outcome, Retry};
use super::select::Listed;
use super::sync::{Gate, ReadyGate, Role, SYNC_FRAMES};
use super::{
    Camera, CameraError, CameraInfo, Completed, Flip, FrameBuffer, FrameLayout, FrameMeta, FrameStatus, PixelFormat,
    Rect, Request, Size,
};
use crate::sys::clock::monotonic_us;
use crate::sys::dmabuf::{Access, SyncPolicy};
use crate::sys::notify::Doorbell;
use crate::sys::shm::SharedMemory;

/// Requests kept queued per camera: enough for a pipeline (the Pi's ISP, the sensor) to always
/// have a buffer to fill, few enough that a crop lands within ~4 frames of its command.
pub const REQUEST_DEPTH: usize = 4;
/// Buffers per camera: the queue plus what the encoder may hold (`eye::MAX_ENCODER_BACKLOG`).
const BUFFERS: u32 = REQUEST_DEPTH as u32 + 2;
/// Smallest crop asked of a camera that crops (the ISP's own floor is lower).
const MIN_CROP: Size = Size { w: 64, h: 64 };
/// How often a running camera is checked for being still there.
const PRESENCE_CHECK_US: u64 = 500_000;
/// Reopen attempts: first after this, doubling up to the cap.
const REOPEN_FIRST_US: u64 = 250_000;
const REOPEN_MAX_US: u64 = 4_000_000;
/// Requests of an ended session are freed this long after it ended (never while libcamera's
/// thread may still be finishing one).
const GRAVE_US: u64 = 2_000_000;

fn fourcc(code: &[u8; 4]) -> LcFormat {
    LcFormat::new(u32::from_le_bytes(*code), 0)
}

fn fourcc_name(f: LcFormat) -> String {
    f.fourcc().to_le_bytes().iter().map(|&b| b as char).collect()
}

/// libcamera formats pieyes takes, best first, and whether R and B must be swapped to make them
/// pieyes' `Bgr888` (B, G, R in memory). libcamera's `BGR888` ('BG24') is R, G, B in memory (it
/// is V4L2's RGB24); its `RGB888` ('RG24') is B, G, R. vimc offers both in libcamera 0.4, but
/// only 'BG24' streams (the other fails to start with EPIPE), so it comes first.
fn accepted_formats() -> [(LcFormat, PixelFormat, bool); 4] {
    [
        (fourcc(b"YU12"), PixelFormat::I420, false),
        (fourcc(b"NV12"), PixelFormat::Nv12, false),
        (fourcc(b"BG24"), PixelFormat::Bgr888, true),
        (fourcc(b"RG24"), PixelFormat::Bgr888, false),
    ]
}

fn to_rect(r: Rectangle) -> Rect {
    Rect::new(r.x.max(0) as u32, r.y.max(0) as u32, r.width, r.height)
}

fn rect_of(v: ControlValue) -> Option<Rect> {
    match v {
        ControlValue::Rectangle(r) => r.first().copied().map(to_rect),
        _ => None,
    }
}

fn i64_of(v: ControlValue) -> Option<i64> {
    match v {
        ControlValue::Int64(x) => x.first().copied(),
        ControlValue::Int32(x) => x.first().map(|&v| v as i64),
        _ => None,
    }
}

/// The camera's controls by name (`SyncMode`, `NoiseReductionMode`): vendor and draft controls
/// are looked up this way because their ids differ between libcamera builds (upstream, the
/// Pi's fork) and the crate only names those of the version it matched.
fn offered_controls(cam: &libcamera::camera::Camera<'_>) -> HashMap<String, u32> {
    let info = cam.controls();
    let Some(list) = ControlList::from_info_map(info) else { return HashMap::new() };
    let Some(iter) = list.id_map().and_then(|m| m.iter()) else { return HashMap::new() };
    iter.filter(|(id, _)| info.find(*id).is_ok()).map(|(id, c)| (c.name().to_string(), id)).collect()
}

/// The orientation that gives `flip` (libcamera's orientations are rotations then a mirror).
fn orientation_of(flip: Flip) -> Orientation {
    match flip {
        Flip::None => Orientation::Rotate0,
        Flip::H => Orientation::Rotate0Mirror,
        Flip::V => Orientation::Rotate180Mirror,
        Flip::HV => Orientation::Rotate180,
    }
}

/// The camera's sensor modes as rpicam-apps lists them: every size of every raw format of a
/// raw stream, each configured once to read its crop (`ScalerCrop`'s maximum) and fastest rate
/// (`FrameDurationLimits`' minimum). Empty for a camera without a raw Bayer stream.
pub fn sensor_modes(active: &mut ActiveCamera<'_>) -> Vec<SensorMode> {
    let Some(mut cfg) = active.generate_configuration(&[StreamRole::Raw]) else { return Vec::new() };
    let mut candidates: Vec<(LcFormat, LcSize, u32, String)> = Vec::new();
    if let Some(sc) = cfg.get(0) {
        let formats = sc.formats();
        let pixel_formats = formats.pixel_formats();
        for pf in &*pixel_formats {
            let Some(info) = pf.info() else { continue };
            if info.colour_encoding != ColourEncoding::Raw {
                continue;
            }
            for size in formats.sizes(pf) {
                let known = candidates
                    .iter()
                    .any(|c| (c.1.width, c.1.height, c.2) == (size.width, size.height, info.bits_per_pixel));
                if !known {
                    candidates.push((pf, size, info.bits_per_pixel, info.name.clone()));
                }
            }
        }
    }
    let mut modes = Vec::new();
    for (pf, size, bits, name) in candidates {
        let Some(mut sc) = cfg.get_mut(0) else { break };
        sc.set_pixel_format(pf);
        sc.set_size(size);
        let mut sensor = SensorConfiguration::new();
        sensor.set_bit_depth(bits);
        sensor.set_output_size(size.width, size.height);
        cfg.set_sensor_configuration(sensor);
        if cfg.validate().is_invalid() || active.configure(&mut cfg).is_err() {
            continue;
        }
        let controls = active.controls();
        let crop = controls.find(controls::ScalerCrop::ID).ok().and_then(|i| rect_of(i.max()));
        let min_us = controls.find(controls::FrameDurationLimits::ID).ok().and_then(|i| i64_of(i.min()));
        modes.push(SensorMode {
            format: name,
            bit_depth: bits,
            size: Size { w: size.width, h: size.height },
            crop: crop.unwrap_or_default(),
            max_fps: min_us.filter(|&us| us > 0).map_or(0.0, |us| 1e6 / us as f64),
        });
    }
    modes
}

/// Every camera for `--list-cameras`: acquired one at a time to read its sensor modes (a
/// camera another process holds is listed without them).
pub fn describe(lib: &Libcamera) -> Vec<Described> {
    let list = lib.mgr.cameras();
    let mut out = Vec::new();
    for cam in (0..list.len()).filter_map(|i| list.get(i)) {
        let props = cam.properties();
        let listed = Listed { id: cam.id().to_string(), model: props.get::<properties::Model>().ok().map(|m| m.0) };
        let active_area =
            props.get::<properties::PixelArrayActiveAreas>().ok().and_then(|a| a.0.first().copied()).map(to_rect);
        let (modes, note) = match cam.acquire() {
            Ok(mut active) => (sensor_modes(&mut active), None),
            Err(e) => (Vec::new(), Some(format!("sensor modes unknown: cannot acquire it ({e}); is pieyes running?"))),
        };
        out.push(Described { listed, active_area, modes, note });
    }
    out
}

/// Whether the camera can flip in its own pipeline: a scratch configuration asked for a half
/// turn keeps it.
fn flips_in_camera(active: &ActiveCamera<'_>) -> bool {
    let Some(mut cfg) = active.generate_configuration(&[StreamRole::VideoRecording]) else { return false };
    cfg.set_orientation(Orientation::Rotate180);
    !cfg.validate().is_invalid() && cfg.orientation() == Orientation::Rotate180
}

/// A validated configuration and the format it got (libcamera's, pieyes', swap R and B).
type StreamChoice = (CameraConfiguration, (LcFormat, PixelFormat, bool));

/// A `VideoRecording` configuration at `want` in the first format pieyes takes that validates,
/// with the sensor mode and orientation asked; `Ok(Err(offered))` when no format does.
fn configure_stream(
    active: &ActiveCamera<'_>,
    want: Size,
    mode: Option<&SensorMode>,
    orientation: Orientation,
) -> Result<Result<StreamChoice, Vec<String>>, String> {
    let mut cfgs = active
        .generate_configuration(&[StreamRole::VideoRecording])
        .ok_or("no configuration for the VideoRecording role")?;
    let mut offered = Vec::new();
    for (lc, _, _) in accepted_formats() {
        let mut sc = cfgs.get_mut(0).ok_or("empty configuration")?;
        if offered.is_empty() {
            offered = sc.formats().pixel_formats().into_iter().map(fourcc_name).collect::<Vec<_>>();
        }
        sc.set_pixel_format(lc);
        sc.set_size(LcSize { width: want.w, height: want.h });
        sc.set_buffer_count(BUFFERS);
        ask_mode(&mut cfgs, mode, orientation);
        if cfgs.validate().is_invalid() {
            continue;
        }
        let got = cfgs.get(0).ok_or("empty configuration")?.get_pixel_format();
        if let Some(&(_, fmt, swap)) = accepted_formats().iter().find(|(l, _, _)| *l == got) {
            return Ok(Ok((cfgs, (got, fmt, swap))));
        }
    }
    Ok(Err(offered))
}

/// Ask `cfg` for the sensor mode and orientation (set before each validation: a sensor
/// configuration is consumed by the call).
fn ask_mode(cfg: &mut CameraConfiguration, mode: Option<&SensorMode>, orientation: Orientation) {
    if let Some(m) = mode {
        let mut sensor = SensorConfiguration::new();
        sensor.set_bit_depth(m.bit_depth);
        sensor.set_output_size(m.size.w, m.size.h);
        cfg.set_sensor_configuration(sensor);
    }
    cfg.set_orientation(orientation);
}

/// Per-eye choices made before the cameras open (`--sensor-mode`, the sync role).
#[derive(Clone, Debug, Default)]
pub struct EyeOptions {
    pub sensor_mode: Option<Size>,
    pub sync: Option<Role>,
}

fn to_rectangle(r: Rect) -> Rectangle {
    Rectangle { x: r.x as i32, y: r.y as i32, width: r.w, height: r.h }
}

/// The process's one libcamera `CameraManager` (libcamera allows one per process). Every
/// opened camera holds an `Rc` of it, so it is stopped only after the last camera.
pub struct Libcamera {
    mgr: CameraManager,
}

impl Libcamera {
    pub fn start() -> Result<Rc<Libcamera>, String> {
        let mgr = CameraManager::new().map_err(|e| format!("cannot start libcamera's camera manager: {e}"))?;
        crate::info!("libcamera {} started", mgr.version());
        Ok(Rc::new(Libcamera { mgr }))
    }

    /// The cameras in libcamera's order, with their models (`select::eye_order` orders them).
    pub fn cameras(&self) -> Vec<Listed> {
        let list = self.mgr.cameras();
        (0..list.len())
            .filter_map(|i| list.get(i))
            .map(|c| Listed {
                id: c.id().to_string(),
                model: c.properties().get::<properties::Model>().ok().map(|m| m.0),
            })
            .collect()
    }

    /// Whether camera `id` offers a control named `name` (`SyncMode`).
    pub fn offers(&self, id: &str, name: &str) -> bool {
        let list = self.mgr.cameras();
        (0..list.len()).filter_map(|i| list.get(i)).any(|c| c.id() == id && offered_controls(&c).contains_key(name))
    }

    pub(crate) fn manager(&self) -> &CameraManager {
        &self.mgr
    }

    fn present(&self, id: &str) -> bool {
        let list = self.mgr.cameras();
        (0..list.len()).any(|i| list.get(i).is_some_and(|c| c.id() == id))
    }
}

/// Completed requests from libcamera's thread to the loop.
struct Inbox {
    done: Mutex<VecDeque<LcRequest>>,
    bell: Doorbell,
}

struct Session {
    active: ActiveCamera<'static>,
    stream: Stream,
    generation: u32,
    /// The camera's controls by name (see [`offered_controls`]).
    named: HashMap<String, u32>,
    /// The camera's device nodes (libcamera's `SystemDevices`), as /sys/dev/char entries.
    devices: Vec<String>,
}

impl Session {
    /// Whether the kernel still has every device node of the camera. libcamera 0.4 only
    /// notices unplugging for UVC cameras (other pipeline handlers keep a vanished camera
    /// listed), so pieyes looks for itself.
    fn devices_present(&self) -> bool {
        self.devices.iter().all(|d| std::path::Path::new(d).exists())
    }
}

fn cookie(generation: u32, index: usize) -> u64 {
    ((generation as u64) << 32) | index as u64
}

fn split_cookie(c: u64) -> (u32, usize) {
    ((c >> 32) as u32, (c & 0xffff_ffff) as usize)
}

/// What a session was configured to, kept to check a reopened camera against it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Configured {
    layout: FrameLayout,
}

pub struct LibcameraEye {
    eye: u8,
    info: CameraInfo,
    opts: EyeOptions,
    /// The flip asked for; done by the camera when `flips_in_camera`, else on the CPU.
    flip: Flip,
    flips_in_camera: Option<bool>,
    /// The camera's sensor modes, listed at the first open.
    modes: Option<Vec<SensorMode>>,
    completions: Completions,
    sync_gate: ReadyGate,
    /// `SyncReady`'s id on this camera, when it synchronises.
    sync_ready_id: Option<u32>,
    /// Set by a completion that found the camera in its error state: restart after this delay.
    error_state: Option<(u64, bool)>,
    /// The camera delivers R, G, B: swapped in place into pieyes' B, G, R.
    swap_rb: bool,
    inbox: Arc<Inbox>,
    book: RequestBook<LcRequest>,
    session: Option<Session>,
    configured: Option<Configured>,
    generation: u32,
    /// Completions made up here (a vanished camera's frames), for the next drain.
    made_up: Vec<Completed>,
    /// Requests of ended sessions and strays, with the time they may be freed.
    graveyard: Vec<(u64, LcRequest)>,
    last_presence_check_us: u64,
    /// Reopening a camera that went away.
    retry: Retry,
    /// A camera that fills requests faster than the frame rate gets them one period apart:
    /// requests the book released, waiting for their time.
    pacer: Pacer,
    held: VecDeque<(u64, Submit<LcRequest>)>,
    last_sensor_seq: Option<u32>,
    starved: u64,
    warned_no_timestamp: bool,
    warned_no_crop: bool,
    /// In-place fix-ups (flip, colour swap) write a dma-buf from the CPU: SYNC brackets them.
    fixup_sync: SyncPolicy,
    /// Said once: fix-ups are bracketed / a bracket failed.
    fixup_sync_said: (bool, bool),
    /// Dropped last: the camera manager outlives every libcamera object above.
    lib: Rc<Libcamera>,
}

impl LibcameraEye {
    /// The flip left to the CPU (none when the camera flips).
    fn cpu_flip(&self) -> Flip {
        if self.flips_in_camera == Some(true) { Flip::None } else { self.flip }
    }

    /// Flip and colour-swap a completed frame in place, between DMA_BUF_IOCTL_SYNC START and
    /// END (read/write), so the CPU sees what the camera wrote and the encoder what we wrote.
    fn fix_up(&mut self, buffer: &mut FrameBuffer) {
        let layout = buffer.layout;
        let (fd, pixels) = buffer.fd_and_pixels_mut();
        let access = match self.fixup_sync.begin(fd, Access::ReadWrite) {
            Ok(a) => a,
            Err(e) => {
                if !self.fixup_sync_said.1 {
                    self.fixup_sync_said.1 = true;
                    crate::warn!("eye {}: DMA_BUF_IOCTL_SYNC before an in-place flip: {e}; writing anyway", self.eye);
                }
                None
            }
        };
        if access.is_some() && !self.fixup_sync_said.0 {
            self.fixup_sync_said.0 = true;
            crate::info!("eye {}: frames are fixed up in place (flip, colour order) between dma-buf syncs", self.eye);
        }
        if self.swap_rb {
            swap_red_blue(&layout, pixels);
        }
        let flip = self.cpu_flip();
        if flip != Flip::None {
            flip_frame(&layout, pixels, flip);
        }
        drop(access);
    }

    /// Acquire, configure and start camera `id` as eye `eye`.
    pub fn open(
        lib: Rc<Libcamera>,
        eye: u8,
        id: &str,
        size: Size,
        fps: u32,
        opts: EyeOptions,
    ) -> Result<LibcameraEye, String> {
        let inbox = Arc::new(Inbox {
            done: Mutex::new(VecDeque::new()),
            bell: Doorbell::new().map_err(|e| format!("eventfd: {e}"))?,
        });
        let now = monotonic_us();
        let mut cam = LibcameraEye {
            eye,
            info: CameraInfo {
                id: id.to_string(),
                sensor: Rect::new(0, 0, size.w, size.h),
                output: size,
                min_crop: MIN_CROP,
                fps,
                crop_supported: false,
                sensor_mode: None,
            },
            sync_gate: ReadyGate::new(opts.sync.is_some()),
            opts,
            flip: Flip::None,
            flips_in_camera: None,
            modes: None,
            completions: Completions::new(REQUEST_DEPTH as u32, REOPEN_FIRST_US, REOPEN_MAX_US),
            sync_ready_id: None,
            error_state: None,
            swap_rb: false,
            inbox,
            book: RequestBook::new(),
            session: None,
            configured: None,
            generation: 0,
            made_up: Vec::new(),
            graveyard: Vec::new(),
            last_presence_check_us: now,
            retry: Retry::new(REOPEN_FIRST_US, REOPEN_MAX_US),
            pacer: Pacer::new(fps),
            held: VecDeque::new(),
            last_sensor_seq: None,
            starved: 0,
            warned_no_timestamp: false,
            warned_no_crop: false,
            fixup_sync: SyncPolicy::default(),
            fixup_sync_said: (false, false),
            lib,
        };
        cam.open_session()?;
        Ok(cam)
    }

    /// Acquire the camera by id, configure it, allocate and map its buffers, start it and
    /// queue whatever the daemon handed in meanwhile.
    fn open_session(&mut self) -> Result<(), String> {
        let list = self.lib.mgr.cameras();
        let cam = (0..list.len())
            .filter_map(|i| list.get(i))
            .find(|c| c.id() == self.info.id)
            .ok_or_else(|| "libcamera does not list it".to_string())?;
        // A camera libcamera still lists after its devices went (it does, but for UVC) cannot
        // come back as the same camera: wait for the devices.
        let devices: Vec<String> = cam
            .properties()
            .get::<properties::SystemDevices>()
            .map(|d| d.0)
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let d = d as libc::dev_t;
                format!("/sys/dev/char/{}:{}", libc::major(d), libc::minor(d))
            })
            .collect();
        if let Some(gone) = devices.iter().find(|d| !std::path::Path::new(d).exists()) {
            return Err(format!("its device {gone} is gone"));
        }
        let active = cam.acquire().map_err(|e| format!("cannot acquire it: {e}"))?;
        // SAFETY: `ActiveCamera<'d>` borrows the `Camera` it came from only nominally: it holds
        // its own reference to the libcamera camera (the crate's `acquire` copies the
        // shared_ptr), so it stays valid when `cam` and `list` go. `'d` also bounds the
        // completion callback, and ours is `'static`. What it does need is the camera manager,
        // which `self.lib` keeps alive until after every session is gone (`close_session` in
        // `Drop`, and `lib` is the last field).
        let mut active = unsafe { std::mem::transmute::<ActiveCamera<'_>, ActiveCamera<'static>>(active) };
        let named = offered_controls(&cam);
        drop(cam);
        drop(list);

        if self.modes.is_none() {
            self.modes = Some(sensor_modes(&mut active));
        }
        if self.flips_in_camera.is_none() {
            // Only a camera with a real sensor behind it (one with raw modes) is trusted to flip:
            // libcamera 0.4's virtual pipeline keeps any orientation it is asked for and ignores it.
            let has_sensor = self.modes.as_ref().is_some_and(|m| !m.is_empty());
            self.flips_in_camera = Some(has_sensor && flips_in_camera(&active));
        }
        let want = self.configured.map_or(self.info.output, |c| Size { w: c.layout.width, h: c.layout.height });
        let modes = self.modes.as_deref().unwrap_or_default();
        let mut mode =
            modes::choose(modes, want, self.info.fps, self.opts.sensor_mode)?.map(|(i, why)| (modes[i].clone(), why));
        let orientation = orientation_of(if self.flips_in_camera == Some(true) { self.flip } else { Flip::None });

        let (mut cfgs, (lc_format, format, swap_rb)) =
            match configure_stream(&active, want, mode.as_ref().map(|m| &m.0), orientation)? {
                Ok(x) => x,
                Err(_) if mode.is_some() => {
                    crate::warn!(
                        "eye {}: camera {:?}: no stream with the sensor mode asked: letting libcamera choose the mode",
                        self.eye,
                        self.info.id
                    );
                    mode = None;
                    configure_stream(&active, want, None, orientation)?.map_err(|offered| {
                        format!("offers none of YUV420, NV12, BGR888, RGB888 (it offers {offered:?})")
                    })?
                }
                Err(offered) => {
                    return Err(format!("offers none of YUV420, NV12, BGR888, RGB888 (it offers {offered:?})"));
                }
            };
        let (size, stride, buffers) = {
            let sc = cfgs.get(0).ok_or("empty configuration")?;
            let s = sc.get_size();
            (Size { w: s.width, h: s.height }, sc.get_stride() as usize, sc.get_buffer_count())
        };
        if size.w % 2 != 0 || size.h % 2 != 0 || stride == 0 {
            return Err(format!("unusable configuration {size} stride {stride}"));
        }
        if matches!(cfgs.validate(), CameraConfigurationStatus::Invalid) {
            return Err("the configuration became invalid".into());
        }
        if cfgs.orientation() != orientation {
            // The camera adjusted the flip it was asked for: the CPU flips instead, from an
            // unflipped picture.
            self.flips_in_camera = Some(false);
            cfgs.set_orientation(Orientation::Rotate0);
            if cfgs.validate().is_invalid() || cfgs.orientation() != Orientation::Rotate0 {
                return Err("the camera cannot keep its picture unflipped".into());
            }
        }
        active.configure(&mut cfgs).map_err(|e| format!("configure: {e}"))?;
        // The crop limits are only known now: the Pi reports ScalerCropMaximum as 0x0 before.
        let props = active.properties();
        let (sensor, supported) = modes::crop_area(
            props.get::<properties::ScalerCropMaximum>().ok().map(|m| to_rect(m.0)),
            active.controls().find(controls::ScalerCrop::ID).ok().and_then(|i| rect_of(i.max())),
            props.get::<properties::PixelArrayActiveAreas>().ok().and_then(|a| a.0.first().copied()).map(to_rect),
            want,
        );
        let stream = cfgs.get(0).and_then(|sc| sc.stream()).ok_or("configured stream missing")?;

        let mut layout = FrameLayout { format, width: size.w, height: size.h, offsets: [0; 3], strides: [0; 3] };
        let y_len = stride * size.h as usize;
        match format {
            PixelFormat::I420 => {
                let cs = stride / 2;
                layout.strides = [stride, cs, cs];
                layout.offsets = [0, y_len, y_len + cs * size.h.div_ceil(2) as usize];
            }
            PixelFormat::Nv12 => {
                layout.strides = [stride, stride, 0];
                layout.offsets = [0, y_len, 0];
            }
            PixelFormat::Bgr888 => layout.strides = [stride, 0, 0],
        }

        let mut alloc = FrameBufferAllocator::new(&active);
        let lc_buffers = alloc.alloc(&stream).map_err(|e| format!("cannot allocate buffers: {e}"))?;
        let generation = self.generation.wrapping_add(1);
        let mut ours = Vec::new();
        let mut requests = Vec::new();
        for (i, b) in lc_buffers.into_iter().enumerate() {
            let fb = map_buffer(i, &b, &mut layout)?;
            let mut r = active.create_request(Some(cookie(generation, i))).ok_or("cannot create a request")?;
            r.add_buffer(&stream, b).map_err(|e| format!("cannot add a buffer to a request: {e}"))?;
            ours.push(fb);
            requests.push(r);
        }
        if let Some(c) = self.configured {
            if c.layout != layout {
                return Err(format!("came back with a different layout ({layout:?}, was {:?})", c.layout));
            }
        }
        let inbox = self.inbox.clone();
        active.on_request_completed(move |req| {
            // libcamera's thread: hand over and wake the loop, nothing else.
            inbox.done.lock().unwrap_or_else(|p| p.into_inner()).push_back(req);
            inbox.bell.ring();
        });
        let start = self.start_controls(&named);
        active.start(Some(&start)).map_err(|e| format!("cannot start it: {e}"))?;
        self.completions.started();
        self.sync_gate.restart();
        self.sync_ready_id = self.opts.sync.and_then(|_| named.get("SyncReady").copied());

        let (submits, extra) = match self.book.start_session(ours, requests) {
            Ok(x) => x,
            Err((why, requests)) => {
                let _ = active.stop();
                drop(requests);
                return Err(why);
            }
        };
        let now = monotonic_us();
        self.graveyard.extend(extra.into_iter().map(|r| (now + GRAVE_US, r)));
        self.generation = generation;
        let first = self.configured.is_none();
        self.configured = Some(Configured { layout });
        self.swap_rb = swap_rb;
        self.info.sensor = sensor;
        self.info.sensor_mode = mode.as_ref().map(|(m, _)| m.to_string());
        self.info.output = size;
        self.info.crop_supported = supported;
        self.info.min_crop = MIN_CROP;
        self.session = Some(Session { active, stream, generation, named, devices });
        self.pacer.reset(self.info.fps);
        self.last_sensor_seq = None;
        if first {
            if let Some((m, why)) = &mode {
                crate::info!(
                    "eye {}: camera {:?}: sensor mode {m} ({})",
                    self.eye,
                    self.info.id,
                    match why {
                        modes::Why::Asked => "--sensor-mode",
                        modes::Why::WidestAtFps => "the widest field of view at this frame rate",
                        modes::Why::Fastest => "no mode reaches the frame rate: the fastest",
                    }
                );
            }
            crate::info!(
                "eye {}: camera {:?}: {} {size} stride {stride}, {buffers} buffers, {} fps, flips {}, {}",
                self.eye,
                self.info.id,
                fourcc_name(lc_format),
                self.info.fps,
                if self.flips_in_camera == Some(true) { "in the camera" } else { "on the CPU" },
                if supported {
                    format!("crops within {sensor} (ScalerCropMaximum)")
                } else {
                    format!("no ScalerCropMaximum: crops are not supported, frames show all of {sensor}")
                }
            );
        }
        for s in submits {
            self.submit(s);
        }
        Ok(())
    }

    /// The controls a start carries: the frame rate, Fast noise reduction (the IPA's default is
    /// its high-quality still mode), and the sync role.
    fn start_controls(&self, named: &HashMap<String, u32>) -> libcamera::utils::UniquePtr<ControlList> {
        let mut start = ControlList::new();
        let frame_us = 1_000_000 / self.info.fps.max(1) as i64;
        let _ = start.set(controls::FrameDurationLimits([frame_us, frame_us]));
        if let Some(&id) = named.get("NoiseReductionMode") {
            let _ = start.set_raw(id, ControlValue::Int32([1].into_iter().collect())); // Fast
        }
        if let (Some(role), Some(&id)) = (self.opts.sync, named.get("SyncMode")) {
            let _ = start.set_raw(id, ControlValue::Int32([role as i32].into_iter().collect()));
            if let (Role::Server, Some(&frames)) = (role, named.get("SyncFrames")) {
                let _ = start.set_raw(frames, ControlValue::Int32([SYNC_FRAMES].into_iter().collect()));
            }
        }
        start
    }

    /// Queue a request the book released. A refusal means the camera is in trouble: the
    /// ticket goes back as a failed frame and the camera is reopened.
    fn submit(&mut self, s: Submit<LcRequest>) {
        let Some(session) = &self.session else { unreachable!("the book only submits while a session runs") };
        let (index, crop) = (s.index, s.controls.crop);
        let mut req = s.request;
        req.reuse(ReuseFlag::REUSE_BUFFERS);
        if self.info.crop_supported {
            let _ = req.controls_mut().set(controls::ScalerCrop(to_rectangle(crop)));
        }
        if let Err((req, e)) = session.active.queue_request(req) {
            // The request comes back with the refusal; it is freed after the session.
            self.graveyard.push((monotonic_us() + GRAVE_US, req));
            crate::error!("eye {}: camera {:?} refused a request: {e}", self.eye, self.info.id);
            let r = self.book.submit_lost(index);
            self.made_up.push(self.failed(r, &format!("request refused: {e}")));
            self.inbox.bell.ring();
            self.close_session();
            self.retry.start(monotonic_us());
        }
    }

    /// A request handed in by the daemon: to the camera now, or at its slot when pacing.
    fn submit_or_hold(&mut self, s: Submit<LcRequest>, now: u64) {
        if self.pacer.pacing() {
            let due = self.pacer.slot(now);
            if due > now || !self.held.is_empty() {
                self.held.push_back((due, s));
                return;
            }
        }
        self.submit(s);
    }

    /// Queue the held requests whose time has come.
    fn release_held(&mut self, now: u64) {
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, s) = self.held.pop_front().expect("just looked");
            self.submit(s);
        }
    }

    /// Before stopping: held requests never reached libcamera; they go back to the book as
    /// if cancelled (parked, with their promise).
    fn unhold(&mut self) {
        while let Some((_, s)) = self.held.pop_front() {
            if let Err(r) = self.book.cancelled(s.index, s.request) {
                self.graveyard.push((monotonic_us() + GRAVE_US, r));
            }
        }
    }

    fn failed(&self, r: Returned, why: &str) -> Completed {
        self.returned(r, FrameStatus::Failed(why.to_string()))
    }

    /// A ticket back to the daemon without a picture.
    fn returned(&self, r: Returned, status: FrameStatus) -> Completed {
        let meta =
            FrameMeta { eye: self.eye, sequence: r.sequence, capture_us: monotonic_us(), crop: self.applied_default() };
        Completed { buffer: r.buffer, meta, status }
    }

    /// A completion found the camera in its error state: stop it (its requests park) and start
    /// it again after the backoff [`Completions`] chose. Said once per run of restarts.
    fn restart_after_error(&mut self, delay_us: u64, first: bool) {
        if first {
            crate::warn!(
                "eye {}: camera {:?}: {}; next start in {:.1} s, backing off to {} s while it persists",
                self.eye,
                self.info.id,
                completion::ERROR_STATE,
                delay_us as f64 / 1e6,
                REOPEN_MAX_US / 1_000_000
            );
        } else {
            crate::debug!(
                "eye {}: camera {:?}: error state again: next start in {delay_us} us",
                self.eye,
                self.info.id
            );
        }
        self.close_session();
        self.retry.start_in(monotonic_us(), delay_us);
    }

    /// The crop a frame reports when the camera does not say: all of the area it shows.
    fn applied_default(&self) -> Rect {
        self.info.sensor
    }

    /// Stop the session, collect what comes back, and end it. A camera whose devices are gone
    /// is abandoned instead (see [`LibcameraEye::abandon_session`]).
    fn close_session(&mut self) {
        self.unhold();
        let Some(s) = self.session.as_mut() else { return };
        if !s.devices_present() {
            self.abandon_session();
            return;
        }
        let stopped = s.active.stop();
        let mut out = Vec::new();
        self.collect(&mut out, true);
        self.made_up.append(&mut out);
        if self.book.in_camera() > 0 {
            crate::warn!(
                "eye {}: camera {:?}: requests still inside after stop ({}): abandoning the session",
                self.eye,
                self.info.id,
                match &stopped {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.to_string(),
                }
            );
            self.abandon_session();
            return;
        }
        let s = self.session.take().expect("still there");
        let now = monotonic_us();
        for r in self.book.end_session() {
            self.graveyard.push((now + GRAVE_US, r));
        }
        drop(s);
    }

    /// End a session without stopping the camera: its devices vanished, and libcamera 0.4's
    /// `stop()` aborts the process when the device is gone before libcamera noticed (it asserts
    /// that every queued request came back, and none can). The requests still inside and the
    /// camera handle are leaked on purpose: libcamera may still point at them.
    fn abandon_session(&mut self) {
        self.unhold();
        let Some(s) = self.session.take() else { return };
        let mut out = Vec::new();
        // Whatever completed before the loss is still a frame; the rest stays inside.
        let generation = s.generation;
        let stream = s.stream;
        let done: Vec<LcRequest> = self.inbox.done.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        let now = monotonic_us();
        for req in done {
            let (g, index) = split_cookie(req.cookie());
            if g == generation {
                self.settle(req, stream, index, false, now, &mut out);
            } else {
                self.graveyard.push((now + GRAVE_US, req));
            }
        }
        self.made_up.append(&mut out);
        let lost_before = self.book.lost;
        for r in self.book.end_session() {
            self.graveyard.push((now + GRAVE_US, r));
        }
        crate::warn!(
            "eye {}: camera {:?}: abandoned without stopping it ({} request(s) left inside libcamera)",
            self.eye,
            self.info.id,
            self.book.lost - lost_before
        );
        std::mem::forget(s);
    }

    /// The camera vanished: frames it owes come back failed, the session ends, reopening
    /// starts.
    fn lose(&mut self, why: &str, now: u64) {
        self.close_session();
        for r in self.book.return_parked() {
            let c = self.failed(r, why);
            self.made_up.push(c);
        }
        self.inbox.bell.ring();
        self.retry.start(now);
    }

    fn try_reopen(&mut self, now: u64) {
        match self.open_session() {
            Ok(()) => {
                let after = self.retry.succeeded(now);
                crate::info!("eye {}: camera {:?} reopened after {:.1} s", self.eye, self.info.id, after as f64 / 1e6);
            }
            Err(e) => match self.retry.failed(&e, now) {
                Outcome::Report { attempts, retry_in_us } => crate::warn!(
                    "eye {}: camera {:?}: reopening failed (attempt {attempts}): {e}; next in {:.1} s, then at most every {} s",
                    self.eye,
                    self.info.id,
                    retry_in_us as f64 / 1e6,
                    REOPEN_MAX_US / 1_000_000
                ),
                Outcome::Quiet { attempts, .. } => {
                    crate::debug!(
                        "eye {}: camera {:?}: reopening failed (attempt {attempts}): {e}",
                        self.eye,
                        self.info.id
                    )
                }
            },
        }
    }

    /// Move completed requests from the inbox into `out` (frames) or, when `stopping` (a stop
    /// on purpose), cancelled ones back into the book as parked.
    fn collect(&mut self, out: &mut Vec<Completed>, stopping: bool) {
        let done: Vec<LcRequest> = self.inbox.done.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        let now = monotonic_us();
        for req in done {
            let (generation, index) = split_cookie(req.cookie());
            match &self.session {
                Some(s) if s.generation == generation => {
                    let stream = s.stream;
                    self.settle(req, stream, index, stopping, now, out);
                }
                // A stray of an ended session.
                _ => self.graveyard.push((now + GRAVE_US, req)),
            }
        }
    }

    fn settle(
        &mut self,
        req: LcRequest,
        stream: Stream,
        index: usize,
        stopping: bool,
        now: u64,
        out: &mut Vec<Completed>,
    ) {
        let status = match req.status() {
            RequestStatus::Complete => Status::Complete,
            RequestStatus::Cancelled => Status::Cancelled,
            RequestStatus::Pending => Status::Pending,
        };
        let (buffer_status, sensor_seq) = match req.buffer::<LcBuffer>(&stream).and_then(|b| b.metadata()) {
            Some(m) => (
                match m.status() {
                    FrameMetadataStatus::Success => BufferStatus::Success,
                    FrameMetadataStatus::Error => BufferStatus::Error,
                    FrameMetadataStatus::Cancelled => BufferStatus::Cancelled,
                    FrameMetadataStatus::Startup => BufferStatus::Startup,
                },
                Some(m.sequence()),
            ),
            None => (BufferStatus::Unknown, None), // the virtual pipeline never fills it in (0.4.0)
        };
        let verdict = self.completions.completed(status, buffer_status, stopping, now);
        if verdict == Verdict::Parked {
            if let Err(req) = self.book.cancelled(index, req) {
                self.graveyard.push((now + GRAVE_US, req));
            }
            return;
        }
        let md = req.metadata();
        let timestamp_ns = md.get::<controls::SensorTimestamp>().ok().map(|t| t.0);
        let crop = md.get::<controls::ScalerCrop>().ok().map(|c| to_rect(c.0));
        let sync_ready = self.sync_ready_id.and_then(|id| {
            md.into_iter().find(|(i, _)| *i == id).and_then(|(_, v)| match v {
                ControlValue::Bool(b) => b.first().copied(),
                _ => None,
            })
        });
        let r = match self.book.complete(index, req) {
            Ok(r) => r,
            Err(req) => {
                crate::warn!("eye {}: camera {:?}: unexpected completion of request {index}", self.eye, self.info.id);
                self.graveyard.push((now + GRAVE_US, req));
                return;
            }
        };
        if let Some(s) = sensor_seq {
            if let Some(prev) = self.last_sensor_seq {
                self.starved += s.wrapping_sub(prev).saturating_sub(1).min(1000) as u64;
            }
            self.last_sensor_seq = Some(s);
        }
        match verdict {
            Verdict::Frame => {}
            Verdict::Startup => return out.push(self.returned(r, FrameStatus::Skipped)),
            Verdict::Failed(why) => return out.push(self.failed(r, why)),
            Verdict::ErrorState { restart_in_us, first } => {
                self.error_state = Some((restart_in_us, first));
                // The cancellations that led here (the Pi cancels them all at once, so they are in
                // this drain) are the error state too: health reports that, once.
                for c in out.iter_mut() {
                    if c.status == FrameStatus::Failed(completion::CANCELLED.to_string()) {
                        c.status = FrameStatus::Failed(completion::ERROR_STATE.to_string());
                    }
                }
                return out.push(self.failed(r, completion::ERROR_STATE));
            }
            Verdict::Parked => unreachable!("handled above"),
        }
        match self.sync_gate.frame(sync_ready) {
            Gate::Pass => {}
            Gate::Hold => return out.push(self.returned(r, FrameStatus::Skipped)),
            Gate::GaveUp => crate::warn!(
                "eye {}: camera {:?}: no rpi::SyncReady after {} frames: streaming unsynchronised",
                self.eye,
                self.info.id,
                super::sync::READY_PATIENCE
            ),
        }
        if let Some(rec) = self.completions.pictured(now) {
            crate::info!(
                "eye {}: camera {:?} makes pictures again after {} restart(s), {:.1} s",
                self.eye,
                self.info.id,
                rec.restarts,
                rec.after_us as f64 / 1e6
            );
        }
        let mut r = r;
        let capture_us = match timestamp_ns {
            Some(ns) if ns > 0 => ns as u64 / 1000,
            _ => {
                if !self.warned_no_timestamp {
                    self.warned_no_timestamp = true;
                    crate::warn!(
                        "eye {}: camera {:?} gives no SensorTimestamp: using completion times",
                        self.eye,
                        self.info.id
                    );
                }
                now
            }
        };
        let applied = match (self.info.crop_supported, crop) {
            (_, Some(c)) => c,
            (false, None) => self.applied_default(),
            (true, None) => {
                if !self.warned_no_crop {
                    self.warned_no_crop = true;
                    crate::warn!(
                        "eye {}: camera {:?} does not report the ScalerCrop it applied: reporting the whole area",
                        self.eye,
                        self.info.id
                    );
                }
                self.applied_default()
            }
        };
        if self.swap_rb || self.cpu_flip() != Flip::None {
            self.fix_up(&mut r.buffer);
        }
        if self.pacer.observed(capture_us) {
            crate::warn!(
                "eye {}: camera {:?} fills requests every {:.1} ms, ignoring the {} fps asked for: pacing its requests",
                self.eye,
                self.info.id,
                self.pacer.mean_interval_us() as f64 / 1000.0,
                self.info.fps
            );
        }
        let meta = FrameMeta { eye: self.eye, sequence: r.sequence, capture_us, crop: applied };
        r.controls.crop = applied;
        out.push(Completed { buffer: r.buffer, meta, status: FrameStatus::Ok });
    }

    /// Restart the running camera (a new frame rate): stop, collect, start with the new
    /// controls, queue again what was inside. Falls back to a full reopen when a request does
    /// not come back.
    fn restart(&mut self) -> Result<(), String> {
        self.unhold();
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        s.active.stop().map_err(|e| format!("cannot stop it: {e}"))?;
        let mut out = Vec::new();
        self.collect(&mut out, true);
        self.made_up.append(&mut out);
        let now = monotonic_us();
        if !self.book.suspend() {
            self.close_session();
            self.retry.start(now);
            return Ok(());
        }
        let start = self.start_controls(&self.session.as_ref().expect("still there").named);
        let s = self.session.as_mut().expect("still there");
        s.active.start(Some(&start)).map_err(|e| format!("cannot start it again: {e}"))?;
        self.completions.started();
        self.sync_gate.restart();
        self.pacer.reset(self.info.fps);
        for sub in self.book.resume() {
            self.submit(sub);
        }
        if !self.made_up.is_empty() {
            self.inbox.bell.ring();
        }
        Ok(())
    }

    fn bury(&mut self, now: u64) {
        self.graveyard.retain(|(after, _)| *after > now);
    }
}

/// Map one libcamera buffer: every plane must live in the same dmabuf (what libcamera's
/// allocators give for these formats); `layout`'s offsets are corrected from the planes'.
fn map_buffer(index: usize, b: &LcBuffer, layout: &mut FrameLayout) -> Result<FrameBuffer, String> {
    let mut fd = None;
    let mut end = 0usize;
    let mut offsets = layout.offsets;
    for (i, p) in b.planes().into_iter().enumerate() {
        if p.is_empty() {
            continue; // libcamera 0.4's virtual camera lists a bogus empty third plane for NV12
        }
        let off = p.offset().unwrap_or(0);
        if i < 3 {
            offsets[i] = off;
        }
        end = end.max(off + p.len());
        match fd {
            None => fd = Some(p.fd()),
            Some(f) if f == p.fd() || same_file(f, p.fd()) => {}
            Some(_) => return Err("planes in separate dmabufs are not supported".into()),
        }
    }
    let fd = fd.ok_or("a buffer without planes")?;
    layout.offsets = offsets;
    if layout.len() > end {
        return Err(format!("buffer {index} holds {end} bytes, its layout needs {}", layout.len()));
    }
    // SAFETY: `fd` is the plane's dmabuf fd, owned by the libcamera FrameBuffer `b`, which is
    // alive for this call; we only duplicate it.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().map_err(|e| format!("dup: {e}"))?;
    let memory = SharedMemory::map(owned, end).map_err(|e| format!("cannot map buffer {index}: {e}"))?;
    Ok(FrameBuffer { index, memory, layout: *layout })
}

fn same_file(a: i32, b: i32) -> bool {
    // SAFETY: both are plane fds of a live libcamera FrameBuffer (see map_buffer).
    let (a, b) = unsafe { (BorrowedFd::borrow_raw(a), BorrowedFd::borrow_raw(b)) };
    match (nix::sys::stat::fstat(a), nix::sys::stat::fstat(b)) {
        (Ok(x), Ok(y)) => (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino),
        _ => false,
    }
}

impl Camera for LibcameraEye {
    fn info(&self) -> &CameraInfo {
        &self.info
    }

    fn completion_fd(&self) -> BorrowedFd<'_> {
        self.inbox.bell.as_fd()
    }

    fn take_buffers(&mut self) -> Vec<FrameBuffer> {
        self.book.take_buffers()
    }

    fn queue_request(&mut self, request: Request) -> Result<u32, Box<(Request, CameraError)>> {
        let controls = request.controls;
        match self.book.queue(request.buffer, controls) {
            Err((buffer, why)) => Err(Box::new((Request { buffer, controls }, CameraError::Other(why)))),
            Ok(Queued::Parked { sequence }) => Ok(sequence),
            Ok(Queued::Submit(s)) => {
                let sequence = s.sequence;
                self.submit_or_hold(s, monotonic_us());
                Ok(sequence)
            }
        }
    }

    fn next_sequence(&self) -> u32 {
        self.book.next_sequence()
    }

    fn queued(&self) -> usize {
        self.book.queued()
    }

    fn drain_completed(&mut self, out: &mut Vec<Completed>) {
        self.inbox.bell.drain();
        out.append(&mut self.made_up);
        self.collect(out, false);
        if let Some((delay_us, first)) = self.error_state.take() {
            self.restart_after_error(delay_us, first);
            out.append(&mut self.made_up);
        }
    }

    fn starved_frames(&self) -> u64 {
        self.starved
    }

    fn set_flip(&mut self, flip: Flip) -> Result<(), CameraError> {
        if flip == self.flip {
            return Ok(());
        }
        self.flip = flip;
        if self.flips_in_camera != Some(true) || self.session.is_none() {
            return Ok(()); // on the CPU, or asked of the camera when it opens again
        }
        // The camera flips: a new orientation is a new configuration.
        self.close_session();
        self.open_session().map_err(|e| {
            crate::error!("eye {}: camera {:?}: reconfiguring for flip {}: {e}", self.eye, self.info.id, flip.name());
            self.retry.start(monotonic_us());
            CameraError::Other(e)
        })
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), CameraError> {
        if fps == 0 || fps > 1000 {
            return Err(CameraError::Other(format!("{fps} fps is not possible")));
        }
        if fps == self.info.fps {
            return Ok(());
        }
        self.info.fps = fps;
        self.restart().map_err(|e| {
            crate::error!("eye {}: camera {:?}: restart for {fps} fps failed: {e}", self.eye, self.info.id);
            let now = monotonic_us();
            self.lose(&format!("restart failed: {e}"), now);
            CameraError::Other(e)
        })?;
        crate::info!("eye {}: camera {:?} restarted at {fps} fps", self.eye, self.info.id);
        Ok(())
    }

    fn tick(&mut self, now: u64) {
        self.bury(now);
        self.release_held(now);
        if let Some(session) = &self.session {
            if now.saturating_sub(self.last_presence_check_us) >= PRESENCE_CHECK_US {
                self.last_presence_check_us = now;
                let why = if !session.devices_present() {
                    Some("its device nodes are gone")
                } else if !self.lib.present(&self.info.id) {
                    Some("libcamera no longer lists it")
                } else {
                    None
                };
                if let Some(why) = why {
                    crate::error!(
                        "eye {}: camera {:?} disconnected ({why}); reopening it when it is back",
                        self.eye,
                        self.info.id
                    );
                    self.lose("camera disconnected", now);
                }
            }
            // A camera that merely stops delivering is left alone: the daemon reports the stall.
            return;
        }
        if self.retry.due(now) {
            self.try_reopen(now);
        }
    }
}

impl Drop for LibcameraEye {
    fn drop(&mut self) {
        self.close_session();
        // The book's own requests went to the graveyard; they die here, after their session.
        self.graveyard.clear();
    }
}
