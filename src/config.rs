//! Command-line flags → a validated `Config`. Hand-rolled (no parser crate): a dozen flags,
//! each `--name value` or `--name=value`, every mistake a one-line message and exit status 2.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::camera::Size;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraChoice {
    /// Real cameras when found, else the synthetic stereo camera.
    Auto,
    Synthetic,
    Libcamera,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderChoice {
    /// A V4L2 memory-to-memory H.264 encoder when one exists (Pi 4), else software (Pi 5).
    Auto,
    Software,
    V4l2,
}

/// Where the software encoders' threads run (`--encoder-cpus`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncoderCpus {
    /// Each eye's encoder on its own CPU, the last ones this process may use, when it may use
    /// two or more: two long encodes (keyframes) then never share one core while another idles.
    Auto,
    /// Wherever the scheduler puts them.
    Unpinned,
    /// Eye 0 on the first CPU, eye 1 on the second (or also the first, when only one is given).
    List(Vec<usize>),
}

impl EncoderCpus {
    /// The CPU eye `eye`'s encoder is kept on, given the CPUs this process may use (in order).
    pub fn cpu_for(&self, eye: u8, allowed: &[usize]) -> Option<usize> {
        let eye = eye as usize;
        match self {
            EncoderCpus::Auto if allowed.len() >= 2 => {
                allowed.get(allowed.len() - 1 - eye.min(allowed.len() - 1)).copied()
            }
            EncoderCpus::Auto | EncoderCpus::Unpinned => None,
            EncoderCpus::List(cpus) => cpus.get(eye.min(cpus.len().saturating_sub(1))).copied(),
        }
    }
}

/// `--encoder-threads`: slices per picture, encoded in parallel by OpenH264's thread pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderThreads {
    /// One thread per eye while there are no more CPUs than eyes (the eyes, each on its own
    /// CPU, already keep them busy, and slices cost CPU of their own);
    /// with more CPUs than eyes, as many as there are CPUs (at most OpenH264's 4). The pool is
    /// one per process and serves both eyes: on a Pi 5, 4 slices per eye, the two eyes' 8
    /// slices spread over its 4 cores.
    Auto,
    Fixed(u16),
}

impl EncoderThreads {
    /// Threads (= slices per picture) given the CPUs this process may use and the eyes.
    pub fn resolve(self, allowed_cpus: usize, eyes: usize) -> u16 {
        let max = crate::encoder::openh264_api::MAX_THREADS;
        match self {
            EncoderThreads::Auto if allowed_cpus > eyes.max(1) => allowed_cpus.min(max as usize) as u16,
            EncoderThreads::Auto => 1,
            EncoderThreads::Fixed(n) => n.clamp(1, max),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub camera: CameraChoice,
    /// Which real cameras, by index or id (`--cameras 0,1`); empty: the first two.
    pub cameras: Vec<String>,
    /// One eye only (a single camera).
    pub mono: bool,
    /// `--sensor-mode WxH`: the sensor mode by hand (else `camera::modes` chooses).
    pub sensor_mode: Option<Size>,
    /// `--sync auto|off`: hardware camera sync when both cameras offer it.
    pub sync: crate::camera::sync::SyncChoice,
    pub encoder: EncoderChoice,
    pub encoder_cpus: EncoderCpus,
    pub encoder_threads: EncoderThreads,
    /// `--deblock on|off`: the software encoder's in-loop deblocking filter.
    pub deblock: bool,
    /// `--keyframe-size full|small`: the software encoder's IDRs held to their bit budget.
    pub small_keyframes: bool,
    /// Injected faults (tests).
    pub faults: Vec<crate::inject::Fault>,
    /// Output size of each eye.
    pub size: Size,
    /// Virtual sensor size of the synthetic camera.
    pub sensor: Size,
    /// `--synthetic-misalign DY[,DEG]`: the synthetic eye 1 mounted off (tests of `calibrate`).
    pub misalign: crate::camera::scene::Misalign,
    pub fps: u32,
    pub bitrate: u32,
    /// Seconds between periodic IDRs.
    pub gop_seconds: f64,
    pub control: PathBuf,
    pub www: Option<PathBuf>,
    /// Saved calibration and default view.
    pub state: PathBuf,
    pub max_zoom: f64,
    /// Browsers need this (`auth <token>` on `/control`) to steer; None: anyone who can
    /// reach the port may steer.
    pub token: Option<String>,
    /// What the token guards: steering only, or watching too.
    pub token_scope: crate::access::TokenScope,
    /// `--allowed-hosts`: names besides this machine's own that requests may use in `Host`;
    /// None: `any` (no check).
    pub allowed_hosts: Option<Vec<String>>,
    /// Group owning the control socket (mode 0660).
    pub control_group: Option<String>,
    pub timeouts: crate::limits::Timeouts,
    /// A video viewer that takes no data for this long is disconnected.
    pub viewer_timeout_us: u64,
    /// `--tls`: HTTPS beside HTTP on the same port, off, or HTTPS only.
    pub tls: crate::transport::TlsMode,
    /// `--tls-cert`, `--tls-key`: the user's own certificate; None: one made and kept beside the state.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Flags given on the command line (they win over the state file).
    pub explicit: Vec<&'static str>,
}

/// The control socket without `--control`: `$PIEYES_CONTROL`, else `$XDG_RUNTIME_DIR/pieyes.sock`,
/// else `/tmp/pieyes.sock` (the daemon and `pieyes ctl` agree on it).
pub fn default_control_path() -> PathBuf {
    control_path_from(std::env::var_os("PIEYES_CONTROL"), std::env::var_os("XDG_RUNTIME_DIR"))
}

fn control_path_from(explicit: Option<std::ffi::OsString>, runtime_dir: Option<std::ffi::OsString>) -> PathBuf {
    match (explicit, runtime_dir) {
        (Some(p), _) if !p.is_empty() => PathBuf::from(p),
        (_, Some(d)) if !d.is_empty() => PathBuf::from(d).join("pieyes.sock"),
        _ => PathBuf::from("/tmp/pieyes.sock"),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8000".parse().unwrap(),
            camera: CameraChoice::Auto,
            cameras: Vec::new(),
            mono: false,
            sensor_mode: None,
            sync: crate::camera::sync::SyncChoice::Auto,
            encoder: EncoderChoice::Auto,
            encoder_cpus: EncoderCpus::Auto,
            encoder_threads: EncoderThreads::Auto,
            deblock: true,
            small_keyframes: false,
            faults: Vec::new(),
            size: Size { w: 960, h: 1080 },
            sensor: Size { w: 2304, h: 1296 },
            misalign: crate::camera::scene::Misalign { dy: 0, rotation_deg: 0.0 },
            fps: 30,
            bitrate: 3_000_000,
            gop_seconds: 2.0,
            control: default_control_path(),
            www: None,
            state: crate::control::state_file::default_path(),
            max_zoom: crate::eyes::geometry::DEFAULT_MAX_ZOOM,
            token: None,
            token_scope: crate::access::TokenScope::Steer,
            allowed_hosts: Some(Vec::new()),
            control_group: None,
            timeouts: crate::limits::Timeouts::default(),
            viewer_timeout_us: crate::stream::fanout::Limits::default().stuck_us,
            tls: crate::transport::TlsMode::Auto,
            tls_files: None,
            explicit: Vec::new(),
        }
    }
}

impl Config {
    pub fn gop_frames(&self) -> u32 {
        gop_frames(self.gop_seconds, self.fps)
    }

    pub fn is_explicit(&self, flag: &str) -> bool {
        self.explicit.contains(&flag)
    }
}

/// A GOP of `seconds` at `fps`, in frames (at least 1).
pub fn gop_frames(seconds: f64, fps: u32) -> u32 {
    ((seconds * fps as f64).round() as u32).max(1)
}

pub const USAGE: &str = "\
pieyes — two low-latency H.264 eyes for a robot

usage:
  pieyes [options]            run the daemon
  pieyes ctl [--control PATH] <command…>
                              send one control command to a running daemon, print the reply
                              (`ctl watch`: then every event until Ctrl-C; `ctl --help`: more)
  pieyes record [--addr HOST:PORT] --eye N --seconds S --out FILE
                              save S seconds of eye N's H.264 stream (Annex-B), print a JSON summary
  pieyes selftest v4l2|dmabuf check the V4L2 encoder / dma-buf paths on this machine's kernel
  pieyes --help | --version

options:
  --listen ADDR:PORT    HTTP/WebSocket address (default 127.0.0.1:8000)
  --camera KIND         auto | synthetic | libcamera (default auto: libcamera cameras if found,
                        else the synthetic stereo camera)
  --cameras A,B         which libcamera cameras are eye 0 and eye 1: index (as --list-cameras
                        numbers them), id, model or a unique part of an id (default: 0,1)
  --mono                one eye only (one camera)
  --list-cameras        list the cameras (index, id, model, sensor modes, crop area, eye) and exit
  --sensor-mode WxH     the sensor mode (default: the widest field of view at --fps)
  --sync MODE           auto | off (default auto: rpi::SyncMode when both cameras offer it,
                        else software pairing by timestamp)
  --encoder KIND        auto | software | v4l2 (default auto: a V4L2 H.264 encoder if the
                        machine has one, as a Pi 4 does; else software, as on a Pi 5)
  --encoder-cpus CPUS   auto | none | A[,B]: the CPU each eye's software encoder runs on
                        (default auto: the last two CPUs pieyes may use, one per eye); with
                        --encoder-threads > 1 it places each eye's own thread, the slice threads
                        run on any CPU pieyes may use
  --encoder-threads N   auto | 1..4: each picture cut into N slices that the software encoder's
                        N threads (one pool, shared by both eyes) encode in parallel (default
                        auto: 1 while pieyes may use no more CPUs than it has eyes, else one per
                        CPU, at most 4: 4 on a Pi 5)
  --deblock on|off      the software encoder's in-loop deblocking filter (default on); off
                        saves about a quarter of its CPU per frame and some of every viewer's
                        decode time, for blockier pictures at low bitrates
  --keyframe-size full|small
                        the software encoder's keyframes (IDRs): full (default) as sharp as
                        OpenH264 makes them, ~10x a P-frame; small: each within 2 mean frames
                        (a 3-frame VBV: no burst on a slow link), blurred until the next few
                        P-frames restore the detail
  --size WxH            output size of each eye (default 960x1080)
  --sensor WxH          synthetic sensor size (default 2304x1296)
  --synthetic-misalign DY[,DEG]
                        the synthetic eye 1 sees the scene DY sensor pixels lower and turned
                        by DEG degrees (clockwise), as a misaligned camera would (tests of
                        `calibrate`; default 0,0)
  --fps N               frames per second, 1..120 (default 30)
  --bitrate BPS         H.264 bitrate per eye (default 3000000)
  --gop SECONDS         time between periodic keyframes (default 2)
  --control PATH        control socket (default $PIEYES_CONTROL, else $XDG_RUNTIME_DIR/pieyes.sock,
                        else /tmp/pieyes.sock)
  --state PATH          saved calibration and default view (default $STATE_DIRECTORY/state.conf,
                        else $XDG_STATE_HOME/pieyes/state.conf, else ~/.local/state/pieyes/state.conf)
  --max-zoom Z          largest zoom, 1..64 (default 8)
  --token TOKEN         browsers must send `auth TOKEN` on /control to steer (view-only otherwise);
                        visible to other local users in /proc: prefer --token-file
  --token-file PATH     the same, the token read from a file (first line)
  --token-scope SCOPE   steer | view (default steer): with view, watching the cameras and
                        reading /status and /metrics need the token too (?token=… or
                        Authorization: Bearer …)
  --allowed-hosts NAMES extra host names browsers may use to reach pieyes, comma-separated
                        (IP addresses, localhost, this machine's hostname and hostname.local
                        always work); `any` turns the Host check off (behind a proxy)
  --tls MODE            auto | off | only: HTTPS on the same port as HTTP (default auto; the
                        first byte of a connection tells them apart), no HTTPS, or HTTPS only
  --tls-cert PATH       the certificate (PEM) HTTPS is served with, with --tls-key PATH (its
                        private key); default: a self-signed one made on first start for this
                        machine's names and addresses, kept beside the state file
  --control-group NAME  group of the control socket (mode 0660; default: the daemon's group)
  --header-timeout S    a request head must arrive within S seconds, else 408 (default 10)
  --idle-timeout S      idle keep-alive HTTP connections close after S seconds (default 60)
  --ping-interval S     quiet WebSockets are pinged after S seconds and closed S later (default 15)
  --viewer-timeout S    a video viewer that takes no data for S seconds is dropped (default 10;
                        one that falls behind by 12 frames is skipped to the next keyframe first)
  --inject FAULTS       test faults: KIND[=EYE]@START[+DURATION],… with KIND camera-stall,
                        camera-error, encoder-error, encoder-hang, state-full or state-slow
                        (seconds)
  --www DIR             serve the viewer from DIR instead of the built-in copy

environment:
  PIEYES_LOG            error | warn | info | debug (default info)
  PIEYES_CONTROL        the control socket, for the daemon and `pieyes ctl` (--control wins)
";

/// What the daemon's command line asks for (the subcommands are `cli`'s).
#[derive(Debug, PartialEq)]
pub enum Invocation {
    Run(Box<Config>),
    /// `--list-cameras`, with the options that decide what it shows.
    ListCameras(Box<Config>),
    Help,
    Version,
}

fn parse_size(flag: &str, v: &str) -> Result<Size, String> {
    let (w, h) = v.split_once(['x', 'X']).ok_or(format!("{flag}: expected WxH, got {v:?}"))?;
    let (w, h): (u32, u32) = (
        w.parse().map_err(|_| format!("{flag}: bad width {w:?}"))?,
        h.parse().map_err(|_| format!("{flag}: bad height {h:?}"))?,
    );
    if !(64..=4096).contains(&w) || !(64..=4096).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(format!("{flag}: {w}x{h} must be even and within 64..4096"));
    }
    Ok(Size { w, h })
}

fn parse_misalign(v: &str) -> Result<crate::camera::scene::Misalign, String> {
    let (dy, deg) = v.split_once(',').unwrap_or((v, "0"));
    let dy: i32 = parse_num("--synthetic-misalign", dy.trim(), -500, 500)?;
    let rotation_deg: f64 = parse_num("--synthetic-misalign", deg.trim(), -10.0, 10.0)?;
    Ok(crate::camera::scene::Misalign { dy, rotation_deg })
}

fn parse_cpus(v: &str) -> Result<EncoderCpus, String> {
    match v {
        "auto" => Ok(EncoderCpus::Auto),
        "none" => Ok(EncoderCpus::Unpinned),
        _ => {
            let cpus: Result<Vec<usize>, _> = v.split(',').map(|c| c.trim().parse::<usize>()).collect();
            match cpus {
                Ok(c) if (1..=2).contains(&c.len()) && c.iter().all(|&n| n < 1024) => Ok(EncoderCpus::List(c)),
                _ => Err(format!("--encoder-cpus: expected auto, none or one or two CPU numbers, got {v:?}")),
            }
        }
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, String> {
    let n: T = v.parse().map_err(|_| format!("{flag}: not a number: {v:?}"))?;
    if n < lo || n > hi {
        return Err(format!("{flag}: {v} is outside {lo}..{hi}"));
    }
    Ok(n)
}

fn check_token(t: &str) -> Result<String, String> {
    if t.len() < 8 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be 8..256 printable characters without spaces".into());
    }
    Ok(t.to_string())
}

pub fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut cfg = Config::default();
    let mut list = false;
    let (mut tls_cert, mut tls_key) = (None, None);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--mono" => {
                cfg.mono = true;
                i += 1;
                continue;
            }
            "--list-cameras" => {
                list = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().ok_or(format!("{flag} needs a value"))?
            }
        };
        const FLAGS: &[&str] = &[
            "--listen",
            "--camera",
            "--size",
            "--sensor",
            "--fps",
            "--bitrate",
            "--gop",
            "--control",
            "--www",
            "--state",
            "--max-zoom",
            "--token",
            "--header-timeout",
            "--idle-timeout",
            "--ping-interval",
            "--token-file",
            "--control-group",
            "--cameras",
            "--sensor-mode",
            "--sync",
            "--encoder",
            "--encoder-cpus",
            "--inject",
            "--viewer-timeout",
            "--token-scope",
            "--allowed-hosts",
            "--tls",
            "--tls-cert",
            "--tls-key",
        ];
        if let Some(f) = FLAGS.iter().find(|f| **f == flag) {
            cfg.explicit.push(f);
        }
        match flag {
            "--listen" => {
                cfg.listen = value.parse().map_err(|_| format!("--listen: expected ADDR:PORT, got {value:?}"))?
            }
            "--camera" => {
                cfg.camera = match value.as_str() {
                    "auto" => CameraChoice::Auto,
                    "synthetic" => CameraChoice::Synthetic,
                    "libcamera" => CameraChoice::Libcamera,
                    _ => {
                        return Err(format!("--camera: expected auto, synthetic or libcamera, got {value:?}"));
                    }
                }
            }
            "--cameras" => {
                cfg.cameras = value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                if cfg.cameras.is_empty() || cfg.cameras.len() > 2 {
                    return Err(format!("--cameras: one or two camera indices or ids, got {value:?}"));
                }
            }
            "--sensor-mode" => cfg.sensor_mode = Some(crate::camera::modes::parse(&value)?),
            "--sync" => cfg.sync = crate::camera::sync::SyncChoice::parse(&value)?,
            "--encoder" => {
                cfg.encoder = match value.as_str() {
                    "auto" => EncoderChoice::Auto,
                    "software" => EncoderChoice::Software,
                    "v4l2" => EncoderChoice::V4l2,
                    _ => return Err(format!("--encoder: expected auto, software or v4l2, got {value:?}")),
                }
            }
            "--encoder-cpus" => cfg.encoder_cpus = parse_cpus(&value)?,
            "--encoder-threads" => {
                cfg.encoder_threads = match value.as_str() {
                    "auto" => EncoderThreads::Auto,
                    _ => EncoderThreads::Fixed(parse_num(flag, &value, 1, crate::encoder::openh264_api::MAX_THREADS)?),
                }
            }
            "--deblock" => {
                cfg.deblock = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--deblock: expected on or off, got {value:?}")),
                }
            }
            "--keyframe-size" => {
                cfg.small_keyframes = match value.as_str() {
                    "full" => false,
                    "small" => true,
                    _ => return Err(format!("--keyframe-size: expected full or small, got {value:?}")),
                }
            }
            "--viewer-timeout" => cfg.viewer_timeout_us = (parse_num(flag, &value, 0.5, 3600.0)? * 1e6) as u64,
            "--inject" => cfg.faults.extend(crate::inject::Faults::parse(&value)?),
            "--size" => cfg.size = parse_size(flag, &value)?,
            "--sensor" => cfg.sensor = parse_size(flag, &value)?,
            "--synthetic-misalign" => cfg.misalign = parse_misalign(&value)?,
            "--fps" => cfg.fps = parse_num(flag, &value, 1, 120)?,
            "--bitrate" => cfg.bitrate = parse_num(flag, &value, 50_000, 50_000_000)?,
            "--gop" => cfg.gop_seconds = parse_num(flag, &value, 0.1, 60.0)?,
            "--control" => cfg.control = PathBuf::from(value),
            "--www" => cfg.www = Some(PathBuf::from(value)),
            "--state" => cfg.state = PathBuf::from(value),
            "--max-zoom" => cfg.max_zoom = parse_num(flag, &value, 1.0, 64.0)?,
            "--token" => {
                crate::warn!("--token is readable by every local user in /proc; --token-file keeps it private");
                cfg.token = Some(check_token(&value)?)
            }
            "--token-file" => {
                let text = std::fs::read_to_string(&value).map_err(|e| format!("--token-file {value}: {e}"))?;
                cfg.token = Some(check_token(text.lines().next().unwrap_or("").trim())?);
            }
            "--token-scope" => {
                cfg.token_scope = match value.as_str() {
                    "steer" => crate::access::TokenScope::Steer,
                    "view" => crate::access::TokenScope::View,
                    _ => return Err(format!("--token-scope: expected steer or view, got {value:?}")),
                }
            }
            "--allowed-hosts" => {
                cfg.allowed_hosts = if value == "any" {
                    None
                } else {
                    let names: Vec<String> =
                        value.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
                    if names.iter().any(|n| n.contains(['/', ' ', ':']) || n.len() > 253) {
                        return Err(format!(
                            "--allowed-hosts: host names without ports, comma-separated, got {value:?}"
                        ));
                    }
                    Some(names)
                }
            }
            "--tls" => {
                cfg.tls = match value.as_str() {
                    "auto" => crate::transport::TlsMode::Auto,
                    "off" => crate::transport::TlsMode::Off,
                    "only" => crate::transport::TlsMode::Only,
                    _ => return Err(format!("--tls: expected auto, off or only, got {value:?}")),
                }
            }
            "--tls-cert" => tls_cert = Some(PathBuf::from(value)),
            "--tls-key" => tls_key = Some(PathBuf::from(value)),
            "--control-group" => cfg.control_group = Some(value),
            "--header-timeout" => cfg.timeouts.header_us = (parse_num(flag, &value, 0.1, 3600.0)? * 1e6) as u64,
            "--idle-timeout" => cfg.timeouts.idle_us = (parse_num(flag, &value, 0.1, 86400.0)? * 1e6) as u64,
            "--ping-interval" => cfg.timeouts.ping_us = (parse_num(flag, &value, 0.1, 3600.0)? * 1e6) as u64,
            _ => return Err(format!("unknown option {flag:?}")),
        }
        i += 1;
    }
    cfg.tls_files = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if cfg.token_scope == crate::access::TokenScope::View && cfg.token.is_none() {
        return Err("--token-scope view needs --token or --token-file".into());
    }
    if cfg.size.w > cfg.sensor.w || cfg.size.h > cfg.sensor.h {
        // Allowed (the ISP upscales), but say so: it is usually a typo.
        crate::warn!("output {} is larger than the sensor {}: the picture will be upscaled", cfg.size, cfg.sensor);
    }
    if list {
        return Ok(Invocation::ListCameras(Box::new(cfg)));
    }
    Ok(Invocation::Run(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sensor_mode_sync_and_list_cameras() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let Ok(Invocation::Run(c)) = a(&["--sensor-mode", "2304x1296", "--sync", "off"]) else { panic!() };
        assert_eq!((c.sensor_mode, c.sync), (Some(Size { w: 2304, h: 1296 }), crate::camera::sync::SyncChoice::Off));
        assert!(a(&["--sync", "on"]).unwrap_err().contains("auto or off"));
        assert!(a(&["--sensor-mode", "big"]).unwrap_err().contains("WxH"));
        let Ok(Invocation::ListCameras(c)) = a(&["--list-cameras", "--cameras", "imx708"]) else { panic!() };
        assert_eq!(c.cameras, ["imx708"]);
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(parse_args(&[]), Ok(Invocation::Run(Box::default())));
        let Ok(Invocation::Run(c)) =
            parse_args(&args("--listen 127.0.0.1:0 --size=320x240 --fps 15 --camera synthetic --gop 1.5"))
        else {
            panic!()
        };
        assert_eq!(
            (c.size, c.fps, c.camera, c.gop_frames()),
            (Size { w: 320, h: 240 }, 15, CameraChoice::Synthetic, 23)
        );
        assert_eq!(c.listen.port(), 0);
        assert!(c.is_explicit("--fps") && !c.is_explicit("--bitrate"));
        assert_eq!(parse_args(&args("--help")), Ok(Invocation::Help));
        assert_eq!(parse_args(&args("-V")), Ok(Invocation::Version));
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse_args(&args("--token short")).is_err());
        let Ok(Invocation::Run(c)) = parse_args(&args("--tls only --tls-cert c.pem --tls-key k.pem")) else {
            panic!("TLS flags")
        };
        assert_eq!((c.tls, c.tls_files), (crate::transport::TlsMode::Only, Some(("c.pem".into(), "k.pem".into()))));
        assert!(parse_args(&args("--tls-cert c.pem")).unwrap_err().contains("go together"));
        assert!(parse_args(&args("--tls maybe")).is_err());
        assert!(parse_args(&args("--token-file /nonexistent/file")).is_err());
        for bad in [
            "--fps 0",
            "--fps",
            "--size 321x240",
            "--size 10x10",
            "--size big",
            "--camera usb",
            "--nope 1",
            "--listen here",
            "--bitrate 1",
            "--encoder-cpus 1,2,3",
            "--encoder-cpus -1",
            "--encoder-cpus x",
            "--encoder-threads 0",
            "--encoder-threads 5",
            "--encoder-threads many",
            "--deblock no",
            "--deblock",
            "--keyframe-size medium",
            "--keyframe-size",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoder_threads() {
        let threads = |s: &str| match parse_args(&args(&format!("--encoder-threads {s}"))) {
            Ok(Invocation::Run(c)) => c.encoder_threads,
            other => panic!("{other:?}"),
        };
        assert_eq!(threads("auto"), EncoderThreads::Auto);
        assert_eq!(Config::default().encoder_threads, EncoderThreads::Auto);
        // auto, two eyes: 1 until there are more CPUs than eyes, then every CPU (the pool
        // serves both eyes), at most 4; one eye: slices from 2 CPUs on.
        assert_eq!([0, 1, 2, 3, 4, 8].map(|n| EncoderThreads::Auto.resolve(n, 2)), [1, 1, 1, 3, 4, 4]);
        assert_eq!([1, 2, 4].map(|n| EncoderThreads::Auto.resolve(n, 1)), [1, 2, 4]);
        assert_eq!(threads("3").resolve(2, 2), 3, "asked for: kept even beyond the CPUs");
    }

    #[test]
    fn keyframes_are_full_unless_asked_small() {
        let small = |s: &str| match parse_args(&args(s)) {
            Ok(Invocation::Run(c)) => c.small_keyframes,
            other => panic!("{other:?}"),
        };
        assert_eq!([small(""), small("--keyframe-size full"), small("--keyframe-size small")], [false, false, true]);
    }

    #[test]
    fn deblock_is_on_unless_turned_off() {
        let deblock = |s: &str| match parse_args(&args(s)) {
            Ok(Invocation::Run(c)) => c.deblock,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            [deblock(""), deblock("--deblock on"), deblock("--deblock off"), deblock("--deblock=off")],
            [true, true, false, false]
        );
    }

    #[test]
    fn encoder_cpus() {
        let cpus = |s: &str| match parse_args(&args(&format!("--encoder-cpus {s}"))) {
            Ok(Invocation::Run(c)) => c.encoder_cpus,
            other => panic!("{other:?}"),
        };
        let four = [0, 1, 2, 3];
        // auto: the last CPUs, one per eye; nothing to choose with a single CPU.
        assert_eq!((cpus("auto").cpu_for(0, &four), cpus("auto").cpu_for(1, &four)), (Some(3), Some(2)));
        assert_eq!((EncoderCpus::Auto.cpu_for(0, &[4, 6]), EncoderCpus::Auto.cpu_for(1, &[4, 6])), (Some(6), Some(4)));
        assert_eq!(EncoderCpus::Auto.cpu_for(0, &[5]), None);
        assert_eq!(cpus("none").cpu_for(0, &four), None);
        assert_eq!((cpus("2,0").cpu_for(0, &four), cpus("2,0").cpu_for(1, &four)), (Some(2), Some(0)));
        assert_eq!(cpus("1").cpu_for(1, &four), Some(1), "one CPU given: both eyes on it");
    }

    #[test]
    fn synthetic_misalignment() {
        use crate::camera::scene::Misalign;
        let m = |s: &str| match parse_args(&args(&format!("--synthetic-misalign {s}"))) {
            Ok(Invocation::Run(c)) => Ok(c.misalign),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(m("30"), Ok(Misalign { dy: 30, rotation_deg: 0.0 }));
        assert_eq!(m("-12,0.5"), Ok(Misalign { dy: -12, rotation_deg: 0.5 }));
        assert!(m("9999").is_err() && m("1,45").is_err() && m("x").is_err());
        assert!(Config::default().misalign.is_none());
    }

    #[test]
    fn the_control_socket_comes_from_pieyes_control_then_the_runtime_dir() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(control_path_from(os("/x/c.sock"), os("/run/user/1")), PathBuf::from("/x/c.sock"));
        assert_eq!(control_path_from(os(""), os("/run/user/1")), PathBuf::from("/run/user/1/pieyes.sock"));
        assert_eq!(control_path_from(None, os("")), PathBuf::from("/tmp/pieyes.sock"));
    }
}
