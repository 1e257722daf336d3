//! The daemon: one thread, one `poll()` over every fd — signals, a housekeeping timer, the
//! HTTP listener and its clients, the Unix control listener and its clients, each camera's
//! completion fd and each encoder's, and the save worker's doorbell. It moves bytes between
//! sockets and the sessions (`session`), feeds frames through the pipelines, and carries out
//! what the controller (`controller`) decides. Work that cannot run here (capture, encoding,
//! fsync) lives on threads that ring eventfds.

mod calibration;
mod connections;

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use crate::access::{HostPolicy, LogThrottle};
use crate::backends;
use crate::calibrate::grab::PairGrab;
use crate::calibrate::worker::Worker as CalibrateWorker;
use crate::config::Config;
use crate::control::saver::Saver;
use crate::control::socket::ControlSocket;
use crate::control::state_file;
use crate::controller::report::Measured;
use crate::controller::{Controller, Plant, Setup};
use crate::event_loop::{PollSet, Ready, Token};
use crate::http::static_files::Source;
use crate::inject::{Faults, SharedFaults};
use crate::pipeline::Pipeline;
use crate::session::Session;
use crate::stream::fanout::Limits;
use crate::stream::wire::Packet;
use crate::sys::clock::monotonic_us;
use crate::sys::fd_reserve::FdReserve;
use crate::sys::signals::ShutdownSignals;
use crate::sys::timer::Timer;
use connections::Connections;

const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How long shutdown waits for viewers to receive their close frames.
const SHUTDOWN_GRACE_US: u64 = 1_000_000;
/// After EMFILE/ENFILE on accept, stop accepting for this long instead of spinning.
const ACCEPT_BACKOFF_US: u64 = 200_000;
/// Fds kept open (on /dev/null) to give up for the control socket when the process runs out.
const FD_RESERVE: usize = 2;

pub struct Daemon {
    cfg: Config,
    signals: ShutdownSignals,
    housekeeping: Timer,
    http: TcpListener,
    control: ControlSocket,
    eyes: Vec<Pipeline>,
    controller: Controller,
    saver: Saver,
    /// Save and calibrate tickets and the connection waiting for each.
    pending_workers: HashMap<u64, u64>,
    /// `calibrate`: the stereo pair being grabbed, and the worker that estimates from it.
    pair_grab: PairGrab,
    calibrator: CalibrateWorker,
    /// Keeps the cameras' shared parts (the synthetic capture thread) alive.
    _keepalive: Option<Box<dyn std::any::Any>>,
    conns: Connections,
    /// The host names requests may use (DNS rebinding guard).
    hosts: HostPolicy,
    /// Refused hosts and origins are logged once a minute per address.
    refusal_log: LogThrottle,
    /// What the port speaks (HTTP, HTTPS), shared by the connections.
    transport: crate::transport::Policy,
    /// Connections refused by the transport are logged once a minute per address.
    transport_log: LogThrottle,
    www: Source,
    fanout_limits: Limits,
    started_us: u64,
    stopping_deadline: Option<u64>,
    /// Until when accepts pause after running out of fds: (HTTP, control socket).
    accept_paused: (u64, u64),
    /// Fds held back for the control socket.
    fd_reserve: FdReserve,
    packets: Vec<Arc<Packet>>,
    /// Frame taps on the control socket (`tap`).
    taps: crate::tap::frames::Taps,
    /// systemd's notify socket, when run as a Type=notify service.
    notifier: Option<crate::sys::sd_notify::Notifier>,
}

/// The pipeline as the controller may see it: next sequences and what was measured.
pub struct PlantView<'a> {
    eyes: &'a [Pipeline],
    conns: &'a Connections,
    taps: &'a crate::tap::TapBook,
    started_us: u64,
}

impl Plant for PlantView<'_> {
    fn next_sequence(&self, eye: u8) -> u32 {
        self.eyes[eye as usize].camera.next_sequence()
    }

    fn measured(&self) -> Measured<'_> {
        let viewers = self.conns.viewers.iter().flatten().filter_map(|id| match &self.conns.map.get(id)?.session {
            Session::Viewer(v) => Some(v.measured()),
            _ => None,
        });
        Measured {
            eyes: self.eyes.iter().map(Pipeline::measured).collect(),
            viewers: viewers.collect(),
            clients: self.conns.map.len(),
            refused: self.conns.refused,
            taps: Some(self.taps),
            started_us: self.started_us,
        }
    }
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
        let control = ControlSocket::bind(&cfg.control, cfg.control_group.as_deref())?;

        let saved = state_file::load_with_flags(&cfg);
        let fps = saved.fps;
        let faults: SharedFaults = Arc::new(Faults { list: cfg.faults.clone(), origin_us: monotonic_us() });
        if !faults.is_empty() {
            crate::warn!("fault injection on: {:?}", faults.list);
        }
        let mut cams = backends::open_cameras(&cfg, fps, &faults)?;
        let now = monotonic_us();
        let bitrates = [saved.eyes[0].bitrate, saved.eyes[1].bitrate];
        let (eyes, setup_eyes) = backends::open_eyes(&cfg, &mut cams, bitrates, fps, &faults, now)?;
        let setup = Setup::new(&cfg, setup_eyes, fps, cams.shared_clock, cams.sync.to_string());
        let controller = Controller::new(setup, &saved);
        if controller.token_required() {
            crate::info!("steering from browsers needs the token; without it they are view-only");
        }
        let www = cfg.www.clone().map_or(Source::Embedded, Source::Dir);
        let transport = backends::transport(&cfg, bound)?;
        crate::info!("listening on http://{bound}/ (control socket {})", control.path().display());
        if !bound.ip().is_loopback() {
            crate::warn!("listening on {bound}: reachable from the network, not only this machine");
        }
        let hosts = HostPolicy::from_flag(cfg.allowed_hosts.as_deref());
        let fanout_limits = Limits { stuck_us: cfg.viewer_timeout_us, ..Limits::default() };
        let n_eyes = eyes.len();
        let mut d = Daemon {
            saver: Saver::start(faults).map_err(|e| format!("save worker: {e}"))?,
            cfg,
            signals,
            housekeeping,
            http,
            control,
            eyes,
            controller,
            pending_workers: HashMap::new(),
            pair_grab: PairGrab::new(1_000_000 / fps.max(1) as u64),
            calibrator: CalibrateWorker::start().map_err(|e| format!("calibrate worker: {e}"))?,
            _keepalive: cams.keepalive,
            conns: Connections::new(n_eyes),
            hosts,
            refusal_log: LogThrottle::new(60_000_000),
            transport,
            transport_log: LogThrottle::new(60_000_000),
            www,
            fanout_limits,
            started_us: now,
            stopping_deadline: None,
            accept_paused: (0, 0),
            fd_reserve: FdReserve::new(FD_RESERVE),
            packets: Vec::new(),
            taps: Default::default(),
            notifier: crate::sys::sd_notify::Notifier::from_env(),
        };
        d.carry_out(); // flips restored from the state file
        for p in &mut d.eyes {
            p.refill(&mut d.controller);
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
                if self.conns.map.is_empty() || now >= deadline {
                    break;
                }
            }
            ready.clear();
            pollset.clear();
            pollset.add(self.signals.as_fd(), Token::Signal, true, false);
            pollset.add(self.housekeeping.as_fd(), Token::Housekeeping, true, false);
            pollset.add(self.saver.as_fd(), Token::Saver, true, false);
            pollset.add(self.calibrator.as_fd(), Token::Calibrator, true, false);
            if self.stopping_deadline.is_none() {
                if now >= self.accept_paused.0 {
                    pollset.add(self.http.as_fd(), Token::HttpListener, true, false);
                }
                if now >= self.accept_paused.1 {
                    pollset.add(self.control.listener.as_fd(), Token::ControlListener, true, false);
                }
            }
            for p in &self.eyes {
                // The encoder first: when both are ready in one turn, the finished frame frees
                // the encoder before the new one asks for it (else that one is dropped).
                let want = p.encoder.interest();
                if want.any() {
                    pollset.add(p.encoder.completion_fd(), Token::Encoder(p.index), want.readable, want.writable);
                }
                pollset.add(p.camera.completion_fd(), Token::Camera(p.index), true, false);
            }
            for (&id, c) in &self.conns.map {
                let (read, write) = c.interest();
                pollset.add(c.socket.as_fd(), Token::Client(id), read, write);
            }
            // Input TLS already decrypted announces itself to no poll(): serve it now.
            let buffered: Vec<u64> =
                self.conns.map.iter().filter(|(_, c)| c.has_buffered_input()).map(|(&id, _)| id).collect();
            let timeout = if buffered.is_empty() && self.conns.again.is_empty() { -1 } else { 0 };
            pollset.wait(timeout, &mut ready).map_err(|e| format!("poll: {e}"))?;
            let readable = Ready { readable: true, writable: false, hangup: false };
            ready.extend(buffered.into_iter().map(|id| (Token::Client(id), readable)));
            for &(token, r) in &ready {
                let now = monotonic_us();
                self.dispatch(token, r, now);
                self.broadcast_events(now);
            }
            self.serve_again(monotonic_us());
        }
        crate::info!("stopped");
        Ok(())
    }

    fn dispatch(&mut self, token: Token, r: Ready, now: u64) {
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
            Token::Saver => self.saves_finished(),
            Token::Calibrator => self.calibrations_finished(),
            Token::HttpListener => self.accept(false, now),
            Token::ControlListener => self.accept(true, now),
            Token::Camera(e) => {
                let (taps, conns) = (&mut self.taps, &mut self.conns);
                let mut send = |id, line: &[u8], fd: std::os::fd::BorrowedFd<'_>| conns.send_with_fd(id, line, fd);
                let mut tap = |o: &crate::tap::frames::Offer<'_>| taps.offer(o, now, &mut send);
                self.eyes[e as usize].on_camera_ready(&mut self.controller, now, &mut tap);
                self.collect_calibration(now);
            }
            Token::Encoder(e) => {
                let mut packets = std::mem::take(&mut self.packets);
                self.eyes[e as usize].on_encoder_ready(&mut self.controller, &mut packets, now);
                for p in packets.drain(..) {
                    self.fan_out(e, &p, now);
                }
                self.packets = packets;
            }
            Token::Client(id) => self.client_ready(id, r, now),
        }
    }

    fn begin_shutdown(&mut self, sig: &str, now: u64) {
        if self.stopping_deadline.is_some() {
            return;
        }
        crate::info!("{sig}: shutting down, closing {} connection(s)", self.conns.map.len());
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        self.stopping_deadline = Some(now + SHUTDOWN_GRACE_US);
        self.close_all(now, SHUTDOWN_GRACE_US);
    }

    fn housekeep(&mut self, now: u64) {
        if let Some(n) = &mut self.notifier {
            n.keep_alive(now);
        }
        self.fd_reserve.refill();
        let paused = self.controller.paused();
        for p in &mut self.eyes {
            p.tick(paused, now);
        }
        self.report_health(now);
        self.check_timeouts(now);
        for id in self.taps.book.stuck(now) {
            self.drop_conn(id, "tap held a frame too long");
        }
        self.collect_calibration(now);
    }
}
