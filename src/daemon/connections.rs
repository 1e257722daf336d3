//! The connections as the loop holds them — a socket and its session — and the loop's side of
//! them: accepting within the budgets, reading into the session, doing what the session asks
//! (route a request, run a command, force a keyframe), writing its outbox, fan-out of video
//! packets, `watch` events and health messages, and dropping connections when they end.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::IpAddr;
use std::sync::Arc;

use super::{ACCEPT_BACKOFF_US, Daemon, PlantView};
use crate::control::command::Command;
use crate::control::event::Event;
use crate::control::reply::Reply;
use crate::controller::{Action, Outcome, Plant, report};
use crate::event_loop::Ready;
use crate::http::request::Request;
use crate::http::response;
use crate::limits;
use crate::session::control_line::ControlLineSession;
use crate::session::control_ws::ControlWsSession;
use crate::session::http::HttpSession;
use crate::session::routes::{self, Endpoint, Route};
use crate::session::viewer::ViewerSession;
use crate::session::{Ask, Session};
use crate::stream::fanout::Offer;
use crate::stream::outbox::MAX_SLICES;
use crate::stream::wire::Packet;
use crate::sys::socket::Socket;
use crate::transport::{Input, PLAIN_REFUSAL, Refused, Transport};
use crate::ws::frame::close;

/// Kernel send buffer of a video viewer's socket (the kernel doubles it: 512 KiB, room for a
/// few keyframes in flight). Bounded so that it does not grow with autotuning.
const VIDEO_SNDBUF: usize = 256 * 1024;
/// Of that, bytes the kernel may hold not yet sent (TCP_NOTSENT_LOWAT): half an IDR, 50 ms at
/// 10 Mbit/s. A slow viewer's backlog then waits in our queue, where the fan-out policy sees it
/// (skip to a keyframe), not hidden in the kernel. Without it a link slower than the stream
/// filled the whole buffer (1.4 s of one eye at 3 Mbit/s) first: at 5 Mbit/s for both eyes
/// capture→paint p50 was 1.8 s, with it 0.5 s (`make bench`, lossy link at 5 Mbit/s).
const VIDEO_UNSENT: u32 = 64 * 1024;
/// Bytes read per readable event at most, so one chatty client cannot starve the others.
const READ_BUDGET: usize = 256 * 1024;
/// Bytes written to one client per turn of the loop at most, for the same reason.
const WRITE_BUDGET: usize = 256 * 1024;

pub struct Conn {
    pub socket: Socket,
    /// Plain or TLS, under the session.
    pub transport: Transport,
    /// The peer's address (TCP only), for the per-address budget.
    pub addr: Option<IpAddr>,
    pub session: Session,
}

#[derive(Default)]
pub struct Connections {
    pub map: HashMap<u64, Conn>,
    next_id: u64,
    /// Connections refused by the budgets.
    pub refused: u64,
    /// Ids of each eye's video viewers.
    pub viewers: Vec<Vec<u64>>,
    /// Connections to serve on the next turn of the loop without waiting for an event.
    pub again: Vec<u64>,
    scratch: Vec<u8>,
}

impl Conn {
    /// What poll() should wait for: input the session (or a TLS handshake) wants, output queued
    /// in the session's outbox or in TLS.
    pub fn interest(&self) -> (bool, bool) {
        let read = self.session.wants_input() || self.transport.is_handshaking();
        (read, !self.session.link().outbox.is_empty() || self.transport.wants_write())
    }

    /// Decrypted input no socket event will announce, and a session that takes it.
    pub fn has_buffered_input(&self) -> bool {
        self.transport.has_buffered_input() && self.session.wants_input()
    }
}

impl Connections {
    pub fn new(eyes: usize) -> Connections {
        Connections { viewers: vec![Vec::new(); eyes], next_id: 1, scratch: vec![0; 16 * 1024], ..Default::default() }
    }

    fn insert(&mut self, c: Conn) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.map.insert(id, c);
        id
    }

    fn count(&self, unix: bool) -> usize {
        self.map.values().filter(|c| matches!(c.socket, Socket::Unix(_)) == unix).count()
    }

    /// A tap's frame line with its fd to connection `id` (`tap::frames::send_line`).
    pub fn send_with_fd(&mut self, id: u64, line: &[u8], fd: std::os::fd::BorrowedFd<'_>) -> bool {
        let Some(Conn { socket: Socket::Unix(s), session, .. }) = self.map.get_mut(&id) else { return false };
        crate::tap::frames::send_line(s, session.link_mut(), line, fd)
    }
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

impl Daemon {
    /// An accept failed: out of fds pauses that listener for a while (logged once), rather
    /// than spinning on a listener that stays readable.
    fn accept_error(&mut self, unix: bool, e: std::io::Error, now: u64) {
        let what = if unix { "control" } else { "http" };
        if is_fd_exhaustion(&e) {
            let until = if unix { &mut self.accept_paused.1 } else { &mut self.accept_paused.0 };
            if *until < now {
                crate::warn!("{what}: accept failed ({e}); pausing its accepts for {} ms", ACCEPT_BACKOFF_US / 1000);
            }
            *until = now + ACCEPT_BACKOFF_US;
        } else if e.kind() != std::io::ErrorKind::WouldBlock {
            crate::debug!("{what}: accept: {e}");
        }
    }

    /// Accept what a listener has, within the budgets: the network's (per address, in all),
    /// or the control socket's own, with fds kept in reserve for it: the network can use up
    /// neither. Out of fds, a reserved one is given up to take a control connection.
    pub(super) fn accept(&mut self, unix: bool, now: u64) {
        loop {
            let accepted = if unix {
                self.control
                    .listener
                    .accept()
                    .and_then(|(s, _)| s.set_nonblocking(true).map(|()| (Socket::Unix(s), None)))
            } else {
                self.http.accept().and_then(|(s, a)| s.set_nonblocking(true).map(|()| (Socket::Tcp(s), Some(a))))
            };
            let (mut socket, addr) = match accepted {
                Ok(a) => a,
                Err(e) if unix && is_fd_exhaustion(&e) && self.fd_reserve.release() => {
                    crate::warn!("control: out of file descriptors; a reserved one takes the control connection");
                    continue;
                }
                Err(e) => return self.accept_error(unix, e, now),
            };
            let admitted = match addr {
                Some(a) => limits::admit_network(
                    self.conns.map.values().filter(|c| c.addr == Some(a.ip())).count(),
                    self.conns.count(false),
                ),
                None => limits::admit_control(self.conns.count(true)),
            };
            let from = addr.map_or("the control socket".into(), |a| a.to_string());
            if let Err(why) = admitted {
                // Refused before it costs anything: one best-effort write, then gone.
                let answer = match addr {
                    Some(_) => response::error(503, why, &[("Retry-After", "5")]),
                    None => format!("err busy {why}\n").into_bytes(),
                };
                let _ = std::io::Write::write(&mut socket, &answer);
                self.conns.refused += 1;
                if self.conns.refused.is_power_of_two() {
                    crate::warn!("refused a connection from {from}: {why} ({} refused so far)", self.conns.refused);
                }
                continue;
            }
            let (session, transport) = match &socket {
                Socket::Tcp(s) => {
                    let _ = crate::sys::socket::set_nodelay(s);
                    (Session::Http(HttpSession::new(from.clone(), now, self.cfg.timeouts)), Transport::sniffing())
                }
                Socket::Unix(_) => {
                    (Session::ControlLine(ControlLineSession::new("unix".into(), now)), Transport::plain())
                }
            };
            let id = self.conns.insert(Conn { socket, transport, addr: addr.map(|a| a.ip()), session });
            crate::debug!("client {id}: connected from {from}");
        }
    }

    /// A client's socket is ready: read what the session wants, do what it asks, write.
    pub(super) fn client_ready(&mut self, id: u64, r: Ready, now: u64) {
        let Some(c) = self.conns.map.get_mut(&id) else {
            return;
        };
        if r.readable || r.hangup {
            if c.session.wants_input() {
                let scratch = &mut self.conns.scratch;
                let mut total = 0;
                while total < READ_BUDGET && c.session.wants_input() {
                    match c.transport.read(&mut c.socket, &self.transport, scratch) {
                        Ok(Input::Eof) => {
                            c.session.handle_eof();
                            break;
                        }
                        Ok(Input::Data(n)) => {
                            c.session.handle_input(&scratch[..n], now);
                            total += n;
                        }
                        Ok(Input::WouldBlock) => break,
                        Ok(Input::Refused(why)) => return self.refuse_transport(id, why, now),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            crate::debug!("client {id}: read: {e}");
                            c.session.handle_eof();
                            break;
                        }
                    }
                }
            } else if r.hangup {
                // Hung up and already at EOF: nothing more can come or go, and poll() reports
                // the hangup on every turn, so keeping the connection (say, for the reply to a
                // `save` still under way) would spin the loop until then.
                if c.session.link().is_closing() || c.session.link().at_eof() {
                    return self.drop_conn(id, "hung up");
                }
                c.session.handle_eof();
            }
        }
        // What went out may make room for answers the session held back (back-pressure), so
        // serve again while it does: else a connection whose input is full (and so not read)
        // would wait for a read event that never comes. Past WRITE_BUDGET in one turn of the
        // loop the rest waits for the next turn (`again`), so a client that reads as fast as
        // it is served cannot hold the cameras up.
        let mut written = 0;
        loop {
            let asks = self.serve(id, now);
            let sent = self.flush(id, now);
            if asks == 0 && sent == 0 {
                return;
            }
            match self.conns.map.get(&id) {
                Some(c) if c.session.link().outbox.is_empty() => {}
                _ => return, // gone, or the kernel is full: its writable event comes
            }
            written += sent;
            if written >= WRITE_BUDGET {
                self.conns.again.push(id);
                return;
            }
        }
    }

    /// Connections that had more to do when their turn ended: their next turn.
    pub(super) fn serve_again(&mut self, now: u64) {
        for id in std::mem::take(&mut self.conns.again) {
            self.client_ready(id, Ready::default(), now);
        }
    }

    /// The transport refused the connection (plain HTTP to a TLS-only port, bad TLS): one log
    /// line (throttled per address), a best-effort answer, then it is dropped.
    fn refuse_transport(&mut self, id: u64, why: Refused, now: u64) {
        let Some(c) = self.conns.map.get_mut(&id) else { return };
        match why {
            Refused::PlainToTlsOnly => {
                let _ = std::io::Write::write(&mut c.socket, PLAIN_REFUSAL);
            }
            Refused::Tls(_) => {
                let _ = c.transport.flush(&mut c.socket); // the alert rustls made, if it can go
            }
        }
        let (addr, peer) = (c.addr, c.session.link().peer.clone());
        if self.transport_log.should_log(addr, now) {
            crate::warn!("client {id} ({peer}) refused: {why}");
        }
        self.conns.refused += 1;
        self.drop_conn(id, "refused by the transport");
    }

    /// Do what the session asks until it asks nothing more; how many asks there were.
    fn serve(&mut self, id: u64, now: u64) -> usize {
        let mut asks = 0;
        loop {
            let Some(c) = self.conns.map.get_mut(&id) else {
                return asks;
            };
            asks += 1;
            match c.session.poll(now) {
                None => return asks - 1,
                Some(Ask::Route(req)) => self.route(id, req, now),
                Some(Ask::Execute(cmd)) => self.execute(id, cmd, now),
                Some(Ask::Tap(t)) => {
                    let outputs: Vec<_> = self.eyes.iter().map(|p| p.camera.info().output).collect();
                    let (reply, released) = self.taps.command(id, t, &outputs);
                    crate::debug!("client {id}: {reply}");
                    self.tap_released(released);
                    if let Some(Conn { session: Session::ControlLine(s), .. }) = self.conns.map.get_mut(&id) {
                        s.answer(&reply);
                    }
                }
                Some(Ask::Keyframe) => {
                    if let Session::Viewer(v) = &c.session {
                        crate::debug!("viewer {id} ({}) asks eye {} for a keyframe", v.link().peer, v.eye);
                        self.controller.request_keyframe(v.eye);
                    }
                }
            }
        }
    }

    fn plant(&self) -> PlantView<'_> {
        PlantView { eyes: &self.eyes, conns: &self.conns, taps: &self.taps.book, started_us: self.started_us }
    }

    /// Holds a tap ended: buffers no tap holds any more go back to their camera.
    fn tap_released(&mut self, released: Vec<crate::tap::Released>) {
        for r in released {
            if let Some(index) = r.buffer {
                self.eyes[r.eye as usize].tap_released(&mut self.controller, index);
            }
        }
    }

    fn execute(&mut self, id: u64, cmd: Command, now: u64) {
        // The asking connection stays in the map meanwhile: `status` counts it.
        let from = self.conns.map.get(&id).and_then(|c| c.addr);
        let plant =
            PlantView { eyes: &self.eyes, conns: &self.conns, taps: &self.taps.book, started_us: self.started_us };
        let outcome = self.controller.execute(cmd, from, now, &plant);
        self.carry_out();
        match outcome {
            Outcome::Reply(r) => {
                if let Some(c) = self.conns.map.get_mut(&id) {
                    c.session.reply(&r);
                }
            }
            Outcome::Pending(ticket) => {
                self.pending_workers.insert(ticket, id);
            }
        }
    }

    /// Carry out what the controller decided.
    pub(super) fn carry_out(&mut self) {
        for action in self.controller.take_actions() {
            match action {
                Action::ConfigureEncoder { eye, config } => self.eyes[eye as usize].encoder.configure(config),
                Action::SetFlip { eye, flip } => {
                    if let Err(e) = self.eyes[eye as usize].camera.set_flip(flip) {
                        crate::error!("eye {eye}: cannot flip {}: {e}", flip.name());
                    }
                }
                Action::SetFps(fps) => {
                    for p in &mut self.eyes {
                        if let Err(e) = p.camera.set_fps(fps) {
                            crate::error!("eye {}: cannot set {fps} fps: {e}", p.index);
                        }
                    }
                }
                Action::Capture { paused } => {
                    crate::info!("capture {}", if paused { "paused" } else { "resumed" });
                    if !paused {
                        for p in &mut self.eyes {
                            p.refill(&mut self.controller);
                        }
                    }
                }
                Action::Save(job) => self.saver.submit(job),
                Action::Calibrate { ticket } => self.start_calibration(ticket),
            }
        }
    }

    /// The save worker finished jobs: answer the connections that asked.
    pub(super) fn saves_finished(&mut self) {
        for (ticket, result) in self.saver.finished() {
            let reply = self.controller.save_finished(ticket, result);
            self.answer_pending(ticket, &reply);
        }
    }

    /// A command that waited on a worker (`save`, `calibrate`) has its answer: reply to the
    /// connection that asked, if it is still there, then the events it caused, then the
    /// commands that waited behind it on that connection.
    pub(super) fn answer_pending(&mut self, ticket: u64, reply: &Reply) {
        let Some(id) = self.pending_workers.remove(&ticket) else { return };
        if let Some(c) = self.conns.map.get_mut(&id) {
            c.session.reply(reply);
        }
        let now = crate::sys::clock::monotonic_us();
        self.broadcast_events(now); // `saved` before what the next commands cause
        self.serve(id, now);
        self.flush(id, now);
    }

    fn route(&mut self, id: u64, req: Request, now: u64) {
        let addr = self.conns.map.get(&id).and_then(|c| c.addr);
        let controller = &mut self.controller;
        let route = routes::route(&req, self.eyes.len(), &self.hosts, |token| controller.may_view(token, addr, now));
        let (bytes, keep) = match route {
            Route::Upgrade { endpoint, accept } => return self.upgrade(id, endpoint, accept, now),
            Route::Refuse { status, reason, extra } => {
                let Some(c) = self.conns.map.get_mut(&id) else { return };
                let peer = &c.session.link().peer;
                // Refused hosts, origins and tokens are logged once a minute per address.
                if !matches!(status, 403 | 421) {
                    crate::debug!("client {id} ({peer}): {status} {reason}");
                } else if self.refusal_log.should_log(addr, now) {
                    crate::warn!("client {id} ({peer}): {}", routes::refusal_line(&req, status, reason));
                }
                if let Session::Http(h) = &mut c.session {
                    h.refuse(status, reason, extra, now);
                }
                return;
            }
            Route::Status => {
                routes::status(&req, &report::status_json(&self.controller, &self.plant().measured(), now))
            }
            Route::Metrics => {
                routes::metrics(&req, &report::metrics_text(&self.controller, &self.plant().measured(), now))
            }
            Route::File(path) => routes::file(&req, &self.www, &path),
        };
        if let Some(Conn { session: Session::Http(h), .. }) = self.conns.map.get_mut(&id) {
            h.respond(bytes, keep, now);
        }
    }

    /// The handshake passed: the HTTP session becomes a viewer or a control session.
    fn upgrade(&mut self, id: u64, endpoint: Endpoint, accept: Vec<u8>, now: u64) {
        let Some(c) = self.conns.map.get_mut(&id) else { return };
        let peer = c.session.link().peer.clone();
        let (ping_us, limits) = (self.cfg.timeouts.ping_us, self.fanout_limits);
        match endpoint {
            Endpoint::Video(eye) => {
                let p = &self.eyes[eye as usize];
                let hello = report::hello_json(&self.controller, eye, p.camera.info(), p.codec.as_deref());
                c.session.upgrade(now, |l| {
                    Session::Viewer(ViewerSession::new(eye, l, accept, &hello, limits, ping_us, now))
                });
                if let Err(e) = crate::sys::socket::set_send_buffer(&c.socket, VIDEO_SNDBUF) {
                    crate::debug!("client {id}: SO_SNDBUF: {e}");
                }
                if let Err(e) = crate::sys::socket::set_unsent_limit(&c.socket, VIDEO_UNSENT) {
                    crate::debug!("client {id}: TCP_NOTSENT_LOWAT: {e}");
                }
                let viewers = &mut self.conns.viewers[eye as usize];
                viewers.push(id);
                let n = viewers.len();
                self.controller.request_keyframe(eye);
                crate::info!("viewer {id} ({peer}) joined eye {eye}; {n} viewer(s)");
                self.controller.push_event(Event::Viewer { eye, joined: true, viewers: n });
            }
            Endpoint::Control => {
                let may_steer = !self.controller.token_required();
                c.session
                    .upgrade(now, |l| Session::ControlWs(ControlWsSession::new(l, accept, may_steer, ping_us, now)));
                let how = if may_steer { "" } else { " (view-only until it sends the token)" };
                crate::info!("control client {id} ({peer}) connected{how}");
            }
        }
    }

    /// Write what the connection's outbox holds, as far as the kernel takes it; bytes written.
    pub(super) fn flush(&mut self, id: u64, now: u64) -> usize {
        let Some(c) = self.conns.map.get_mut(&id) else {
            return 0;
        };
        let eyes = &mut self.eyes;
        let mut written = 0;
        match c.transport.flush(&mut c.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return 0,
            Err(e) => {
                self.drop_conn(id, &format!("write failed: {e}"));
                return 0;
            }
        }
        while !c.session.link().outbox.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = c.session.link().outbox.slices(&mut slices);
            match c.transport.write(&mut c.socket, &slices[..n]) {
                Ok(0) => break,
                Ok(k) => {
                    written += k;
                    c.session.sent(k, now, |p: &Packet| {
                        if let Some(e) = eyes.get_mut(p.meta.eye as usize) {
                            e.stats.capture_to_sent.record(now.saturating_sub(p.meta.capture_us));
                        }
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.drop_conn(id, &format!("write failed: {e}"));
                    return written;
                }
            }
        }
        if c.session.link().is_finished() {
            // All of it handed over; over TLS some may still sit in rustls as ciphertext, and
            // the peer is owed a close_notify: both go out before the socket closes (a full
            // socket waits for its writable event, the closing deadline as the backstop).
            c.transport.close();
            match c.transport.flush(&mut c.socket) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => self.drop_conn(id, "closed"),
            }
        }
        written
    }

    pub(super) fn drop_conn(&mut self, id: u64, why: &str) {
        let Some(c) = self.conns.map.remove(&id) else {
            return;
        };
        if let Some(released) = self.taps.remove(id) {
            crate::info!("tap {id} ended: {why}");
            self.tap_released(released);
        }
        let peer = &c.session.link().peer;
        match &c.session {
            Session::Viewer(v) => {
                let viewers = &mut self.conns.viewers[v.eye as usize];
                viewers.retain(|&x| x != id);
                let n = viewers.len();
                self.controller.push_event(Event::Viewer { eye: v.eye, joined: false, viewers: n });
                crate::info!(
                    "viewer {id} ({peer}) left eye {}: {why}; {} frames queued, {} dropped; {n} viewer(s) left",
                    v.eye,
                    v.queued(),
                    v.dropped()
                );
            }
            Session::ControlWs(_) => crate::info!("control client {id} ({peer}) left: {why}"),
            _ => crate::debug!("client {id} ({peer}) closed: {why}"),
        }
    }

    /// Hand one packet to every viewer of `eye`, then try to write it straight away.
    pub(super) fn fan_out(&mut self, eye: u8, p: &Arc<Packet>, now: u64) {
        let stats = &mut self.eyes[eye as usize].stats;
        for &id in &self.conns.viewers[eye as usize] {
            let Some(Conn { session: Session::Viewer(v), .. }) = self.conns.map.get_mut(&id) else {
                continue;
            };
            let before = v.dropped();
            if let Offer::Dropped { want_keyframe: true } = v.offer(p, now) {
                self.controller.request_keyframe(eye);
            }
            stats.viewer_drops += v.dropped() - before;
        }
        for i in 0..self.conns.viewers[eye as usize].len() {
            // (a write error drops the connection and shortens the list: re-check the index)
            let Some(&id) = self.conns.viewers[eye as usize].get(i) else { break };
            self.flush(id, now);
        }
    }

    /// Send the controller's events (and everyone else's) to every `watch` connection.
    pub(super) fn broadcast_events(&mut self, now: u64) {
        if !self.controller.has_events() {
            return;
        }
        let lines: Vec<String> = self.controller.drain_events().map(|e| e.to_string()).collect();
        let watchers: Vec<u64> = self
            .conns
            .map
            .iter()
            .filter(|(_, c)| c.session.is_watching() && !c.session.link().is_closing())
            .map(|(&id, _)| id)
            .collect();
        for id in watchers {
            let c = self.conns.map.get_mut(&id).expect("listed");
            for l in &lines {
                if !c.session.push_event(l, now) {
                    break;
                }
            }
            self.flush(id, now);
        }
    }

    /// Health changes of cameras and encoders: one log line each, a `watch` event, and a
    /// status message to that eye's viewers (the other eye is not disturbed).
    pub(super) fn report_health(&mut self, now: u64) {
        for i in 0..self.eyes.len() {
            let changes = std::mem::take(&mut self.eyes[i].health_changes);
            if changes.is_empty() {
                continue;
            }
            changes.iter().for_each(|(what, change)| change.log(i, what));
            let p = &self.eyes[i];
            let (camera, encoder) = (p.camera_health.describe(), p.encoder_health.describe());
            let msg = report::health_message(i as u8, &camera, &encoder);
            self.controller.push_event(Event::Health { eye: i as u8, camera, encoder });
            for id in self.conns.viewers[i].clone() {
                if let Some(Conn { session: Session::Viewer(v), .. }) = self.conns.map.get_mut(&id) {
                    v.send_text(&msg);
                }
                self.flush(id, now);
            }
        }
    }

    /// Deadlines of every connection: slow heads, idle keep-alives, pings, stuck viewers,
    /// closing connections that never finished.
    pub(super) fn check_timeouts(&mut self, now: u64) {
        let due: Vec<u64> = self
            .conns
            .map
            .iter()
            .filter(|(_, c)| c.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let c = self.conns.map.get_mut(&id).expect("listed");
            if c.transport.is_handshaking() {
                // No request can come before the handshake, and no answer can go: just drop.
                self.refuse_transport(id, Refused::Tls("the handshake did not finish in time".into()), now);
                continue;
            }
            match c.session.handle_timeout(now) {
                Some(why) => self.drop_conn(id, why),
                None => self.client_ready(id, Ready::default(), now),
            }
        }
    }

    /// Shutting down: every WebSocket gets a close frame (1001), then every connection closes.
    pub(super) fn close_all(&mut self, now: u64, grace_us: u64) {
        let ids: Vec<u64> = self.conns.map.keys().copied().collect();
        for id in ids {
            let c = self.conns.map.get_mut(&id).expect("listed");
            c.session.close(close::GOING_AWAY, "pieyes is shutting down", now, grace_us);
            self.flush(id, now);
        }
    }
}
