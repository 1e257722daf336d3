//! The daemon: one thread, one `poll()` over every fd — signals, a housekeeping timer, the
//! HTTP listener and its clients, the Unix control listener and its clients, each camera's
//! completion fd and each encoder's. Handlers move bytes between sockets and the sans-IO state
//! machines; work that cannot run here (encoding, capture) lives on threads that ring eventfds.

mod client;
mod commands;
mod connections;
mod eye;
mod routes;
mod setup;

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::camera::pairing::Pairing;
use crate::config::{Config, gop_frames};
use crate::control::state_file::{self, Loaded, SavedState};
use crate::encoder::EncoderConfig;
use crate::event_loop::{PollSet, Ready, Token};
use crate::eyes::geometry::{Geometry, Pose};
use crate::http::static_files::Source;
use crate::inject::{Faults, SharedFaults};
use crate::stream::fanout::Limits;
use crate::stream::wire::Packet;
use crate::sys::clock::monotonic_us;
use crate::sys::signals::ShutdownSignals;
use crate::sys::timer::Timer;
use crate::ws::frame::close;
use client::Client;
use eye::Eye;

const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How long shutdown waits for viewers to receive their close frames.
const SHUTDOWN_GRACE_US: u64 = 1_000_000;
/// After EMFILE/ENFILE on accept, stop accepting for this long instead of spinning.
const ACCEPT_BACKOFF_US: u64 = 200_000;

pub struct Daemon {
    cfg: Config,
    signals: ShutdownSignals,
    housekeeping: Timer,
    http: TcpListener,
    control: UnixListener,
    control_path: PathBuf,
    eyes: Vec<Eye>,
    /// Keeps the cameras' shared parts (the synthetic capture thread) alive.
    _keepalive: Option<Box<dyn std::any::Any>>,
    faults: SharedFaults,
    clients: HashMap<u64, Client>,
    next_client: u64,
    www: Source,
    fanout_limits: Limits,
    started_us: u64,
    stopping_deadline: Option<u64>,
    accept_paused_until: u64,
    packets: Vec<Arc<Packet>>,
    /// Current frame rate (the `fps` command changes it).
    fps: u32,
    paused: bool,
    /// Event lines for `watch` connections, sent after the current event is handled.
    pending_events: Vec<String>,
    /// Browsers need this to steer (see `--token`).
    token: Option<String>,
    /// Connections refused by the connection limits.
    refused: u64,
    /// The two eyes' frames paired by capture time, and how the cameras are synchronised.
    pairing: Pairing,
    sync: &'static str,
    /// Both eyes number their frames on one clock (see `setup::Cameras::shared_clock`).
    shared_clock: bool,
    /// systemd's notify socket, when run as a Type=notify service.
    notifier: Option<crate::sys::sd_notify::Notifier>,
}

/// Bind the control socket: refuse to take over a live daemon's socket, replace a stale one.
fn bind_control(path: &PathBuf, group: Option<&str>) -> Result<UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket; not touching it", path.display()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use by a running pieyes (or another program); not taking it over",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
        crate::info!("removed stale control socket {}", path.display());
    }
    let l = UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
    // Owner and group may steer; nobody else.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    if let Some(name) = group {
        let g = nix::unistd::Group::from_name(name)
            .map_err(|e| format!("--control-group {name}: {e}"))?
            .ok_or_else(|| format!("--control-group {name}: no such group"))?;
        nix::unistd::chown(path.as_path(), None, Some(g.gid))
            .map_err(|e| format!("chgrp {name} {}: {e}", path.display()))?;
    }
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

impl Daemon {
    pub fn new(cfg: Config) -> Result<Daemon, String> {
        // Before any thread exists, so every thread inherits the blocked mask.
        let signals = ShutdownSignals::install().map_err(|e| format!("signals: {e}"))?;
        let housekeeping = Timer::new(true).map_err(|e| e.to_string())?;
        housekeeping.set_periodic(HOUSEKEEPING).map_err(|e| e.to_string())?;

        let http = TcpListener::bind(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        http.set_nonblocking(true).map_err(|e| e.to_string())?;
        let bound = http.local_addr().map_err(|e| e.to_string())?;
        let control = bind_control(&cfg.control, cfg.control_group.as_deref())?;

        // Saved defaults; flags given on the command line win over them.
        let base = SavedState::defaults(cfg.fps, cfg.bitrate);
        let mut saved = match state_file::load(&cfg.state, base) {
            Loaded::Missing => {
                crate::info!("no saved state at {}: starting with defaults", cfg.state.display());
                base
            }
            Loaded::State(s) => {
                crate::info!("restored saved state from {}", cfg.state.display());
                s
            }
            Loaded::Unusable(why) => {
                crate::error!(
                    "state file {} is unusable ({why}): starting with defaults; the file is left as it is until the next save",
                    cfg.state.display()
                );
                base
            }
        };
        if cfg.is_explicit("--fps") {
            saved.fps = cfg.fps;
        }
        if cfg.is_explicit("--bitrate") {
            saved.eyes.iter_mut().for_each(|e| e.bitrate = cfg.bitrate);
        }
        let fps = saved.fps;

        let faults: SharedFaults = Arc::new(Faults { list: cfg.faults.clone(), origin_us: monotonic_us() });
        if !faults.is_empty() {
            crate::warn!("fault injection on: {:?}", faults.list);
        }
        let cams = setup::open_cameras(&cfg, fps, &faults)?;
        let mut eyes = Vec::new();
        for (i, cam) in cams.eyes.into_iter().enumerate() {
            let enc_cfg = EncoderConfig {
                width: cam.info().output.w,
                height: cam.info().output.h,
                fps,
                bitrate_bps: saved.eyes[i].bitrate,
                gop_frames: gop_frames(cfg.gop_seconds, fps),
            };
            let encoder = setup::open_encoder(&cfg, i as u8, enc_cfg, &faults)?;
            let info = cam.info();
            let geometry = Geometry::new(info.sensor, info.output, cfg.max_zoom, info.min_crop);
            crate::info!(
                "eye {i}: camera {} sensor {}x{} → {} @ {} fps, encoder {}",
                info.id,
                info.sensor.w,
                info.sensor.h,
                info.output,
                info.fps,
                encoder.name()
            );
            eyes.push(Eye::new(i as u8, cam, encoder, enc_cfg, cams.request_depth, geometry, Pose::default()));
        }
        let www = match &cfg.www {
            Some(d) => Source::Dir(d.clone()),
            None => Source::Embedded,
        };
        crate::info!("listening on http://{bound}/ (control socket {})", cfg.control.display());
        if !bound.ip().is_loopback() {
            crate::warn!("listening on {bound}: reachable from the network, not only this machine");
        }
        let fanout_limits = Limits { stuck_us: cfg.viewer_timeout_us, ..Limits::default() };
        let mut d = Daemon {
            control_path: cfg.control.clone(),
            cfg,
            signals,
            housekeeping,
            http,
            control,
            eyes,
            _keepalive: cams.keepalive,
            faults,
            clients: HashMap::new(),
            next_client: 1,
            www,
            fanout_limits,
            started_us: monotonic_us(),
            stopping_deadline: None,
            accept_paused_until: 0,
            packets: Vec::new(),
            fps,
            paused: false,
            pending_events: Vec::new(),
            token: None,
            refused: 0,
            pairing: Pairing::new(1_000_000 / fps.max(1) as u64),
            sync: cams.sync,
            shared_clock: cams.shared_clock,
            notifier: crate::sys::sd_notify::Notifier::from_env(),
        };
        d.token = d.cfg.token.clone();
        if d.token.is_some() {
            crate::info!("steering from browsers needs the token; without it they are view-only");
        }
        commands::apply_saved(&mut d, &saved);
        d.pending_events.clear();
        for e in &mut d.eyes {
            e.refill();
        }
        Ok(d)
    }

    pub fn run(mut self) -> Result<(), String> {
        let mut ready = Vec::with_capacity(64);
        let mut pollset = PollSet::default();
        if let Some(n) = &self.notifier {
            n.ready(&format!("streaming on http://{}/", self.http.local_addr().map_err(|e| e.to_string())?));
        }
        loop {
            let now = monotonic_us();
            if let Some(deadline) = self.stopping_deadline {
                if self.clients.is_empty() || now >= deadline {
                    break;
                }
            }
            ready.clear();
            {
                let set = &mut pollset;
                set.clear();
                set.add(self.signals.as_fd(), Token::Signal, true, false);
                set.add(self.housekeeping.as_fd(), Token::Housekeeping, true, false);
                if self.stopping_deadline.is_none() && now >= self.accept_paused_until {
                    set.add(self.http.as_fd(), Token::HttpListener, true, false);
                    set.add(self.control.as_fd(), Token::ControlListener, true, false);
                }
                for e in &self.eyes {
                    set.add(e.camera.completion_fd(), Token::Camera(e.index), true, false);
                    let want = e.encoder.interest();
                    if want.any() {
                        set.add(e.encoder.completion_fd(), Token::Encoder(e.index), want.readable, want.writable);
                    }
                }
                for (&id, c) in &self.clients {
                    set.add(c.stream.as_fd(), Token::Client(id), !c.closing, c.wants_write());
                }
                set.wait(-1, &mut ready).map_err(|e| format!("poll: {e}"))?;
            }
            for &(token, r) in &ready {
                self.dispatch(token, r);
                self.broadcast_events();
            }
        }
        crate::info!("stopped");
        Ok(())
    }

    fn dispatch(&mut self, token: Token, r: Ready) {
        let now = monotonic_us();
        match token {
            Token::Signal => {
                if let Some(sig) = self.signals.read() {
                    self.begin_shutdown(sig, now);
                }
            }
            Token::Housekeeping => {
                if self.housekeeping.expirations() > 0 {
                    self.housekeep(now);
                }
            }
            Token::HttpListener => self.accept_http(now),
            Token::ControlListener => self.accept_control(now),
            Token::Camera(e) => {
                self.eyes[e as usize].on_camera_ready(now);
                self.pair_frames(e);
            }
            Token::Encoder(e) => {
                let mut packets = std::mem::take(&mut self.packets);
                self.eyes[e as usize].on_encoder_ready(&mut packets, now);
                for p in packets.drain(..) {
                    self.fan_out(e, &p, now);
                }
                self.packets = packets;
            }
            Token::Client(id) => self.client_event(id, r, now),
        }
    }

    fn begin_shutdown(&mut self, sig: &str, now: u64) {
        if self.stopping_deadline.is_some() {
            return;
        }
        crate::info!("{sig}: shutting down, closing {} connection(s)", self.clients.len());
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        self.stopping_deadline = Some(now + SHUTDOWN_GRACE_US);
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            let c = self.clients.get_mut(&id).unwrap();
            if let Some(frame) = c.ws_mut().and_then(|ws| ws.close(close::GOING_AWAY, "pieyes is shutting down")) {
                c.outbox.push_bytes(frame);
            }
            c.close_after_flush(now, SHUTDOWN_GRACE_US);
            self.flush_client(id, now);
        }
    }

    /// Feed an eye's new frames to the stereo pairing (two eyes only).
    fn pair_frames(&mut self, e: u8) {
        let frames = std::mem::take(&mut self.eyes[e as usize].captured_times);
        if self.eyes.len() == 2 {
            for &(seq, t) in &frames {
                self.pairing.push(e, seq, t);
            }
        }
        self.eyes[e as usize].captured_times = frames;
        self.eyes[e as usize].captured_times.clear();
    }

    fn housekeep(&mut self, now: u64) {
        if let Some(n) = &mut self.notifier {
            n.keep_alive(now);
        }
        for e in &mut self.eyes {
            e.stats.tick(now);
            e.tick(now);
        }
        self.report_health(now);
        self.check_timeouts(now);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.control_path);
    }
}
