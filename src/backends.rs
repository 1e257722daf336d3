//! Choosing and opening what the eyes are made of: the cameras (`--camera`, `--cameras`,
//! `--mono`) and each eye's encoder (`--encoder`). The one place that knows which backends
//! this build has.

use crate::camera::Camera;
use crate::camera::select::{self, Backend};
use crate::camera::synthetic::{SyntheticConfig, SyntheticRig};
use crate::config::{CameraChoice, Config, EncoderChoice, EncoderCpus, gop_frames};
use crate::controller::EyeSetup;
use crate::encoder::software::{SoftwareEncoder, Tuning};
use crate::encoder::v4l2::{self, V4l2Encoder};
use crate::encoder::{Encoder, EncoderConfig};
use crate::eyes::geometry::Geometry;
use crate::inject::SharedFaults;
use crate::pipeline::Pipeline;

/// The opened cameras, one per eye, and whatever must live as long as they do.
pub struct Cameras {
    pub eyes: Vec<Box<dyn Camera>>,
    /// Requests each camera keeps queued.
    pub request_depth: usize,
    /// How the two eyes' frames are synchronised (shown in `status`).
    pub sync: String,
    /// Whether the eyes' sequence numbers count the same capture ticks (synthetic; hardware
    /// synchronised sensors), so that a command for both lands on one tick in both.
    pub shared_clock: bool,
    pub keepalive: Option<Box<dyn std::any::Any>>,
}

fn synthetic(cfg: &Config, fps: u32, faults: &SharedFaults) -> Result<Cameras, String> {
    let allowed = crate::sys::thread::allowed_cpus().unwrap_or_default();
    // With the software encoders pinned, the capture thread shares eye 1's encoder CPU.
    let cpu = match cfg.encoder {
        EncoderChoice::V4l2 => None,
        _ => cfg.encoder_cpus.cpu_for(1, &allowed).filter(|c| allowed.contains(c)),
    };
    let syn = SyntheticConfig {
        sensor: cfg.sensor,
        output: cfg.size,
        fps,
        cpu,
        misalign: cfg.misalign,
        ..SyntheticConfig::default()
    };
    if !cfg.misalign.is_none() {
        crate::warn!(
            "synthetic eye 1 misaligned on purpose: {} px down, {}° turned (--synthetic-misalign)",
            cfg.misalign.dy,
            cfg.misalign.rotation_deg
        );
    }
    let (rig, cams) = SyntheticRig::start(&syn, faults.clone()).map_err(|e| format!("synthetic camera: {e}"))?;
    let eyes: Vec<Box<dyn Camera>> =
        cams.into_iter().take(if cfg.mono { 1 } else { 2 }).map(|c| Box::new(c) as Box<dyn Camera>).collect();
    Ok(Cameras {
        eyes,
        request_depth: crate::pipeline::SYNTHETIC_REQUEST_DEPTH,
        sync: "synthetic (both eyes on one capture tick)".into(),
        shared_clock: true,
        keepalive: Some(Box::new(rig)),
    })
}

// --- camera selection: libcamera or synthetic (see camera::select for the rules) ---
#[cfg(feature = "libcamera")]
mod libcamera_cameras {
    use std::rc::Rc;

    use super::Cameras;
    use crate::camera::Camera;
    use crate::camera::libcamera::{EyeOptions, Libcamera, LibcameraEye, REQUEST_DEPTH};
    use crate::camera::select::Found;
    use crate::camera::sync::{self, Plan};
    use crate::config::Config;

    /// Start libcamera and list its cameras.
    pub fn probe() -> (Option<Rc<Libcamera>>, Found) {
        match Libcamera::start() {
            Ok(lib) => {
                let listed = lib.cameras();
                let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
                crate::info!("libcamera cameras: {ids:?}");
                (Some(lib), Some(Ok(listed)))
            }
            Err(e) => (None, Some(Err(e))),
        }
    }

    pub fn open(lib: Rc<Libcamera>, ids: &[String], cfg: &Config, fps: u32) -> Result<Cameras, String> {
        let offers: Vec<bool> = ids.iter().map(|id| lib.offers(id, "SyncMode")).collect();
        let plan = sync::plan(cfg.sync, &offers);
        crate::info!("camera sync: {}", sync::describe(&plan));
        let mut eyes: Vec<Box<dyn Camera>> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let role = match &plan {
                Plan::Hardware { roles } => roles.get(i).copied(),
                Plan::Software(_) => None,
            };
            let opts = EyeOptions { sensor_mode: cfg.sensor_mode, sync: role };
            let cam = LibcameraEye::open(lib.clone(), i as u8, id, cfg.size, fps, opts)
                .map_err(|e| format!("eye {i}: camera {id:?}: {e}"))?;
            eyes.push(Box::new(cam));
        }
        Ok(Cameras {
            eyes,
            request_depth: REQUEST_DEPTH,
            sync: sync::describe(&plan),
            shared_clock: false,
            keepalive: Some(Box::new(lib)),
        })
    }
}

pub fn open_cameras(cfg: &Config, fps: u32, faults: &SharedFaults) -> Result<Cameras, String> {
    let wants_libcamera = cfg.camera != CameraChoice::Synthetic;
    #[cfg(feature = "libcamera")]
    let (lib, found) = if wants_libcamera { libcamera_cameras::probe() } else { (None, None) };
    #[cfg(not(feature = "libcamera"))]
    let found: select::Found = {
        let _ = wants_libcamera; // nothing to ask: this build has no libcamera
        None
    };
    match select::choose(cfg.camera, found, &cfg.cameras, cfg.mono)? {
        Backend::Synthetic { fallback } => {
            if let Some(why) = fallback {
                crate::info!("camera auto: {why}; using the synthetic stereo camera");
            }
            synthetic(cfg, fps, faults)
        }
        #[cfg(feature = "libcamera")]
        Backend::Libcamera { ids } => {
            libcamera_cameras::open(lib.expect("libcamera started when it found cameras"), &ids, cfg, fps)
        }
        #[cfg(not(feature = "libcamera"))]
        Backend::Libcamera { .. } => unreachable!("select::choose never picks libcamera in a build without it"),
    }
}
// --- end camera selection ---

/// Each camera with its encoder, as a pipeline, and what the controller needs of each eye: its
/// crop geometry and encoder settings. The cameras' shared parts are left in `cams`.
pub fn open_eyes(
    cfg: &Config,
    cams: &mut Cameras,
    bitrates: [u32; 2],
    fps: u32,
    faults: &SharedFaults,
    now: u64,
) -> Result<(Vec<Pipeline>, Vec<EyeSetup>), String> {
    let (mut pipelines, mut setup) = (Vec::new(), Vec::new());
    for (i, cam) in std::mem::take(&mut cams.eyes).into_iter().enumerate() {
        let info = cam.info().clone();
        let enc_cfg = EncoderConfig {
            width: info.output.w,
            height: info.output.h,
            fps,
            bitrate_bps: bitrates[i.min(1)],
            gop_frames: gop_frames(cfg.gop_seconds, fps),
        };
        let encoder = open_encoder(cfg, i as u8, enc_cfg, faults)?;
        crate::info!(
            "eye {i}: camera {} sensor {}x{} → {} @ {} fps, encoder {}",
            info.id,
            info.sensor.w,
            info.sensor.h,
            info.output,
            info.fps,
            encoder.name()
        );
        setup.push((Geometry::new(info.sensor, info.output, cfg.max_zoom, info.min_crop), enc_cfg));
        pipelines.push(Pipeline::new(i as u8, cam, encoder, cams.request_depth, now));
    }
    Ok((pipelines, setup))
}

// --- pieyes --list-cameras ---
/// What `pieyes --list-cameras` prints, or why it cannot (exit non-zero).
pub fn list_cameras(cfg: &Config) -> Result<String, String> {
    use crate::camera::listing::{self, Described};
    use crate::camera::select::Listed;
    if cfg.camera == CameraChoice::Synthetic {
        let cams: Vec<Described> = (0..2)
            .map(|i| Described {
                listed: Listed::new(&format!("synthetic:{i}"), Some("synthetic")),
                active_area: Some(crate::camera::Rect::new(0, 0, cfg.sensor.w, cfg.sensor.h)),
                modes: Vec::new(),
                note: Some(format!("the synthetic stereo camera: a {} scene (--sensor)", cfg.sensor)),
            })
            .collect();
        let eyes = Ok(cams.iter().take(if cfg.mono { 1 } else { 2 }).map(|c| c.listed.id.clone()).collect());
        let order: Vec<Listed> = cams.iter().map(|c| c.listed.clone()).collect();
        return Ok(listing::format("Available cameras (--camera synthetic)", &cams, &order, &eyes, cfg.size, cfg.fps));
    }
    #[cfg(feature = "libcamera")]
    {
        let (lib, found) = libcamera_cameras::probe();
        let lib = match (lib, found) {
            (Some(lib), _) => lib,
            (None, Some(Err(e))) => return Err(format!("--list-cameras: {e}")),
            _ => return Err("--list-cameras: libcamera did not start".into()),
        };
        let cams = crate::camera::libcamera::describe(&lib);
        let listed = cams.iter().map(|c| c.listed.clone()).collect::<Vec<_>>();
        let order = select::eye_order(&listed);
        let eyes = match select::choose(CameraChoice::Libcamera, Some(Ok(listed)), &cfg.cameras, cfg.mono) {
            Ok(Backend::Libcamera { ids }) => Ok(ids),
            Ok(Backend::Synthetic { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        let header = format!("Available cameras (libcamera {})", lib.manager().version());
        Ok(listing::format(&header, &cams, &order, &eyes, cfg.size, cfg.fps))
    }
    #[cfg(not(feature = "libcamera"))]
    Err("--list-cameras: this pieyes was built without libcamera support, so it sees no real cameras \
         (build with --features libcamera, as `make deploy` does; `--camera synthetic --list-cameras` \
         lists the synthetic camera)"
        .into())
}
// --- end pieyes --list-cameras ---

// ---- encoders (--encoder auto|software|v4l2) ----

fn software(eye: u8, enc: EncoderConfig, cfg: &Config, faults: &SharedFaults) -> Result<Box<dyn Encoder>, String> {
    let cpus = &cfg.encoder_cpus;
    let allowed = crate::sys::thread::allowed_cpus().unwrap_or_default();
    let cpu = cpus.cpu_for(eye, &allowed);
    let threads = cfg.encoder_threads.resolve(allowed.len(), if cfg.mono { 1 } else { 2 });
    match (cpu, cpus) {
        (Some(c), _) if !allowed.contains(&c) => {
            return Err(format!("--encoder-cpus: CPU {c} is not one pieyes may use ({allowed:?})"));
        }
        (Some(c), _) => crate::info!("eye {eye}: software encoder on CPU {c} (--encoder-cpus)"),
        (None, EncoderCpus::Auto) => {
            crate::info!("eye {eye}: software encoder unpinned (--encoder-cpus auto: {} CPU)", allowed.len())
        }
        (None, _) => {}
    }
    if threads > 1 {
        crate::info!(
            "eye {eye}: {threads} slices per picture on OpenH264's {threads} threads (--encoder-threads; one pool for both eyes)"
        );
    }
    if !cfg.deblock {
        crate::info!("eye {eye}: deblocking off (--deblock off)");
    }
    if cfg.small_keyframes {
        crate::info!("eye {eye}: keyframes held to 2 mean frames (--keyframe-size small)");
    }
    let tuning = Tuning { threads, deblock: cfg.deblock, small_idr: cfg.small_keyframes };
    let e = SoftwareEncoder::start(eye, enc, cpu, tuning, faults.clone()).map_err(|e| format!("encoder: {e}"))?;
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
            software(eye, enc, cfg, faults)
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
                        software(eye, enc, cfg, faults)
                    }
                }
            }
            Err(why) => {
                crate::info!("eye {eye}: encoder auto: software (OpenH264): {why}");
                software(eye, enc, cfg, faults)
            }
        },
    }
}

// ---- the transport (--tls, --tls-cert, --tls-key) ----

/// What the port speaks, and the certificate HTTPS is served with: the user's own, or the one
/// kept beside the state (made on first start). Its SHA-256 fingerprint is logged, so a user
/// can compare it with what the browser shows before trusting it.
pub fn transport(cfg: &Config, bound: std::net::SocketAddr) -> Result<crate::transport::Policy, String> {
    use crate::transport::{Policy, TlsMode, cert};
    if cfg.tls == TlsMode::Off {
        return Ok(Policy::default());
    }
    let id = match &cfg.tls_files {
        Some((c, k)) => {
            let id = cert::load(c, k).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
            crate::info!("tls: certificate {}", c.display());
            id
        }
        None => {
            let host = crate::access::machine_hostname();
            let mut names: Vec<String> = Vec::new();
            if !host.is_empty() && rustls::pki_types::ServerName::try_from(host.as_str()).is_ok() {
                names.push(host.clone());
                names.push(format!("{host}.local"));
            }
            names.push("localhost".into());
            let addresses = crate::sys::socket::local_addresses();
            let (id, origin) = cert::load_or_make(&cfg.state, &names, &addresses)?;
            let (path, _) = cert::paths_beside(&cfg.state);
            match origin {
                cert::Origin::Kept => crate::info!("tls: certificate {} (kept from an earlier start)", path.display()),
                cert::Origin::Made => crate::info!(
                    "tls: made a self-signed certificate {} for {} and {addresses:?}",
                    path.display(),
                    names.join(", ")
                ),
                cert::Origin::Renewed(why) => crate::warn!(
                    "tls: made a new self-signed certificate {} ({why}); browsers will ask to proceed again",
                    path.display()
                ),
            }
            id
        }
    };
    crate::info!("tls: certificate SHA-256 fingerprint {}", id.fingerprint());
    let how = if cfg.tls == TlsMode::Only { "only https" } else { "https and http" };
    crate::info!("tls: {how} on port {}", bound.port());
    Ok(Policy { tls: Some(cert::server_config(&id)?), tls_only: cfg.tls == TlsMode::Only })
}
