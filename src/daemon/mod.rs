//! The daemon: one thread, one `poll()` over every fd — signals, a housekeeping timer, the
//! HTTP listener and its clients, the Unix control listener and its clients, each camera's
//! completion fd and each encoder's. Handlers move bytes between sockets and the sans-IO state
//! machines; work that cannot run here (encoding, capture) lives on threads that ring eventfds.

mod client;
mod commands;
mod eye;
mod routes;

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::camera::synthetic::{SyntheticConfig, SyntheticRig};
use crate::camera::{Camera, full_view};
use crate::config::{CameraChoice, Config};
use crate::control::command::{self, MAX_LINE};
use crate::control::line::{Line, LineReader};
use crate::encoder::EncoderConfig;
use crate::encoder::software::SoftwareEncoder;
use crate::event_loop::{PollSet, Ready, Token};
use crate::http::static_files::Source;
use crate::stream::fanout::{Limits, Offer};
use crate::stream::wire::Packet;
use crate::sys::clock::monotonic_us;
use crate::sys::signals::ShutdownSignals;
use crate::sys::timer::Timer;
use crate::ws::connection::Event;
use crate::ws::frame::{Opcode, close};
use client::{Client, ReadResult, Role, Stream};
use eye::Eye;

const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How long a closing connection may take to flush before it is dropped.
const CLOSE_GRACE_US: u64 = 1_000_000;
/// How long shutdown waits for viewers to receive their close frames.
const SHUTDOWN_GRACE_US: u64 = 1_000_000;
/// After EMFILE/ENFILE on accept, stop accepting for this long instead of spinning.
const ACCEPT_BACKOFF_US: u64 = 200_000;
/// Largest WebSocket message a client may send (commands are one short line).
pub const MAX_WS_MESSAGE: usize = 64 * 1024;

pub struct Daemon {
    cfg: Config,
    signals: ShutdownSignals,
    housekeeping: Timer,
    http: TcpListener,
    control: UnixListener,
    control_path: PathBuf,
    eyes: Vec<Eye>,
    /// Keeps the synthetic capture thread alive (dropped after the eyes).
    _rig: Option<SyntheticRig>,
    clients: HashMap<u64, Client>,
    next_client: u64,
    www: Source,
    fanout_limits: Limits,
    started_us: u64,
    stopping_deadline: Option<u64>,
    accept_paused_until: u64,
    packets: Vec<Arc<Packet>>,
    notifier: Option<crate::sys::sd_notify::Notifier>,
}

/// Bind the control socket: refuse to take over a live daemon's socket, replace a stale one.
fn bind_control(path: &PathBuf) -> Result<UnixListener, String> {
    if path.exists() {
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
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
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
        let control = bind_control(&cfg.control)?;

        if cfg.camera == CameraChoice::Auto {
            crate::info!("camera auto: no real camera backend in this build, using the synthetic stereo camera");
        }
        let syn = SyntheticConfig { sensor: cfg.sensor, output: cfg.size, fps: cfg.fps, ..SyntheticConfig::default() };
        let (rig, cams) = SyntheticRig::start(&syn).map_err(|e| format!("synthetic camera: {e}"))?;
        let enc_cfg = EncoderConfig {
            width: cfg.size.w,
            height: cfg.size.h,
            fps: cfg.fps,
            bitrate_bps: cfg.bitrate,
            gop_frames: cfg.gop_frames(),
        };
        let mut eyes = Vec::new();
        for (i, cam) in cams.into_iter().enumerate() {
            let encoder = SoftwareEncoder::start(i as u8, enc_cfg).map_err(|e| format!("encoder: {e}"))?;
            let view = full_view(cam.info().sensor, cam.info().output);
            crate::info!(
                "eye {i}: camera {} sensor {}x{} → {} @ {} fps, encoder {}",
                cam.info().id,
                cam.info().sensor.w,
                cam.info().sensor.h,
                cam.info().output,
                cam.info().fps,
                crate::encoder::Encoder::name(&encoder)
            );
            eyes.push(Eye::new(i as u8, Box::new(cam), Box::new(encoder), eye::SYNTHETIC_REQUEST_DEPTH, view));
        }
        let www = match &cfg.www {
            Some(d) => Source::Dir(d.clone()),
            None => Source::Embedded,
        };
        crate::info!("listening on http://{bound}/ (control socket {})", cfg.control.display());
        if !bound.ip().is_loopback() {
            crate::warn!("listening on {bound}: reachable from the network, not only this machine");
        }
        Ok(Daemon {
            control_path: cfg.control.clone(),
            cfg,
            signals,
            housekeeping,
            http,
            control,
            eyes,
            _rig: Some(rig),
            clients: HashMap::new(),
            next_client: 1,
            www,
            fanout_limits: Limits::default(),
            started_us: monotonic_us(),
            stopping_deadline: None,
            accept_paused_until: 0,
            packets: Vec::new(),
            notifier: crate::sys::sd_notify::Notifier::from_env(),
        })
    }

    pub fn run(mut self) -> Result<(), String> {
        let mut ready = Vec::with_capacity(64);
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
                let mut set = PollSet::with_capacity(8 + self.clients.len());
                set.add(self.signals.as_fd(), Token::Signal, true, false);
                set.add(self.housekeeping.as_fd(), Token::Housekeeping, true, false);
                if self.stopping_deadline.is_none() && now >= self.accept_paused_until {
                    set.add(self.http.as_fd(), Token::HttpListener, true, false);
                    set.add(self.control.as_fd(), Token::ControlListener, true, false);
                }
                for e in &self.eyes {
                    set.add(e.camera.completion_fd(), Token::Camera(e.index), true, false);
                    set.add(e.encoder.completion_fd(), Token::Encoder(e.index), true, false);
                }
                for (&id, c) in &self.clients {
                    set.add(c.stream.as_fd(), Token::Client(id), !c.closing, c.wants_write());
                }
                set.wait(-1, &mut ready).map_err(|e| format!("poll: {e}"))?;
            }
            for &(token, r) in &ready {
                self.dispatch(token, r);
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
            Token::Camera(e) => self.eyes[e as usize].on_camera_ready(now),
            Token::Encoder(e) => {
                let mut packets = std::mem::take(&mut self.packets);
                self.eyes[e as usize].on_encoder_ready(&mut packets);
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

    fn housekeep(&mut self, now: u64) {
        if let Some(n) = &mut self.notifier {
            n.keep_alive(now);
        }
        for e in &mut self.eyes {
            e.stats.tick(now);
        }
        let mut gone = Vec::new();
        for (&id, c) in &self.clients {
            if c.closing && now >= c.closing_deadline_us {
                gone.push((id, "did not finish closing"));
            } else if let Role::Video { sub, .. } = &c.role {
                if sub.is_stuck(&c.outbox, now) {
                    gone.push((id, "stuck: no progress writing video"));
                }
            }
        }
        for (id, why) in gone {
            self.drop_client(id, why);
        }
    }

    fn new_client_id(&mut self) -> u64 {
        let id = self.next_client;
        self.next_client += 1;
        id
    }

    fn accept_error(&mut self, what: &str, e: std::io::Error, now: u64) {
        if matches!(
            e.raw_os_error(),
            Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
        ) {
            if self.accept_paused_until < now {
                crate::warn!("{what}: accept failed ({e}); pausing accepts for {} ms", ACCEPT_BACKOFF_US / 1000);
            }
            self.accept_paused_until = now + ACCEPT_BACKOFF_US;
        } else if e.kind() != std::io::ErrorKind::WouldBlock {
            crate::debug!("{what}: accept: {e}");
        }
    }

    fn accept_http(&mut self, now: u64) {
        loop {
            match self.http.accept() {
                Ok((s, addr)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = crate::sys::socket::set_nodelay(&s);
                    let id = self.new_client_id();
                    crate::debug!("client {id}: connected from {addr}");
                    self.clients.insert(id, Client::new(Stream::Tcp(s), Role::Http, addr.to_string()));
                }
                Err(e) => return self.accept_error("http", e, now),
            }
        }
    }

    fn accept_control(&mut self, now: u64) {
        loop {
            match self.control.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.new_client_id();
                    crate::debug!("client {id}: control socket connection");
                    let role = Role::ControlUnix { lines: LineReader::new(MAX_LINE) };
                    self.clients.insert(id, Client::new(Stream::Unix(s), role, "unix".into()));
                }
                Err(e) => return self.accept_error("control", e, now),
            }
        }
    }

    fn client_event(&mut self, id: u64, r: Ready, now: u64) {
        let Some(mut c) = self.clients.remove(&id) else {
            return;
        };
        if (r.readable || r.hangup) && !c.closing {
            match c.read_available() {
                ReadResult::Data => self.process_input(id, &mut c, now),
                ReadResult::Gone(why) => {
                    // Still answer what arrived before the EOF (a one-shot `ctl` command).
                    self.process_input(id, &mut c, now);
                    c.close_after_flush(now, CLOSE_GRACE_US);
                    if c.outbox.is_empty() {
                        self.clients.insert(id, c);
                        return self.drop_client(id, &why);
                    }
                }
            }
        } else if r.hangup && c.closing {
            self.clients.insert(id, c);
            return self.drop_client(id, "hung up");
        }
        self.clients.insert(id, c);
        self.flush_client(id, now);
    }

    /// Write what the client has pending; drop it if the socket failed or it finished closing.
    fn flush_client(&mut self, id: u64, now: u64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let eyes = &mut self.eyes;
        let sent = |p: &Packet| {
            if let Some(e) = eyes.get_mut(p.meta.eye as usize) {
                e.stats.capture_to_sent.record(now.saturating_sub(p.meta.capture_us));
            }
        };
        match c.flush(sent) {
            Ok(n) => {
                if n > 0 {
                    if let Role::Video { sub, .. } = &mut c.role {
                        sub.progressed(now);
                    }
                }
                if c.closing && c.outbox.is_empty() {
                    self.drop_client(id, "closed");
                }
            }
            Err(e) => self.drop_client(id, &format!("write failed: {e}")),
        }
    }

    fn drop_client(&mut self, id: u64, why: &str) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        match &c.role {
            Role::Video { eye, sub, .. } => {
                let e = &mut self.eyes[*eye as usize];
                e.viewers.retain(|&v| v != id);
                crate::info!(
                    "viewer {id} ({}) left eye {eye}: {why}; {} frames queued, {} dropped; {} viewer(s) left",
                    c.peer,
                    sub.queued,
                    sub.dropped,
                    e.viewers.len()
                );
            }
            Role::ControlWs { .. } => crate::info!("control client {id} ({}) left: {why}", c.peer),
            _ => crate::debug!("client {id} ({}) closed: {why}", c.peer),
        }
    }

    /// Hand one packet to every viewer of `eye`, then try to write it straight away.
    fn fan_out(&mut self, eye: u8, p: &Arc<Packet>, now: u64) {
        let e = &mut self.eyes[eye as usize];
        for &id in &e.viewers {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            if c.closing {
                continue;
            }
            if let Role::Video { sub, .. } = &mut c.role {
                let before = sub.dropped;
                if let Offer::Dropped { want_keyframe: true } = sub.offer(&mut c.outbox, p, now) {
                    e.keyframes.request();
                }
                e.stats.viewer_drops += sub.dropped - before;
            }
        }
        let ids = e.viewers.clone();
        for id in ids {
            self.flush_client(id, now);
        }
    }

    fn process_input(&mut self, id: u64, c: &mut Client, now: u64) {
        loop {
            match &mut c.role {
                Role::Http => {
                    if !routes::handle_http(self, id, c, now) {
                        return;
                    }
                    // The role changed (upgrade): handle what followed the handshake.
                }
                Role::ControlUnix { lines } => {
                    lines.push(&c.inbuf);
                    c.inbuf.clear();
                    while let Some(line) = lines.next_line() {
                        let reply = match line {
                            Line::Text(t) => self.execute_line(&t, now),
                            Line::TooLong => {
                                format!("err too-long line longer than {MAX_LINE} bytes")
                            }
                            Line::NotUtf8 => "err encoding commands are UTF-8 text".to_string(),
                        };
                        c.outbox.push_bytes(format!("{reply}\n").into_bytes());
                    }
                    return;
                }
                Role::Video { .. } | Role::ControlWs { .. } => return self.process_ws(c, now),
            }
        }
    }

    fn process_ws(&mut self, c: &mut Client, now: u64) {
        loop {
            let is_control = matches!(c.role, Role::ControlWs { .. });
            let ev = match &mut c.role {
                Role::Video { ws, .. } | Role::ControlWs { ws } => ws.read(&mut c.inbuf),
                _ => unreachable!("websocket role"),
            };
            while let Some(f) = c.ws_mut().unwrap().take_outgoing() {
                c.outbox.push_bytes(f);
            }
            match ev {
                Ok(None) => return,
                Ok(Some(Event::Text(t))) if is_control => {
                    for line in t.lines().filter(|l| !l.trim().is_empty()) {
                        let reply = self.execute_line(line, now);
                        let msg = c.ws_mut().unwrap().message(Opcode::Text, reply.as_bytes());
                        c.outbox.push_bytes(msg);
                    }
                }
                Ok(Some(Event::Closed { .. })) => {
                    c.close_after_flush(now, CLOSE_GRACE_US);
                    return;
                }
                Ok(Some(_)) => {} // viewers have nothing to say; pongs need no answer
                Err(e) => {
                    crate::info!("client {}: websocket protocol error: {} (close {})", c.peer, e.reason, e.code);
                    if let Some(f) = c.ws_mut().unwrap().close(e.code, e.reason) {
                        c.outbox.push_bytes(f);
                    }
                    c.close_after_flush(now, CLOSE_GRACE_US);
                    return;
                }
            }
        }
    }

    fn execute_line(&mut self, line: &str, now: u64) -> String {
        match command::parse(line) {
            Ok(cmd) => match commands::execute(self, cmd, now) {
                Ok(reply) => reply,
                Err(e) => command::format_err(&e),
            },
            Err(e) => command::format_err(&e),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.control_path);
    }
}
