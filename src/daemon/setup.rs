//! Choosing and opening what the eyes are made of: the cameras (`--camera`, `--cameras`,
//! `--mono`) and each eye's encoder (`--encoder`). The one place that knows which backends
//! this build has.

use crate::camera::Camera;
use crate::camera::synthetic::{SyntheticConfig, SyntheticRig};
use crate::config::{CameraChoice, Config, EncoderChoice};
use crate::encoder::software::SoftwareEncoder;
use crate::encoder::v4l2::{self, V4l2Encoder};
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

// ---- encoders (--encoder auto|software|v4l2) ----

fn software(eye: u8, enc: EncoderConfig, faults: &SharedFaults) -> Result<Box<dyn Encoder>, String> {
    let e = SoftwareEncoder::start(eye, enc, faults.clone()).map_err(|e| format!("encoder: {e}"))?;
    Ok(Box::new(e))
}

fn v4l2(eye: u8, dev: v4l2::DeviceInfo, enc: EncoderConfig, faults: &SharedFaults) -> Result<Box<dyn Encoder>, String> {
    let opts = v4l2::Options { codec: v4l2::Codec::H264, ..v4l2::Options::default() };
    Ok(Box::new(V4l2Encoder::open(dev, eye, enc, opts, faults.clone())?))
}

/// `--encoder v4l2`: the machine's V4L2 H.264 encoder (found by capability) or an error;
/// `auto`: that encoder when there is one (Pi 4), else software (Pi 5, a PC).
pub fn open_encoder(
    cfg: &Config,
    eye: u8,
    enc: EncoderConfig,
    faults: &SharedFaults,
) -> Result<Box<dyn Encoder>, String> {
    match cfg.encoder {
        EncoderChoice::Software => {
            crate::info!("eye {eye}: encoder software (--encoder software)");
            software(eye, enc, faults)
        }
        EncoderChoice::V4l2 => {
            let dev = v4l2::find_encoder(v4l2::Codec::H264, None)
                .map_err(|why| format!("--encoder v4l2: no V4L2 H.264 encoder: {why}"))?;
            crate::info!("eye {eye}: encoder v4l2 (--encoder v4l2): {}", dev.path.display());
            v4l2(eye, dev, enc, faults).map_err(|e| format!("--encoder v4l2: {e}"))
        }
        EncoderChoice::Auto => match v4l2::find_encoder(v4l2::Codec::H264, None) {
            Ok(dev) => {
                let path = dev.path.clone();
                match v4l2(eye, dev, enc, faults) {
                    Ok(e) => {
                        crate::info!("eye {eye}: encoder auto: {} is a V4L2 H.264 encoder: using it", path.display());
                        Ok(e)
                    }
                    Err(why) => {
                        crate::warn!(
                            "eye {eye}: encoder auto: V4L2 encoder {} unusable ({why}): software",
                            path.display()
                        );
                        software(eye, enc, faults)
                    }
                }
            }
            Err(why) => {
                crate::info!("eye {eye}: encoder auto: software (OpenH264): {why}");
                software(eye, enc, faults)
            }
        },
    }
}
