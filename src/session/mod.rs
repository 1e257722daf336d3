//! One sans-IO state machine per connection role, fed bytes and the time:
//!
//! - `http`: request/response with keep-alive, head and idle timeouts, back-pressure;
//! - `viewer`: a `/cam0`, `/cam1` video WebSocket (fan-out policy, keyframe asks, keepalive);
//! - `control_ws`: the `/control` WebSocket (commands, replies, `watch` events);
//! - `control_line`: the Unix control socket (the same, one line each).
//!
//! Each takes input (`handle_input`, `handle_eof`), hands the daemon what it must decide or
//! carry out (`poll` → `Ask`), queues what to send in its `Link`'s outbox, and keeps its own
//! deadlines (`poll_timeout`, `handle_timeout`), after quinn-proto's shape. The loop owns the
//! sockets and nothing else. Once a session starts closing it takes no more input and sends
//! nothing new: only what was queued before drains, within a grace period.

pub mod commands;
pub mod control_line;
pub mod control_ws;
pub mod http;
pub mod routes;
pub mod viewer;
pub mod websocket;

use std::sync::Arc;

use crate::control::command::Command;
use crate::control::reply::Reply;
use crate::http::request::Request;
use crate::stream::fanout::Offer;
use crate::stream::outbox::Outbox;
use crate::stream::wire::Packet;

/// What a session needs the daemon to decide or do.
#[derive(Debug, PartialEq)]
pub enum Ask {
    /// HTTP: route this request and answer it (`HttpSession::respond`, or an upgrade).
    Route(Request),
    /// Control: execute this command (rights already checked) and hand back the reply
    /// (`reply`); the session reads no further command until then, so replies stay in order.
    Execute(Command),
    /// A viewer's decoder lost its place and asks for an IDR.
    Keyframe,
    /// Unix control socket: a frame tap verb (`tap`, `release`, `untap`), answered at once
    /// (`ControlLineSession::answer`).
    Tap(crate::tap::TapCommand),
}

/// What every session has: who is on the other end, what is queued to send, and whether the
/// connection is closing.
pub struct Link {
    pub peer: String,
    pub outbox: Outbox,
    /// Closing: drop once the outbox drains, or at this time.
    closing_until: Option<u64>,
    /// The peer closed its side: what it sent is still handled, nothing more will come.
    eof: bool,
    /// Last time a byte arrived.
    last_rx_us: u64,
}

impl Link {
    pub fn new(peer: String, now_us: u64) -> Link {
        Link { peer, outbox: Outbox::default(), closing_until: None, eof: false, last_rx_us: now_us }
    }

    pub fn is_closing(&self) -> bool {
        self.closing_until.is_some()
    }

    /// The peer closed its side (or the socket failed).
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Stop taking input; drop once the outbox drains or `grace_us` passes.
    pub fn close_after_flush(&mut self, now_us: u64, grace_us: u64) {
        if self.closing_until.is_none() {
            self.closing_until = Some(now_us + grace_us);
        }
    }

    /// Nothing left to do: closing and flushed.
    pub fn is_finished(&self) -> bool {
        self.is_closing() && self.outbox.is_empty()
    }

    /// Queue bytes unless the connection is closing (nothing new goes out then).
    pub fn send(&mut self, bytes: Vec<u8>) {
        if !self.is_closing() {
            self.outbox.push_bytes(bytes);
        }
    }

    fn received(&mut self, now_us: u64) {
        self.last_rx_us = now_us;
    }

    /// The closing deadline passed with bytes still unsent.
    fn closing_expired(&self, now_us: u64) -> bool {
        self.closing_until.is_some_and(|t| now_us >= t)
    }
}

/// The four roles, as the loop holds them.
pub enum Session {
    Http(http::HttpSession),
    Viewer(viewer::ViewerSession),
    ControlWs(control_ws::ControlWsSession),
    ControlLine(control_line::ControlLineSession),
}

/// Why a session ended by itself (its time ran out), for the log.
pub type Expired = &'static str;

impl Session {
    pub fn link(&self) -> &Link {
        match self {
            Session::Http(s) => s.link(),
            Session::Viewer(s) => s.link(),
            Session::ControlWs(s) => s.link(),
            Session::ControlLine(s) => s.link(),
        }
    }

    pub fn link_mut(&mut self) -> &mut Link {
        match self {
            Session::Http(s) => s.link_mut(),
            Session::Viewer(s) => s.link_mut(),
            Session::ControlWs(s) => s.link_mut(),
            Session::ControlLine(s) => s.link_mut(),
        }
    }

    /// The WebSocket handshake of this HTTP session passed: it becomes what `make` builds on
    /// its link, which is then fed whatever the client sent after the handshake.
    pub fn upgrade(&mut self, now_us: u64, make: impl FnOnce(Link) -> Session) {
        let Session::Http(http) = self else { unreachable!("only HTTP sessions are upgraded") };
        let (link, rest) = http.take_upgrade();
        *self = make(link);
        if !rest.is_empty() {
            self.handle_input(&rest, now_us);
        }
    }

    pub fn handle_input(&mut self, data: &[u8], now_us: u64) {
        if self.link().is_closing() {
            return;
        }
        self.link_mut().received(now_us);
        match self {
            Session::Http(s) => s.handle_input(data),
            Session::Viewer(s) => s.handle_input(data),
            Session::ControlWs(s) => s.handle_input(data),
            Session::ControlLine(s) => s.handle_input(data),
        }
    }

    /// The peer closed its side (or the socket failed): handle what arrived, then close.
    pub fn handle_eof(&mut self) {
        self.link_mut().eof = true;
    }

    /// Whether the loop should read more now: false while closing, and while the peer has
    /// not read what was already answered (back-pressure: the rest waits in the kernel).
    pub fn wants_input(&self) -> bool {
        let l = self.link();
        !l.is_closing()
            && !l.eof
            && match self {
                Session::Http(s) => s.wants_input(),
                Session::Viewer(s) => s.wants_input(),
                Session::ControlWs(s) => s.wants_input(),
                Session::ControlLine(s) => s.wants_input(),
            }
    }

    /// The next thing the daemon must do for this session, if any.
    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        if self.link().is_closing() {
            return None;
        }
        let ask = match self {
            Session::Http(s) => s.poll(now_us),
            Session::Viewer(s) => s.poll(now_us),
            Session::ControlWs(s) => s.poll(now_us),
            Session::ControlLine(s) => s.poll(now_us),
        };
        if ask.is_none() && self.link().eof && !self.awaiting_reply() && !self.backlogged() {
            // Everything the peer sent is handled and answered: close once it is flushed.
            self.link_mut().close_after_flush(now_us, crate::limits::CLOSE_GRACE_US);
        }
        ask
    }

    /// Holding its input back until the peer reads the replies already queued (the backlog
    /// limit): requests may still wait behind them, so EOF does not mean all is answered yet.
    fn backlogged(&self) -> bool {
        match self {
            Session::Http(s) => s.backlogged(),
            Session::ControlWs(s) => s.backlogged(),
            Session::ControlLine(s) => s.backlogged(),
            Session::Viewer(_) => false,
        }
    }

    fn awaiting_reply(&self) -> bool {
        match self {
            Session::Http(s) => s.awaiting_response(),
            Session::ControlWs(s) => s.gate().awaiting(),
            Session::ControlLine(s) => s.gate().awaiting(),
            Session::Viewer(_) => false,
        }
    }

    /// The reply to the `Ask::Execute` this session is waiting for.
    pub fn reply(&mut self, r: &Reply) {
        match self {
            Session::ControlWs(s) => s.reply(r),
            Session::ControlLine(s) => s.reply(r),
            Session::Http(_) | Session::Viewer(_) => {}
        }
    }

    /// Whether this session asked for `watch` events.
    pub fn is_watching(&self) -> bool {
        match self {
            Session::ControlWs(s) => s.gate().watching(),
            Session::ControlLine(s) => s.gate().watching(),
            Session::Http(_) | Session::Viewer(_) => false,
        }
    }

    /// One `watch` event line (already formatted); a watcher that lets them pile up unread is
    /// closed (returns false then).
    pub fn push_event(&mut self, line: &str, now_us: u64) -> bool {
        match self {
            Session::ControlWs(s) => s.push_event(line, now_us),
            Session::ControlLine(s) => s.push_event(line, now_us),
            Session::Http(_) | Session::Viewer(_) => true,
        }
    }

    /// A video packet for a viewer (other roles ignore it).
    pub fn offer(&mut self, p: &Arc<Packet>, now_us: u64) -> Option<Offer> {
        match self {
            Session::Viewer(s) => Some(s.offer(p, now_us)),
            _ => None,
        }
    }

    /// Start the closing handshake (WebSockets get a close frame with `code`), then close.
    pub fn close(&mut self, code: u16, reason: &str, now_us: u64, grace_us: u64) {
        match self {
            Session::Viewer(s) => s.endpoint_mut().close(code, reason, now_us, grace_us),
            Session::ControlWs(s) => s.endpoint_mut().close(code, reason, now_us, grace_us),
            Session::Http(_) | Session::ControlLine(_) => self.link_mut().close_after_flush(now_us, grace_us),
        }
    }

    /// The next time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let own = match self {
            Session::Http(s) => s.poll_timeout(),
            Session::Viewer(s) => s.poll_timeout(),
            Session::ControlWs(s) => s.poll_timeout(),
            Session::ControlLine(s) => s.poll_timeout(),
        };
        [own, self.link().closing_until].into_iter().flatten().min()
    }

    /// Time passed: timeouts fire. `Some(why)`: the session is over and should be dropped now.
    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        if self.link().closing_expired(now_us) {
            return Some("did not finish closing");
        }
        if self.link().is_closing() {
            return None;
        }
        match self {
            Session::Http(s) => s.handle_timeout(now_us),
            Session::Viewer(s) => s.handle_timeout(now_us),
            Session::ControlWs(s) => s.handle_timeout(now_us),
            Session::ControlLine(s) => {
                s.handle_timeout(now_us);
                None
            }
        }
    }

    /// `n` bytes of the outbox went out at `now_us`; `packet_sent` sees each video packet whose
    /// last byte went (a viewer also records it in its own encoded→sent histogram).
    pub fn sent(&mut self, n: usize, now_us: u64, packet_sent: impl FnMut(&Packet)) {
        match self {
            Session::Viewer(s) => s.sent(n, now_us, packet_sent),
            Session::Http(s) => s.sent(n, now_us),
            _ => self.link_mut().outbox.advance(n, packet_sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_then_eof_are_all_answered_through_back_pressure() {
        let mut s = Session::Http(http::HttpSession::new("peer".into(), 0, crate::limits::Timeouts::default()));
        for _ in 0..20 {
            s.handle_input(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n", 0);
        }
        s.handle_eof();
        let (mut answered, mut turns) = (0, 0);
        while !s.link().is_finished() {
            turns += 1;
            assert!(turns < 1000, "stuck after {answered} responses");
            while let Some(Ask::Route(_)) = s.poll(0) {
                let Session::Http(h) = &mut s else { unreachable!() };
                h.respond(vec![b'x'; 21_000], true, 0);
                answered += 1;
            }
            // The peer reads a little at a time.
            let n = s.link().outbox.pending_bytes().min(50_000);
            s.link_mut().outbox.advance(n, |_| {});
        }
        assert_eq!(answered, 20, "every request answered before the close");
    }

    #[test]
    fn a_closing_link_queues_nothing_new_and_finishes_when_flushed() {
        let mut l = Link::new("peer".into(), 0);
        l.send(b"before".to_vec());
        l.close_after_flush(10, 100);
        l.send(b"after".to_vec());
        assert_eq!(l.outbox.pending_bytes(), 6, "only what was queued before closing");
        assert!(!l.is_finished());
        l.outbox.advance(6, |_| {});
        assert!(l.is_finished());
        assert!(!l.closing_expired(109) && l.closing_expired(110));
    }
}
