//! Which device is an encoder, by what it says about itself rather than by its path: a
//! memory-to-memory node with streaming I/O whose CAPTURE queue produces the codec and whose
//! OUTPUT queue takes raw YUV 4:2:0 (YU12 or NV12). Pure functions over (caps, formats) lists;
//! `probe` gathers those lists from `/dev/video*`.

use std::path::{Path, PathBuf};

use crate::camera::PixelFormat;
use crate::sys::v4l2::{
    self, BufType, CAP_STREAMING, CAP_VIDEO_M2M, CAP_VIDEO_M2M_MPLANE, PIX_FMT_BGR24, PIX_FMT_FWHT, PIX_FMT_H264,
    PIX_FMT_NV12, PIX_FMT_YUV420, fourcc_name,
};

/// What the CAPTURE queue produces. H.264 is what pieyes streams; FWHT is what the kernel's
/// `vicodec` test driver encodes, so the same module is exercised for real in the test VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    Fwht,
}

impl Codec {
    pub fn fourcc(self) -> u32 {
        match self {
            Codec::H264 => PIX_FMT_H264,
            Codec::Fwht => PIX_FMT_FWHT,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H.264",
            Codec::Fwht => "FWHT",
        }
    }
    pub fn parse(s: &str) -> Option<Codec> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "h.264" => Some(Codec::H264),
            "fwht" => Some(Codec::Fwht),
            _ => None,
        }
    }
}

/// What one device node says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub path: PathBuf,
    pub driver: String,
    pub card: String,
    pub caps: u32,
    pub output_formats: Vec<u32>,
    pub capture_formats: Vec<u32>,
    /// Set when the node could not be opened or asked (e.g. permission denied).
    pub problem: Option<String>,
}

impl DeviceInfo {
    pub fn mplane(&self) -> bool {
        self.caps & CAP_VIDEO_M2M_MPLANE != 0
    }

    /// One line for logs: `/dev/video3 (vicodec, "vicodec") m2m: YU12,NV12 → FWHT`.
    pub fn describe(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("{} ({p})", self.path.display());
        }
        let list = |v: &[u32]| v.iter().map(|&f| fourcc_name(f)).collect::<Vec<_>>().join(",");
        let kind = if self.mplane() {
            "m2m-mplane"
        } else if self.caps & CAP_VIDEO_M2M != 0 {
            "m2m"
        } else {
            "not m2m"
        };
        format!(
            "{} ({}, {:?}) {kind}: {} -> {}",
            self.path.display(),
            self.driver,
            self.card,
            list(&self.output_formats),
            list(&self.capture_formats)
        )
    }
}

/// Raw formats an encoder's OUTPUT queue must offer one of.
const RAW_420: [u32; 2] = [PIX_FMT_YUV420, PIX_FMT_NV12];

/// Why `d` is not an encoder for `codec`, or None when it is one.
pub fn rejection(d: &DeviceInfo, codec: Codec) -> Option<String> {
    if let Some(p) = &d.problem {
        return Some(p.clone());
    }
    if d.caps & (CAP_VIDEO_M2M | CAP_VIDEO_M2M_MPLANE) == 0 {
        return Some("not a memory-to-memory device".into());
    }
    if d.caps & CAP_STREAMING == 0 {
        return Some("no streaming I/O".into());
    }
    if !d.capture_formats.contains(&codec.fourcc()) {
        return Some(format!("does not produce {}", codec.name()));
    }
    if !d.output_formats.iter().any(|f| RAW_420.contains(f)) {
        return Some("takes neither YU12 nor NV12".into());
    }
    None
}

/// The first device (in the order given: `/dev/video*` numerically) that encodes to `codec`;
/// otherwise why none does, device by device.
pub fn select_device(devices: &[DeviceInfo], codec: Codec) -> Result<usize, String> {
    let mut why = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        match rejection(d, codec) {
            None => return Ok(i),
            Some(r) => why.push(format!("{}: {r}", d.path.display())),
        }
    }
    if devices.is_empty() {
        return Err("no /dev/video* device nodes".into());
    }
    Err(format!("no {} encoder among {} V4L2 nodes ({})", codec.name(), devices.len(), why.join("; ")))
}

/// The OUTPUT pixel format for frames in `frame`: the same layout when the device takes it
/// (zero copy possible), else the other 4:2:0 layout with a conversion while copying.
/// Returns (fourcc, needs conversion).
pub fn pick_output_format(frame: PixelFormat, offered: &[u32]) -> Option<(u32, bool)> {
    let same = match frame {
        PixelFormat::I420 => PIX_FMT_YUV420,
        PixelFormat::Nv12 => PIX_FMT_NV12,
        PixelFormat::Bgr888 => PIX_FMT_BGR24,
    };
    if offered.contains(&same) {
        return Some((same, false));
    }
    let other = match frame {
        PixelFormat::I420 => PIX_FMT_NV12,
        PixelFormat::Nv12 => PIX_FMT_YUV420,
        PixelFormat::Bgr888 => return None,
    };
    offered.contains(&other).then_some((other, true))
}

/// Ask one node what it is.
pub fn probe_one(path: &Path) -> DeviceInfo {
    let mut info = DeviceInfo { path: path.to_path_buf(), ..DeviceInfo::default() };
    let dev = match v4l2::Device::open(path) {
        Ok(d) => d,
        Err(e) => {
            info.problem = Some(format!("cannot open: {e}"));
            return info;
        }
    };
    match dev.query_caps() {
        Ok(c) => {
            info.driver = c.driver;
            info.card = c.card;
            info.caps = c.caps;
        }
        Err(e) => {
            info.problem = Some(format!("QUERYCAP: {e}"));
            return info;
        }
    }
    if info.caps & (CAP_VIDEO_M2M | CAP_VIDEO_M2M_MPLANE) != 0 {
        let (out, cap) = BufType::m2m_pair(info.mplane());
        info.output_formats = dev.enum_formats(out).unwrap_or_default();
        info.capture_formats = dev.enum_formats(cap).unwrap_or_default();
    }
    info
}

/// Every `/dev/video*` node, asked.
pub fn probe() -> Vec<DeviceInfo> {
    v4l2::video_nodes().iter().map(|p| probe_one(p)).collect()
}

/// The encoder for `codec` on this machine: the given node (still checked), or found by
/// capability among all nodes.
pub fn find_encoder(codec: Codec, device: Option<&Path>) -> Result<DeviceInfo, String> {
    let devices = match device {
        Some(p) => vec![probe_one(p)],
        None => probe(),
    };
    select_device(&devices, codec).map(|i| devices[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::v4l2::{CAP_DEVICE_CAPS, fourcc};

    fn dev(path: &str, caps: u32, out: &[u32], cap: &[u32]) -> DeviceInfo {
        DeviceInfo {
            path: path.into(),
            driver: "d".into(),
            card: "c".into(),
            caps,
            output_formats: out.to_vec(),
            capture_formats: cap.to_vec(),
            problem: None,
        }
    }

    const M2M: u32 = CAP_VIDEO_M2M | CAP_STREAMING | CAP_DEVICE_CAPS;
    const M2M_MP: u32 = CAP_VIDEO_M2M_MPLANE | CAP_STREAMING;

    /// A Raspberry Pi 4: decoder, encoder, ISP, image encoder (the order bcm2835-codec registers).
    fn pi4() -> Vec<DeviceInfo> {
        vec![
            dev("/dev/video10", M2M_MP, &[PIX_FMT_H264, fourcc(b"MJPG")], &[PIX_FMT_YUV420, PIX_FMT_NV12]),
            dev("/dev/video11", M2M_MP, &[PIX_FMT_YUV420, PIX_FMT_NV12, PIX_FMT_BGR24], &[PIX_FMT_H264]),
            dev("/dev/video12", M2M_MP, &[PIX_FMT_YUV420, PIX_FMT_BGR24], &[PIX_FMT_YUV420, PIX_FMT_NV12]),
            dev("/dev/video18", M2M_MP, &[PIX_FMT_YUV420], &[fourcc(b"JPEG")]),
        ]
    }

    /// The test VM: vimc capture nodes, vicodec's encoder, decoder and stateless decoder, vim2m.
    fn vm() -> Vec<DeviceInfo> {
        vec![
            dev("/dev/video0", 0x0480_0001, &[], &[]),
            dev("/dev/video3", M2M, &[PIX_FMT_YUV420, PIX_FMT_NV12, PIX_FMT_BGR24], &[PIX_FMT_FWHT]),
            dev("/dev/video4", M2M, &[PIX_FMT_FWHT], &[PIX_FMT_YUV420, PIX_FMT_NV12]),
            dev("/dev/video5", M2M, &[fourcc(b"SFWH")], &[PIX_FMT_YUV420]),
            dev("/dev/video6", M2M, &[fourcc(b"RGBP"), PIX_FMT_BGR24], &[fourcc(b"RGBP"), PIX_FMT_BGR24]),
        ]
    }

    #[test]
    fn the_pi4_encoder_is_found_by_what_it_does() {
        let d = pi4();
        assert_eq!(select_device(&d, Codec::H264), Ok(1));
        assert!(d[1].mplane());
        // The decoder has H.264 on the wrong queue; the ISP encodes nothing.
        assert_eq!(rejection(&d[0], Codec::H264).as_deref(), Some("does not produce H.264"));
        assert_eq!(rejection(&d[2], Codec::H264).as_deref(), Some("does not produce H.264"));
        assert!(select_device(&d, Codec::Fwht).is_err());
    }

    #[test]
    fn the_vm_has_an_fwht_encoder_and_no_h264_one() {
        let d = vm();
        assert_eq!(select_device(&d, Codec::Fwht), Ok(1));
        assert!(!d[1].mplane());
        let err = select_device(&d, Codec::H264).unwrap_err();
        assert!(err.starts_with("no H.264 encoder among 5 V4L2 nodes"), "{err}");
        assert!(err.contains("/dev/video0: not a memory-to-memory device"), "{err}");
        assert!(err.contains("/dev/video3: does not produce H.264"), "{err}");
    }

    #[test]
    fn no_nodes_unusable_nodes_and_raw_only_encoders_are_explained() {
        assert_eq!(select_device(&[], Codec::H264), Err("no /dev/video* device nodes".into()));
        let mut denied = dev("/dev/video11", 0, &[], &[]);
        denied.problem = Some("cannot open: Permission denied (os error 13)".into());
        let err = select_device(&[denied], Codec::H264).unwrap_err();
        assert!(err.contains("Permission denied"), "{err}");
        let rgb_only = dev("/dev/video1", M2M, &[PIX_FMT_BGR24], &[PIX_FMT_H264]);
        assert_eq!(rejection(&rgb_only, Codec::H264).as_deref(), Some("takes neither YU12 nor NV12"));
        let no_streaming = dev("/dev/video1", CAP_VIDEO_M2M, &[PIX_FMT_YUV420], &[PIX_FMT_H264]);
        assert_eq!(rejection(&no_streaming, Codec::H264).as_deref(), Some("no streaming I/O"));
    }

    #[test]
    fn output_format_follows_the_camera_and_converts_only_between_420_layouts() {
        let both = [PIX_FMT_NV12, PIX_FMT_YUV420];
        assert_eq!(pick_output_format(PixelFormat::I420, &both), Some((PIX_FMT_YUV420, false)));
        assert_eq!(pick_output_format(PixelFormat::Nv12, &both), Some((PIX_FMT_NV12, false)));
        assert_eq!(pick_output_format(PixelFormat::I420, &[PIX_FMT_NV12]), Some((PIX_FMT_NV12, true)));
        assert_eq!(pick_output_format(PixelFormat::Nv12, &[PIX_FMT_YUV420]), Some((PIX_FMT_YUV420, true)));
        assert_eq!(pick_output_format(PixelFormat::Bgr888, &both), None);
        assert_eq!(pick_output_format(PixelFormat::Bgr888, &[PIX_FMT_BGR24]), Some((PIX_FMT_BGR24, false)));
    }

    #[test]
    fn describe_is_one_line() {
        let d = &vm()[1];
        assert_eq!(d.describe(), "/dev/video3 (d, \"c\") m2m: YU12,NV12,BGR3 -> FWHT");
        assert_eq!(Codec::parse("H264"), Some(Codec::H264));
        assert_eq!(Codec::parse("fwht"), Some(Codec::Fwht));
        assert_eq!(Codec::parse("vp8"), None);
    }
}
