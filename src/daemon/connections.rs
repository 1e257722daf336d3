//! Client connections as the loop drives them: accepting (with limits), reading into the
//! sans-IO parsers, executing control lines, writing outboxes, fan-out of video packets,
//! `watch` events, and dropping clients when they go.

use std::sync::Arc;

use super::client::{Client, ReadResult, Role, Stream};
use super::{ACCEPT_BACKOFF_US, Daemon, commands, routes};
use crate::control::command::{self, Command, MAX_LINE};
use crate::control::line::{Line, LineReader};
use crate::event_loop::Ready;
use crate::health::Change;
use crate::http::response;
use crate::limits::{
    CLOSE_GRACE_US, MAX_COMMANDS_PER_S, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS, MAX_WATCH_BACKLOG,
    MAX_WS_FRAMES_PER_S,
};
use crate::stream::fanout::Offer;
use crate::stream::wire::Packet;
use crate::sys::clock::monotonic_us;
use crate::ws::connection::Event;
use crate::ws::frame::{Opcode, close};

impl Daemon {
    pub(super) fn new_client_id(&mut self) -> u64 {
        let id = self.next_client;
        self.next_client += 1;
        id
    }

    pub(super) fn accept_error(&mut self, what: &str, e: std::io::Error, now: u64) {
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

    pub(super) fn accept_http(&mut self, now: u64) {
        loop {
            match self.http.accept() {
                Ok((s, addr)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let from_addr = self.clients.values().filter(|c| c.addr == Some(addr.ip())).count();
                    if self.clients.len() >= MAX_CONNECTIONS || from_addr >= MAX_CONNECTIONS_PER_ADDRESS {
                        // Refused before it costs anything: one best-effort write, then gone.
                        let why = if from_addr >= MAX_CONNECTIONS_PER_ADDRESS {
                            "too many connections from your address"
                        } else {
                            "too many connections"
                        };
                        let _ = std::io::Write::write(&mut &s, &response::error(503, why, &[("Retry-After", "5")]));
                        self.refused += 1;
                        if self.refused.is_power_of_two() {
                            crate::warn!("refused a connection from {addr}: {why} ({} refused so far)", self.refused);
                        }
                        continue;
                    }
                    let _ = crate::sys::socket::set_nodelay(&s);
                    let id = self.new_client_id();
                    crate::debug!("client {id}: connected from {addr}");
                    let c = Client::new(Stream::Tcp(s), Role::Http, addr.to_string(), Some(addr.ip()), now);
                    self.clients.insert(id, c);
                }
                Err(e) => return self.accept_error("http", e, now),
            }
        }
    }

    pub(super) fn accept_control(&mut self, now: u64) {
        loop {
            match self.control.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if self.clients.len() >= MAX_CONNECTIONS {
                        let _ = std::io::Write::write(&mut &s, b"err busy too many connections\n");
                        continue;
                    }
                    let id = self.new_client_id();
                    crate::debug!("client {id}: control socket connection");
                    let role = Role::ControlUnix { lines: LineReader::new(MAX_LINE) };
                    let mut c = Client::new(Stream::Unix(s), role, "unix".into(), None, now);
                    c.may_steer = true; // the socket's file mode decides who gets here
                    self.clients.insert(id, c);
                }
                Err(e) => return self.accept_error("control", e, now),
            }
        }
    }

    pub(super) fn client_event(&mut self, id: u64, r: Ready, now: u64) {
        let Some(mut c) = self.clients.remove(&id) else {
            return;
        };
        if (r.readable || r.hangup) && !c.closing {
            let before = c.inbuf.len();
            let result = c.read_available();
            if c.inbuf.len() > before {
                c.last_rx_us = now;
                c.ping_sent_us = None;
            }
            match result {
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
    pub(super) fn flush_client(&mut self, id: u64, now: u64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let eyes = &mut self.eyes;
        let sent = |p: &Packet| {
            if let Some(e) = eyes.get_mut(p.meta.eye as usize) {
                e.stats.capture_to_sent.record(now.saturating_sub(p.meta.capture_us));
            }
        };
        match c.flush(now, sent) {
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

    pub(super) fn drop_client(&mut self, id: u64, why: &str) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        match &c.role {
            Role::Video { eye, sub, .. } => {
                let e = &mut self.eyes[*eye as usize];
                e.viewers.retain(|&v| v != id);
                self.pending_events.push(format!("event viewer eye={eye} left viewers={}", e.viewers.len()));
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
    pub(super) fn fan_out(&mut self, eye: u8, p: &Arc<Packet>, now: u64) {
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
        for i in 0..self.eyes[eye as usize].viewers.len() {
            // (a write error drops the client and shortens the list: re-check the index)
            let Some(&id) = self.eyes[eye as usize].viewers.get(i) else { break };
            self.flush_client(id, now);
        }
    }

    pub(super) fn process_input(&mut self, id: u64, c: &mut Client, now: u64) {
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
                    let pending: Vec<Line> = std::iter::from_fn(|| lines.next_line()).collect();
                    for line in pending {
                        let reply = match line {
                            Line::Text(t) => self.execute_line(&t, c, now),
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

    pub(super) fn process_ws(&mut self, c: &mut Client, now: u64) {
        loop {
            let is_control = matches!(c.role, Role::ControlWs { .. });
            let ev = match &mut c.role {
                Role::Video { ws, .. } | Role::ControlWs { ws } => ws.read(&mut c.inbuf),
                _ => unreachable!("websocket role"),
            };
            while let Some(f) = c.ws_mut().unwrap().take_outgoing() {
                c.outbox.push_bytes(f);
            }
            let frames = c.ws_mut().unwrap().frames_received();
            let new_frames = (frames - c.frames_seen) as u32;
            c.frames_seen = frames;
            if new_frames > 0 && !c.frame_budget.allow(new_frames, now) {
                crate::info!("client {}: more than {MAX_WS_FRAMES_PER_S} WebSocket frames/s; closing", c.peer);
                if let Some(f) = c.ws_mut().unwrap().close(close::POLICY_VIOLATION, "too many frames") {
                    c.outbox.push_bytes(f);
                }
                c.close_after_flush(now, CLOSE_GRACE_US);
                return;
            }
            match ev {
                Ok(None) => return,
                Ok(Some(Event::Text(t))) if is_control => {
                    for line in t.lines().filter(|l| !l.trim().is_empty()) {
                        let reply = self.execute_line(line, c, now);
                        let msg = c.ws_mut().unwrap().message(Opcode::Text, reply.as_bytes());
                        c.outbox.push_bytes(msg);
                    }
                }
                Ok(Some(Event::Binary(_))) if is_control => {
                    // The control language is text: a binary message is a client that speaks
                    // something else (RFC 6455 §7.4.1: 1003, data it cannot accept).
                    crate::info!("client {}: binary message on /control; closing (1003)", c.peer);
                    if let Some(f) = c.ws_mut().unwrap().close(close::UNSUPPORTED_DATA, "control commands are text") {
                        c.outbox.push_bytes(f);
                    }
                    c.close_after_flush(now, CLOSE_GRACE_US);
                    return;
                }
                Ok(Some(Event::Closed { .. })) => {
                    c.close_after_flush(now, CLOSE_GRACE_US);
                    return;
                }
                Ok(Some(Event::Text(t))) if t.trim() == "keyframe" => {
                    // A viewer whose decoder lost its place (RTCP's picture loss, in spirit):
                    // watching is enough to ask; the gate allows one forced IDR per 500 ms.
                    if let Role::Video { eye, .. } = c.role {
                        crate::debug!("viewer {} asks eye {eye} for a keyframe", c.peer);
                        self.eyes[eye as usize].keyframes.request();
                    }
                }
                Ok(Some(_)) => {} // viewers have nothing else to say; pongs need no answer
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

    /// Time limits, checked by the housekeeping timer: slow request heads (slowloris) get 408,
    /// idle keep-alive connections and stuck viewers are dropped, quiet WebSockets are pinged
    /// and closed when no pong comes back.
    pub(super) fn check_timeouts(&mut self, now: u64) {
        let t = self.cfg.timeouts;
        let mut gone = Vec::new();
        let mut touched = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            if c.closing {
                if now >= c.closing_deadline_us {
                    gone.push((id, "did not finish closing"));
                }
                continue;
            }
            match &mut c.role {
                Role::Http => {
                    let waiting_for_head = !c.inbuf.is_empty() || c.responses == 0;
                    if waiting_for_head && now.saturating_sub(c.request_since_us) > t.header_us {
                        crate::debug!("client {id} ({}): request head not complete in time", c.peer);
                        c.outbox.push_bytes(response::error(408, "request head took too long", &[]));
                        c.close_after_flush(now, CLOSE_GRACE_US);
                        touched.push(id);
                    } else if !waiting_for_head && now.saturating_sub(c.request_since_us) > t.idle_us {
                        gone.push((id, "idle"));
                    }
                }
                Role::Video { sub, .. } if sub.is_stuck(&c.outbox, now) => {
                    gone.push((id, "stuck: no progress writing video"))
                }
                Role::Video { ws, .. } | Role::ControlWs { ws } => match c.ping_sent_us {
                    Some(sent) if now.saturating_sub(sent) > t.ping_us => gone.push((id, "no answer to a ping")),
                    None if now.saturating_sub(c.last_rx_us) > t.ping_us => {
                        c.outbox.push_bytes(ws.ping(b"pieyes"));
                        c.ping_sent_us = Some(now);
                        touched.push(id);
                    }
                    _ => {}
                },
                Role::ControlUnix { .. } => {}
            }
        }
        for (id, why) in gone {
            self.drop_client(id, why);
        }
        for id in touched {
            self.flush_client(id, now);
        }
    }

    /// Run one command line for client `c`: rate limit, steering rights, then the command.
    pub(super) fn execute_line(&mut self, line: &str, c: &mut Client, now: u64) -> String {
        if !c.command_budget.allow(1, now) {
            return format!("err rate-limited more than {MAX_COMMANDS_PER_S} commands/s; slow down");
        }
        match command::parse(line) {
            Ok(Command::Watch) => {
                c.watching = true;
                format!("ok watching {}", commands::state_json(self))
            }
            Ok(Command::Auth(token)) => match &self.token {
                None => "ok steering (no token is required)".into(),
                Some(t) if crate::limits::same_secret(t.as_bytes(), token.as_bytes()) => {
                    c.may_steer = true;
                    crate::info!("client {}: steering unlocked with the token", c.peer);
                    "ok steering".into()
                }
                Some(_) => {
                    crate::warn!("client {}: wrong steering token", c.peer);
                    "err forbidden wrong token".into()
                }
            },
            Ok(cmd) if cmd.is_steering() && !c.may_steer => {
                "err forbidden this connection is view-only: steering needs the token (auth <token>)".into()
            }
            Ok(cmd) => match commands::execute(self, cmd, now) {
                Ok(reply) => reply,
                Err(e) => command::format_err(&e),
            },
            Err(e) => command::format_err(&e),
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
            for (what, ch) in &changes {
                match ch {
                    Change::Stalled { silent_us } => {
                        crate::error!("eye {i}: {what} stalled: nothing for {} ms", silent_us / 1000)
                    }
                    Change::Failing { reason } => crate::error!("eye {i}: {what} failing: {reason}"),
                    Change::Recovered { after_us, lost } => {
                        crate::info!("eye {i}: {what} recovered after {} ms ({lost} frames lost)", after_us / 1000)
                    }
                }
            }
            let e = &self.eyes[i];
            let (cam, enc) = (e.camera_health.describe(), e.encoder_health.describe());
            self.pending_events.push(format!("event health eye={i} camera={cam:?} encoder={enc:?}"));
            let msg = crate::json::Obj::new()
                .str("type", "status")
                .int("eye", i as u64)
                .str("camera", &cam)
                .str("encoder", &enc)
                .finish();
            for id in e.viewers.clone() {
                if let Some(c) = self.clients.get_mut(&id) {
                    if let Some(ws) = c.ws_mut() {
                        let frame = ws.message(Opcode::Text, msg.as_bytes());
                        c.outbox.push_bytes(frame);
                    }
                }
                self.flush_client(id, now);
            }
        }
    }

    /// Send pending event lines (and the eyes' crop events) to every `watch` connection.
    pub(super) fn broadcast_events(&mut self) {
        for e in &mut self.eyes {
            self.pending_events.append(&mut e.events);
        }
        if self.pending_events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending_events);
        let now = monotonic_us();
        let watchers: Vec<u64> =
            self.clients.iter().filter(|(_, c)| c.watching && !c.closing).map(|(&id, _)| id).collect();
        for id in watchers {
            let c = self.clients.get_mut(&id).expect("listed");
            if c.outbox.pending_bytes() > MAX_WATCH_BACKLOG {
                c.close_after_flush(now, CLOSE_GRACE_US);
                crate::warn!("client {id} ({}): not reading its watch events; closing", c.peer);
                continue;
            }
            for ev in &events {
                let msg = match &c.role {
                    Role::ControlWs { ws } => ws.message(Opcode::Text, ev.as_bytes()),
                    _ => format!("{ev}\n").into_bytes(),
                };
                c.outbox.push_bytes(msg);
            }
            self.flush_client(id, now);
        }
        self.pending_events = events;
        self.pending_events.clear();
    }
}
