//! Choosing and opening what the eyes are made of: the cameras (`--camera`, `--cameras`,
//! `--mono`) and each eye's encoder (`--encoder`). The one place that knows which backends
//! this build has.

use crate::camera::Camera;
use crate::camera::synthetic::{SyntheticConfig, SyntheticRig};
use crate::config::{CameraChoice, Config, EncoderChoice};
use crate::encoder::software::SoftwareEncoder;
use crate::encoder::{Encoder, EncoderConfig};
use crate::inject::SharedFaults;

/// The opened cameras, one per eye, and whatever must live as long as they do.
pub struct Cameras {
    pub eyes: Vec<Box<dyn Camera>>,
    /// Requests each camera keeps queued.
    pub request_depth: usize,
    pub keepalive: Option<Box<dyn std::any::Any>>,
}

fn synthetic(cfg: &Config, fps: u32, faults: &SharedFaults) -> Result<Cameras, String> {
    let syn = SyntheticConfig { sensor: cfg.sensor, output: cfg.size, fps, ..SyntheticConfig::default() };
    let (rig, cams) = SyntheticRig::start(&syn, faults.clone()).map_err(|e| format!("synthetic camera: {e}"))?;
    let eyes: Vec<Box<dyn Camera>> =
        cams.into_iter().take(if cfg.mono { 1 } else { 2 }).map(|c| Box::new(c) as Box<dyn Camera>).collect();
    Ok(Cameras { eyes, request_depth: super::eye::SYNTHETIC_REQUEST_DEPTH, keepalive: Some(Box::new(rig)) })
}

pub fn open_cameras(cfg: &Config, fps: u32, faults: &SharedFaults) -> Result<Cameras, String> {
    match cfg.camera {
        CameraChoice::Synthetic => synthetic(cfg, fps, faults),
        CameraChoice::Libcamera => Err("this build has no libcamera support (build with --features libcamera)".into()),
        CameraChoice::Auto => {
            crate::info!("camera auto: no libcamera support in this build; using the synthetic stereo camera");
            synthetic(cfg, fps, faults)
        }
    }
}

pub fn open_encoder(
    cfg: &Config,
    eye: u8,
    enc: EncoderConfig,
    faults: &SharedFaults,
) -> Result<Box<dyn Encoder>, String> {
    match cfg.encoder {
        EncoderChoice::V4l2 => Err("this build has no V4L2 encoder support yet".into()),
        EncoderChoice::Software | EncoderChoice::Auto => {
            let e = SoftwareEncoder::start(eye, enc, faults.clone()).map_err(|e| format!("encoder: {e}"))?;
            Ok(Box::new(e))
        }
    }
}
