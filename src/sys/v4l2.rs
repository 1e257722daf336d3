//! V4L2 for a memory-to-memory encoder: the few structs of `<linux/videodev2.h>` pieyes needs,
//! `#[repr(C)]` with their sizes checked at compile time, and a [`Device`] whose methods are one
//! ioctl each (QUERYCAP, ENUM_FMT, G/S_FMT, REQBUFS, QUERYBUF, QBUF/DQBUF, STREAMON/OFF,
//! S_EXT_CTRLS/G_CTRL, S_PARM, S_SELECTION, ENCODER_CMD, SUBSCRIBE_EVENT/DQEVENT) plus mmap of a
//! buffer.
//! Single-planar and multi-planar queues both work (vicodec is single-planar by default, the
//! Pi 4's bcm2835-codec multi-planar); only one-plane formats are used (YU12, NV12, H264, FWHT).
//! Nothing here decides anything: the choices live in `encoder::v4l2`.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

/// A four-character code as V4L2 spells pixel formats (`v4l2_fourcc`).
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

/// "YU12" and so on, for logs.
pub fn fourcc_name(code: u32) -> String {
    code.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

pub const PIX_FMT_YUV420: u32 = fourcc(b"YU12");
pub const PIX_FMT_NV12: u32 = fourcc(b"NV12");
pub const PIX_FMT_BGR24: u32 = fourcc(b"BGR3");
pub const PIX_FMT_H264: u32 = fourcc(b"H264");
pub const PIX_FMT_FWHT: u32 = fourcc(b"FWHT");

pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

pub const BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;
pub const BUF_FLAG_PFRAME: u32 = 0x0000_0010;
pub const BUF_FLAG_BFRAME: u32 = 0x0000_0020;
pub const BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const BUF_FLAG_LAST: u32 = 0x0010_0000;

/// `capabilities` of VIDIOC_REQBUFS.
pub const BUF_CAP_SUPPORTS_MMAP: u32 = 1 << 0;
pub const BUF_CAP_SUPPORTS_DMABUF: u32 = 1 << 2;

pub const ENC_CMD_START: u32 = 0;
pub const ENC_CMD_STOP: u32 = 1;

pub const EVENT_EOS: u32 = 2;
pub const EVENT_SOURCE_CHANGE: u32 = 5;

/// Control ids (`<linux/v4l2-controls.h>`).
pub mod cid {
    const USER_BASE: u32 = 0x0098_0900;
    const CODEC_BASE: u32 = 0x0099_0900;
    pub const MIN_BUFFERS_FOR_OUTPUT: u32 = USER_BASE + 40;
    pub const GOP_SIZE: u32 = CODEC_BASE + 203;
    pub const BITRATE_MODE: u32 = CODEC_BASE + 206;
    pub const BITRATE: u32 = CODEC_BASE + 207;
    pub const HEADER_MODE: u32 = CODEC_BASE + 216;
    pub const REPEAT_SEQ_HEADER: u32 = CODEC_BASE + 226;
    pub const FORCE_KEY_FRAME: u32 = CODEC_BASE + 229;
    pub const H264_I_PERIOD: u32 = CODEC_BASE + 358;
    pub const H264_LEVEL: u32 = CODEC_BASE + 359;
    pub const H264_PROFILE: u32 = CODEC_BASE + 363;
    /// V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE
    pub const H264_PROFILE_CONSTRAINED_BASELINE: i32 = 1;
    /// V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME
    pub const HEADER_MODE_JOINED_WITH_1ST_FRAME: i32 = 1;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufType {
    VideoCapture = 1,
    VideoOutput = 2,
    VideoCaptureMplane = 9,
    VideoOutputMplane = 10,
}

impl BufType {
    pub fn is_mplane(self) -> bool {
        matches!(self, BufType::VideoCaptureMplane | BufType::VideoOutputMplane)
    }
    /// (OUTPUT, CAPTURE) of an M2M device.
    pub fn m2m_pair(mplane: bool) -> (BufType, BufType) {
        if mplane {
            (BufType::VideoOutputMplane, BufType::VideoCaptureMplane)
        } else {
            (BufType::VideoOutput, BufType::VideoCapture)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    Mmap = 1,
    Dmabuf = 4,
}

// ---- the kernel's structs -------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct FmtDesc {
    index: u32,
    type_: u32,
    flags: u32,
    description: [u8; 32],
    pixelformat: u32,
    mbus_code: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    colorspace: u32,
    priv_: u32,
    flags: u32,
    ycbcr_enc: u32,
    quantization: u32,
    xfer_func: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PlanePixFormat {
    sizeimage: u32,
    bytesperline: u32,
    reserved: [u16; 6],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PixFormatMplane {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    colorspace: u32,
    plane_fmt: [PlanePixFormat; 8],
    num_planes: u8,
    flags: u8,
    ycbcr_enc: u8,
    quantization: u8,
    xfer_func: u8,
    reserved: [u8; 7],
}

/// The `fmt` union of `v4l2_format`: 200 bytes, pointer-aligned (it holds `v4l2_window`).
#[repr(C)]
#[derive(Clone, Copy)]
union FormatUnion {
    pix: PixFormat,
    pix_mp: PixFormatMplane,
    raw: [u8; 200],
    _align: [usize; 200 / std::mem::size_of::<usize>()],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Format {
    type_: u32,
    fmt: FormatUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RequestBuffers {
    count: u32,
    type_: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Timecode {
    type_: u32,
    flags: u32,
    frames: u8,
    seconds: u8,
    minutes: u8,
    hours: u8,
    userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
union PlaneM {
    mem_offset: u32,
    userptr: libc::c_ulong,
    fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Plane {
    bytesused: u32,
    length: u32,
    m: PlaneM,
    data_offset: u32,
    reserved: [u32; 11],
}

#[repr(C)]
#[derive(Clone, Copy)]
union BufferM {
    offset: u32,
    userptr: libc::c_ulong,
    planes: *mut Plane,
    fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Buffer {
    index: u32,
    type_: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: libc::timeval,
    timecode: Timecode,
    sequence: u32,
    memory: u32,
    m: BufferM,
    length: u32,
    reserved2: u32,
    request_fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Control {
    id: u32,
    value: i32,
}

/// `v4l2_ext_control` is packed: 20 bytes. `value` is the low half of its 8-byte union; only
/// 32-bit controls are used here.
#[repr(C, packed)]
#[derive(Clone, Copy)]
struct ExtControl {
    id: u32,
    size: u32,
    reserved2: u32,
    value: i32,
    value_high: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ExtControls {
    which: u32,
    count: u32,
    error_idx: u32,
    request_fd: i32,
    reserved: u32,
    controls: *mut ExtControl,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct EncoderCmd {
    cmd: u32,
    flags: u32,
    data: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct EventSubscription {
    type_: u32,
    id: u32,
    flags: u32,
    reserved: [u32; 5],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Event {
    type_: u32,
    u: [u64; 8],
    pending: u32,
    sequence: u32,
    timestamp: libc::timespec,
    id: u32,
    reserved: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Selection {
    type_: u32,
    target: u32,
    flags: u32,
    left: i32,
    top: i32,
    width: u32,
    height: u32,
    reserved: [u32; 9],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Fract {
    numerator: u32,
    denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct OutputParm {
    capability: u32,
    outputmode: u32,
    timeperframe: Fract,
    extendedmode: u32,
    writebuffers: u32,
    reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
union StreamParmUnion {
    output: OutputParm,
    raw: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct StreamParm {
    type_: u32,
    parm: StreamParmUnion,
}

// The ioctl request numbers are computed from these sizes: a wrong layout would not silently
// corrupt memory, the kernel would answer ENOTTY. Checked against the 64-bit ABI (x86_64, aarch64).
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<PixFormatMplane>() == 192);
    assert!(size_of::<Format>() == 208);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Plane>() == 64);
    assert!(size_of::<Buffer>() == 88);
    assert!(size_of::<ExtControl>() == 20);
    assert!(size_of::<ExtControls>() == 32);
    assert!(size_of::<EncoderCmd>() == 40);
    assert!(size_of::<EventSubscription>() == 32);
    assert!(size_of::<Event>() == 136);
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<Selection>() == 64);
};

mod ioc {
    use super::*;
    nix::ioctl_read!(querycap, b'V', 0, Capability);
    nix::ioctl_readwrite!(enum_fmt, b'V', 2, FmtDesc);
    nix::ioctl_readwrite!(g_fmt, b'V', 4, Format);
    nix::ioctl_readwrite!(s_fmt, b'V', 5, Format);
    nix::ioctl_readwrite!(reqbufs, b'V', 8, RequestBuffers);
    nix::ioctl_readwrite!(querybuf, b'V', 9, Buffer);
    nix::ioctl_readwrite!(qbuf, b'V', 15, Buffer);
    nix::ioctl_readwrite!(dqbuf, b'V', 17, Buffer);
    nix::ioctl_write_ptr!(streamon, b'V', 18, libc::c_int);
    nix::ioctl_write_ptr!(streamoff, b'V', 19, libc::c_int);
    nix::ioctl_readwrite!(s_parm, b'V', 22, StreamParm);
    nix::ioctl_readwrite!(g_ctrl, b'V', 27, Control);
    nix::ioctl_readwrite!(s_ext_ctrls, b'V', 72, ExtControls);
    nix::ioctl_readwrite!(encoder_cmd, b'V', 77, EncoderCmd);
    nix::ioctl_read!(dqevent, b'V', 89, Event);
    nix::ioctl_write_ptr!(subscribe_event, b'V', 90, EventSubscription);
    nix::ioctl_readwrite!(s_selection, b'V', 95, Selection);
}

/// An all-zero value of one of the plain structs above (integers, arrays, unions of those and
/// null pointers: zero is a valid value of each).
fn zeroed<T: Copy>() -> T {
    // SAFETY: only instantiated with the #[repr(C)] structs of this module, for which all-zero
    // bytes are valid (no references, no enums, no NonNull).
    unsafe { std::mem::zeroed() }
}

fn c_string(bytes: &[u8]) -> String {
    CStr::from_bytes_until_nul(bytes).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
}

fn to_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Retry an ioctl interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

// ---- what the device says, in plain types ----------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// The device node's capabilities (`device_caps` when the driver reports them).
    pub caps: u32,
}

/// A one-plane pixel format as the driver holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixFmt {
    pub fourcc: u32,
    pub width: u32,
    pub height: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    /// Planes (memory buffers) per frame: 1 for every format pieyes uses.
    pub num_planes: u8,
}

/// What QBUF hands the driver.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// A buffer of the device's own (MMAP), `bytesused` bytes filled.
    Mmap { bytesused: u32 },
    /// Someone else's dma-buf imported by fd (zero copy).
    Dmabuf { fd: BorrowedFd<'a>, length: u32, bytesused: u32 },
}

/// A buffer DQBUF gave back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dequeued {
    pub index: u32,
    /// Bytes of payload, counted from `data_offset` (for multi-planar buffers the kernel's
    /// `bytesused` includes the offset; it is taken off here).
    pub bytesused: u32,
    pub data_offset: u32,
    pub length: u32,
    pub flags: u32,
    pub sequence: u32,
    /// The timestamp, as µs (M2M devices copy the OUTPUT buffer's to its CAPTURE buffer).
    pub timestamp_us: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub type_: u32,
    pub sequence: u32,
    /// Events still waiting after this one.
    pub pending: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub priority: bool,
    pub error: bool,
}

/// An open V4L2 device node (non-blocking).
pub struct Device {
    fd: OwnedFd,
    path: PathBuf,
}

/// `/dev/video*` nodes, in numeric order.
pub fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n: u32 = name.strip_prefix("video")?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

impl Device {
    pub fn open(path: &Path) -> std::io::Result<Device> {
        let fd = open(path, OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty()).map_err(to_io)?;
        Ok(Device { fd, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn query_caps(&self) -> std::io::Result<Caps> {
        let mut c: Capability = zeroed();
        // SAFETY: QUERYCAP writes one v4l2_capability into `c`, which is one.
        retry(|| unsafe { ioc::querycap(self.raw(), &mut c) }).map_err(to_io)?;
        let caps = if c.capabilities & CAP_DEVICE_CAPS != 0 { c.device_caps } else { c.capabilities };
        Ok(Caps { driver: c_string(&c.driver), card: c_string(&c.card), bus_info: c_string(&c.bus_info), caps })
    }

    /// The pixel formats a queue offers (ENUM_FMT until EINVAL).
    pub fn enum_formats(&self, t: BufType) -> std::io::Result<Vec<u32>> {
        let mut out = Vec::new();
        for index in 0..256 {
            let mut d: FmtDesc = zeroed();
            d.index = index;
            d.type_ = t as u32;
            // SAFETY: ENUM_FMT reads and writes one v4l2_fmtdesc, which `d` is.
            match retry(|| unsafe { ioc::enum_fmt(self.raw(), &mut d) }) {
                Ok(_) => out.push(d.pixelformat),
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(to_io(e)),
            }
        }
        Ok(out)
    }

    fn format_to_pix(f: &Format, t: BufType) -> PixFmt {
        if t.is_mplane() {
            // SAFETY: for a multi-planar type the kernel filled `pix_mp`; every bit pattern is
            // a valid value of these plain integer fields.
            let p = unsafe { f.fmt.pix_mp };
            PixFmt {
                fourcc: p.pixelformat,
                width: p.width,
                height: p.height,
                bytesperline: p.plane_fmt[0].bytesperline,
                sizeimage: p.plane_fmt[0].sizeimage,
                num_planes: p.num_planes,
            }
        } else {
            // SAFETY: for a single-planar type the kernel filled `pix` (plain integers).
            let p = unsafe { f.fmt.pix };
            PixFmt {
                fourcc: p.pixelformat,
                width: p.width,
                height: p.height,
                bytesperline: p.bytesperline,
                sizeimage: p.sizeimage,
                num_planes: 1,
            }
        }
    }

    pub fn get_format(&self, t: BufType) -> std::io::Result<PixFmt> {
        let mut f: Format = zeroed();
        f.type_ = t as u32;
        // SAFETY: G_FMT reads `type` and writes one v4l2_format, which `f` is.
        retry(|| unsafe { ioc::g_fmt(self.raw(), &mut f) }).map_err(to_io)?;
        Ok(Self::format_to_pix(&f, t))
    }

    /// S_FMT; returns the format the driver settled on (it adjusts what it cannot do).
    pub fn set_format(&self, t: BufType, want: PixFmt) -> std::io::Result<PixFmt> {
        let mut f: Format = zeroed();
        f.type_ = t as u32;
        const FIELD_NONE: u32 = 1;
        if t.is_mplane() {
            let mut p: PixFormatMplane = zeroed();
            p.width = want.width;
            p.height = want.height;
            p.pixelformat = want.fourcc;
            p.field = FIELD_NONE;
            p.num_planes = 1;
            p.plane_fmt[0].bytesperline = want.bytesperline;
            p.plane_fmt[0].sizeimage = want.sizeimage;
            f.fmt.pix_mp = p;
        } else {
            let mut p: PixFormat = zeroed();
            p.width = want.width;
            p.height = want.height;
            p.pixelformat = want.fourcc;
            p.field = FIELD_NONE;
            p.bytesperline = want.bytesperline;
            p.sizeimage = want.sizeimage;
            f.fmt.pix = p;
        }
        // SAFETY: S_FMT reads and writes one v4l2_format, which `f` is.
        retry(|| unsafe { ioc::s_fmt(self.raw(), &mut f) }).map_err(to_io)?;
        Ok(Self::format_to_pix(&f, t))
    }

    /// REQBUFS: returns (buffers granted, the queue's V4L2_BUF_CAP_* capabilities).
    pub fn request_buffers(&self, t: BufType, memory: Memory, count: u32) -> std::io::Result<(u32, u32)> {
        let mut r: RequestBuffers = zeroed();
        r.count = count;
        r.type_ = t as u32;
        r.memory = memory as u32;
        // SAFETY: REQBUFS reads and writes one v4l2_requestbuffers, which `r` is.
        retry(|| unsafe { ioc::reqbufs(self.raw(), &mut r) }).map_err(to_io)?;
        Ok((r.count, r.capabilities))
    }

    /// Fill in a v4l2_buffer and, for multi-planar types, point it at `planes`.
    fn buffer(t: BufType, memory: Memory, index: u32, planes: &mut [Plane; 8]) -> Buffer {
        let mut b: Buffer = zeroed();
        b.index = index;
        b.type_ = t as u32;
        b.memory = memory as u32;
        if t.is_mplane() {
            b.m.planes = planes.as_mut_ptr();
            b.length = planes.len() as u32;
        }
        b
    }

    /// QUERYBUF of an MMAP buffer: (offset to mmap, length).
    pub fn query_buffer(&self, t: BufType, index: u32) -> std::io::Result<(u32, u32)> {
        let mut planes: [Plane; 8] = zeroed();
        let mut b = Self::buffer(t, Memory::Mmap, index, &mut planes);
        // SAFETY: QUERYBUF fills `b` and, for multi-planar types, up to `b.length` entries of
        // `planes`, which outlives the call.
        retry(|| unsafe { ioc::querybuf(self.raw(), &mut b) }).map_err(to_io)?;
        Ok(if t.is_mplane() {
            // SAFETY: the kernel filled planes[0] for an MMAP buffer: `mem_offset` is its member.
            (unsafe { planes[0].m.mem_offset }, planes[0].length)
        } else {
            // SAFETY: for a single-planar MMAP buffer the kernel set `m.offset`.
            (unsafe { b.m.offset }, b.length)
        })
    }

    /// Map an MMAP buffer found with [`Device::query_buffer`].
    pub fn map_buffer(&self, offset: u32, length: u32) -> std::io::Result<Mapping> {
        Mapping::new(self.fd.as_fd(), length as usize, offset as libc::off_t)
    }

    /// QBUF buffer `index`, stamped with `timestamp_us` (returned on the CAPTURE buffer made
    /// from it).
    pub fn queue(&self, t: BufType, index: u32, payload: Payload<'_>, timestamp_us: u64) -> std::io::Result<()> {
        let (memory, fd, length, bytesused) = match payload {
            Payload::Mmap { bytesused } => (Memory::Mmap, None, 0, bytesused),
            Payload::Dmabuf { fd, length, bytesused } => (Memory::Dmabuf, Some(fd.as_raw_fd()), length, bytesused),
        };
        // The plane is complete before a pointer to it is taken.
        let mut planes: [Plane; 8] = zeroed();
        planes[0].bytesused = bytesused;
        planes[0].length = length;
        if let Some(fd) = fd {
            planes[0].m.fd = fd;
        }
        let mut b = Self::buffer(t, memory, index, &mut planes);
        b.timestamp = libc::timeval {
            tv_sec: (timestamp_us / 1_000_000) as libc::time_t,
            tv_usec: (timestamp_us % 1_000_000) as libc::suseconds_t,
        };
        b.field = 1; // V4L2_FIELD_NONE
        if t.is_mplane() {
            b.length = 1;
        } else {
            b.bytesused = bytesused;
            if let Some(fd) = fd {
                b.m.fd = fd;
                b.length = length;
            }
        }
        // SAFETY: QBUF reads `b` and the one plane `b.m.planes` points at (multi-planar);
        // both outlive the call. A dma-buf fd is only borrowed: the kernel takes its own
        // reference.
        retry(|| unsafe { ioc::qbuf(self.raw(), &mut b) }).map_err(to_io)?;
        Ok(())
    }

    /// DQBUF without blocking: None when nothing is done. EPIPE after the LAST buffer.
    pub fn dequeue(&self, t: BufType, memory: Memory) -> std::io::Result<Option<Dequeued>> {
        let mut planes: [Plane; 8] = zeroed();
        let mut b = Self::buffer(t, memory, 0, &mut planes);
        // SAFETY: DQBUF writes `b` and up to `b.length` entries of `planes`, which outlive it.
        match retry(|| unsafe { ioc::dqbuf(self.raw(), &mut b) }) {
            Ok(_) => {}
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(to_io(e)),
        }
        let (bytesused, data_offset, length) = if t.is_mplane() {
            let p = planes[0];
            (p.bytesused.saturating_sub(p.data_offset), p.data_offset, p.length)
        } else {
            (b.bytesused, 0, b.length)
        };
        let ts = b.timestamp;
        Ok(Some(Dequeued {
            index: b.index,
            bytesused,
            data_offset,
            length,
            flags: b.flags,
            sequence: b.sequence,
            timestamp_us: ts.tv_sec as u64 * 1_000_000 + ts.tv_usec as u64,
        }))
    }

    pub fn stream_on(&self, t: BufType) -> std::io::Result<()> {
        let v: libc::c_int = t as libc::c_int;
        // SAFETY: STREAMON reads one int.
        retry(|| unsafe { ioc::streamon(self.raw(), &v) }).map_err(to_io)?;
        Ok(())
    }

    /// STREAMOFF: the driver gives every buffer of the queue back (none stays queued).
    pub fn stream_off(&self, t: BufType) -> std::io::Result<()> {
        let v: libc::c_int = t as libc::c_int;
        // SAFETY: STREAMOFF reads one int.
        retry(|| unsafe { ioc::streamoff(self.raw(), &v) }).map_err(to_io)?;
        Ok(())
    }

    /// S_EXT_CTRLS of one control (the value may be clamped by the driver: read it back with
    /// [`Device::get_control`]).
    pub fn set_control(&self, id: u32, value: i32) -> std::io::Result<()> {
        let mut c = ExtControl { id, size: 0, reserved2: 0, value, value_high: if value < 0 { -1 } else { 0 } };
        let mut cs: ExtControls = zeroed();
        cs.which = 0; // V4L2_CTRL_WHICH_CUR_VAL: any control class
        cs.count = 1;
        cs.controls = &mut c;
        // SAFETY: S_EXT_CTRLS reads `cs` and the one control it points at; both outlive it.
        retry(|| unsafe { ioc::s_ext_ctrls(self.raw(), &mut cs) }).map_err(to_io)?;
        Ok(())
    }

    pub fn get_control(&self, id: u32) -> std::io::Result<i32> {
        let mut c = Control { id, value: 0 };
        // SAFETY: G_CTRL reads and writes one v4l2_control.
        retry(|| unsafe { ioc::g_ctrl(self.raw(), &mut c) }).map_err(to_io)?;
        Ok(c.value)
    }

    /// S_PARM on an OUTPUT queue: the frame interval the encoder's rate control assumes.
    /// Returns the interval the driver kept as (numerator, denominator).
    pub fn set_frame_interval(&self, t: BufType, numerator: u32, denominator: u32) -> std::io::Result<(u32, u32)> {
        let mut p: StreamParm = zeroed();
        p.type_ = t as u32;
        let mut out: OutputParm = zeroed();
        out.timeperframe = Fract { numerator, denominator };
        p.parm.output = out;
        // SAFETY: S_PARM reads and writes one v4l2_streamparm.
        retry(|| unsafe { ioc::s_parm(self.raw(), &mut p) }).map_err(to_io)?;
        // SAFETY: for an OUTPUT type the kernel answers in `output` (plain integers).
        let tpf = unsafe { p.parm.output.timeperframe };
        Ok((tpf.numerator, tpf.denominator))
    }

    /// S_SELECTION(CROP) on an OUTPUT queue: the visible part of a coded frame larger than the
    /// picture (a driver that wants 16-line multiples). Returns the (width, height) kept.
    pub fn set_crop(&self, t: BufType, width: u32, height: u32) -> std::io::Result<(u32, u32)> {
        let mut sel: Selection = zeroed();
        sel.type_ = t as u32;
        sel.target = 0; // V4L2_SEL_TGT_CROP
        sel.width = width;
        sel.height = height;
        // SAFETY: S_SELECTION reads and writes one v4l2_selection.
        retry(|| unsafe { ioc::s_selection(self.raw(), &mut sel) }).map_err(to_io)?;
        Ok((sel.width, sel.height))
    }

    pub fn encoder_command(&self, cmd: u32) -> std::io::Result<()> {
        let mut c = EncoderCmd { cmd, flags: 0, data: [0; 8] };
        // SAFETY: ENCODER_CMD reads and writes one v4l2_encoder_cmd.
        retry(|| unsafe { ioc::encoder_cmd(self.raw(), &mut c) }).map_err(to_io)?;
        Ok(())
    }

    pub fn subscribe_event(&self, type_: u32) -> std::io::Result<()> {
        let s = EventSubscription { type_, id: 0, flags: 0, reserved: [0; 5] };
        // SAFETY: SUBSCRIBE_EVENT reads one v4l2_event_subscription.
        retry(|| unsafe { ioc::subscribe_event(self.raw(), &s) }).map_err(to_io)?;
        Ok(())
    }

    /// DQEVENT: None when no event is pending.
    pub fn dequeue_event(&self) -> std::io::Result<Option<EventInfo>> {
        let mut e: Event = zeroed();
        // SAFETY: DQEVENT writes one v4l2_event into `e`.
        match retry(|| unsafe { ioc::dqevent(self.raw(), &mut e) }) {
            Ok(_) => Ok(Some(EventInfo { type_: e.type_, sequence: e.sequence, pending: e.pending })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// poll() this device alone (used while draining, outside the daemon's loop).
    pub fn wait(&self, read: bool, write: bool, timeout_ms: u16) -> std::io::Result<Readiness> {
        let mut ev = PollFlags::POLLPRI;
        if read {
            ev |= PollFlags::POLLIN;
        }
        if write {
            ev |= PollFlags::POLLOUT;
        }
        let mut fds = [PollFd::new(self.fd.as_fd(), ev)];
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(to_io(e)),
        }
        let r = fds[0].revents().unwrap_or(PollFlags::empty());
        Ok(Readiness {
            readable: r.contains(PollFlags::POLLIN),
            writable: r.contains(PollFlags::POLLOUT),
            priority: r.contains(PollFlags::POLLPRI),
            error: r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL),
        })
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One mmap'ed MMAP buffer of a device. The device must outlive it (the encoder drops its
/// mappings before REQBUFS 0 and before the device).
pub use super::shm::Mapping;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourccs_and_request_numbers_match_the_kernel_headers() {
        assert_eq!(PIX_FMT_YUV420, 0x3231_5559);
        assert_eq!(PIX_FMT_H264, 0x3436_3248);
        assert_eq!(fourcc_name(PIX_FMT_FWHT), "FWHT");
        // _IOWR('V', 15, struct v4l2_buffer) on 64-bit is 0xc058560f; _IOR('V', 0, cap) 0x80685600.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(nix::request_code_readwrite!(b'V', 15, std::mem::size_of::<Buffer>()) as u64, 0xc058_560f);
            assert_eq!(nix::request_code_read!(b'V', 0, std::mem::size_of::<Capability>()) as u64, 0x8068_5600);
            assert_eq!(nix::request_code_readwrite!(b'V', 5, std::mem::size_of::<Format>()) as u64, 0xc0d0_5605);
            assert_eq!(nix::request_code_readwrite!(b'V', 72, std::mem::size_of::<ExtControls>()) as u64, 0xc020_5648);
            assert_eq!(nix::request_code_read!(b'V', 89, std::mem::size_of::<Event>()) as u64, 0x8088_5659);
        }
    }

    #[test]
    fn a_non_v4l2_fd_answers_enotty() {
        // /dev/null is no video device: QUERYCAP must fail cleanly, not corrupt anything.
        let d = Device::open(Path::new("/dev/null")).unwrap();
        let e = d.query_caps().unwrap_err().raw_os_error();
        // ENOTTY from the kernel; ENOSYS when qemu-user runs the aarch64 tests.
        assert!(matches!(e, Some(libc::ENOTTY) | Some(libc::ENOSYS)), "{e:?}");
    }
}
