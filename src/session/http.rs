//! An HTTP/1.1 connection before any upgrade: requests in (pipelined or one by one, each head
//! bounded by `http::request`), one response out per request, in order. The daemon routes
//! each request (`Ask::Route`) and answers with `respond` — or turns the connection into a
//! WebSocket session (`take_upgrade`). Time limits: a request head must be complete within
//! `header_us` of the previous response (slowloris: 408), and a kept-alive connection with no
//! request under way closes after `idle_us`. Back-pressure: no further request is taken while
//! the responses already queued are unread past `MAX_HTTP_BACKLOG`.

use super::{Ask, Expired, Link};
use crate::http::request;
use crate::http::response;
use crate::limits::{CLOSE_GRACE_US, MAX_HTTP_BACKLOG, MAX_UNPARSED_INPUT, Timeouts};

pub struct HttpSession {
    link: Link,
    input: Vec<u8>,
    /// A request went to the daemon and is not answered yet: parse no further.
    awaiting: bool,
    /// When the current request began: connect, or the previous response's last byte leaving.
    request_since_us: u64,
    /// When bytes last left, while a response is on its way: a slow reader that keeps reading
    /// keeps the connection; one that stops is dropped an idle timeout later.
    progress_us: u64,
    responses: u64,
    timeouts: Timeouts,
}

impl HttpSession {
    pub fn new(peer: String, now_us: u64, timeouts: Timeouts) -> HttpSession {
        HttpSession {
            link: Link::new(peer, now_us),
            input: Vec::new(),
            awaiting: false,
            request_since_us: now_us,
            progress_us: now_us,
            responses: 0,
            timeouts,
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    pub fn handle_input(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    pub fn wants_input(&self) -> bool {
        self.input.len() < MAX_UNPARSED_INPUT && !self.backlogged()
    }

    /// The responses already queued are unread past the backlog limit: take no more requests.
    pub fn backlogged(&self) -> bool {
        self.link.outbox.pending_bytes() >= MAX_HTTP_BACKLOG
    }

    pub fn awaiting_response(&self) -> bool {
        self.awaiting
    }

    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        if self.awaiting || self.backlogged() {
            return None;
        }
        match request::parse(&self.input) {
            Ok(None) => None,
            Err(e) => {
                crate::debug!("client {}: bad request: {}", self.link.peer, e.reason());
                self.input.clear();
                self.refuse(e.status(), e.reason(), &[], now_us);
                None
            }
            Ok(Some((req, n))) => {
                self.input.drain(..n);
                self.responses += 1;
                self.request_since_us = now_us;
                self.awaiting = true;
                Some(Ask::Route(req))
            }
        }
    }

    /// The response to the request in hand (a whole response, head and body).
    pub fn respond(&mut self, bytes: Vec<u8>, keep_alive: bool, now_us: u64) {
        self.awaiting = false;
        self.request_since_us = now_us;
        self.progress_us = now_us;
        self.link.send(bytes);
        if !keep_alive {
            self.link.close_after_flush(now_us, CLOSE_GRACE_US);
        }
    }

    /// An error response; the connection closes after it.
    pub fn refuse(&mut self, status: u16, why: &str, extra: &[(&str, &str)], now_us: u64) {
        self.awaiting = false;
        self.link.send(response::error(status, why, extra));
        self.link.close_after_flush(now_us, CLOSE_GRACE_US);
    }

    /// The request in hand was a WebSocket handshake the daemon accepted: what the new
    /// session starts from (the link, and whatever the client sent after the handshake).
    /// (It leaves an empty shell behind, which `Session::upgrade` replaces at once.)
    pub fn take_upgrade(&mut self) -> (Link, Vec<u8>) {
        let link = std::mem::replace(&mut self.link, Link::new(String::new(), 0));
        (link, std::mem::take(&mut self.input))
    }

    fn waiting_for_head(&self) -> bool {
        !self.input.is_empty() || self.responses == 0
    }

    /// `n` bytes of the outbox left. Once all of it has, the clocks for the next request (its
    /// head, or idleness) start.
    pub fn sent(&mut self, n: usize, now_us: u64) {
        self.link.outbox.advance(n, |_| {});
        self.progress_us = now_us;
        if self.link.outbox.is_empty() {
            self.request_since_us = now_us;
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        if self.awaiting {
            return None;
        }
        if !self.link.outbox.is_empty() {
            return Some(self.progress_us + self.timeouts.idle_us); // a response on its way
        }
        let limit = if self.waiting_for_head() { self.timeouts.header_us } else { self.timeouts.idle_us };
        Some(self.request_since_us + limit)
    }

    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        let due = self.poll_timeout().is_some_and(|t| now_us > t);
        if !due {
            return None;
        }
        if !self.link.outbox.is_empty() {
            crate::debug!("client {}: stopped reading its response", self.link.peer);
            Some("idle")
        } else if self.waiting_for_head() {
            crate::debug!("client {}: request head not complete in time", self.link.peer);
            self.refuse(408, "request head took too long", &[], now_us);
            None
        } else {
            Some("idle")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { header_us: 1_000, idle_us: 5_000, ping_us: 100 };

    fn session() -> HttpSession {
        HttpSession::new("test".into(), 0, T)
    }

    fn text(l: &mut Link) -> String {
        String::from_utf8_lossy(&l.outbox.drain_to_vec()).into_owned()
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time_in_order() {
        let mut s = session();
        s.handle_input(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
        let Some(Ask::Route(a)) = s.poll(1) else { panic!() };
        assert_eq!(a.path, "/a");
        assert_eq!(s.poll(1), None, "no second request before the first is answered");
        s.respond(b"A".to_vec(), true, 2);
        let Some(Ask::Route(b)) = s.poll(2) else { panic!() };
        assert_eq!(b.path, "/b");
        s.respond(b"B".to_vec(), false, 3);
        assert_eq!(text(s.link_mut()), "AB");
        assert!(s.link().is_closing(), "Connection: close after the last");
    }

    #[test]
    fn unread_responses_stop_the_next_request_and_the_reading() {
        let mut s = session();
        for _ in 0..3 {
            s.handle_input(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
        }
        assert!(matches!(s.poll(0), Some(Ask::Route(_))));
        s.respond(vec![0; MAX_HTTP_BACKLOG], true, 0);
        assert_eq!(s.poll(0), None, "the client has not read the first response");
        assert!(!s.wants_input());
        s.link.outbox.advance(MAX_HTTP_BACKLOG, |_| {});
        assert!(s.wants_input());
        assert!(matches!(s.poll(0), Some(Ask::Route(_))));
    }

    #[test]
    fn a_slow_reader_keeps_its_response_and_the_next_request_waits_for_it() {
        let mut s = session(); // head 1 ms, idle 5 ms
        s.handle_input(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\n");
        assert!(matches!(s.poll(0), Some(Ask::Route(_))));
        s.respond(vec![0; 30_000], true, 0);
        // Read 10 kB every 4 ms: never 5 ms without progress, though 12 ms in all.
        for t in [4_000, 8_000, 12_000] {
            assert_eq!(s.handle_timeout(t), None, "reading at {t}");
            s.sent(10_000, t);
        }
        assert!(s.link.outbox.is_empty() && !s.link.is_closing(), "the whole response left, nothing refused");
        assert_eq!(s.poll_timeout(), Some(12_000 + 1_000), "the next head's clock starts as the response ends");
        // A reader that stops is dropped an idle timeout after it last read.
        let mut s = session();
        s.handle_input(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(s.poll(0).is_some());
        s.respond(vec![0; 30_000], true, 0);
        s.sent(10_000, 2_000);
        assert_eq!(s.handle_timeout(7_000), None);
        assert_eq!(s.handle_timeout(7_001), Some("idle"));
    }

    #[test]
    fn a_bad_request_is_answered_and_closes() {
        let mut s = session();
        s.handle_input(b"\x00\x01 nonsense\r\n\r\n");
        assert_eq!(s.poll(0), None);
        assert!(text(s.link_mut()).starts_with("HTTP/1.1 400 "));
        assert!(s.link().is_closing());
    }

    #[test]
    fn slow_heads_get_408_and_idle_connections_go() {
        let mut s = session();
        s.handle_input(b"GET / HTTP/1.1\r\n");
        assert_eq!(s.poll(10), None);
        assert_eq!(s.poll_timeout(), Some(1_000));
        assert_eq!(s.handle_timeout(1_000), None, "not yet");
        assert_eq!(s.handle_timeout(1_001), None);
        assert!(text(s.link_mut()).starts_with("HTTP/1.1 408 "));
        assert!(s.link().is_closing());

        let mut s = session();
        s.handle_input(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(s.poll(10).is_some());
        assert_eq!(s.poll_timeout(), None, "the daemon has the request");
        s.respond(b"ok".to_vec(), true, 20);
        assert_eq!(s.poll_timeout(), Some(20 + 5_000), "idle keep-alive");
        assert_eq!(s.handle_timeout(5_021), Some("idle"));
    }

    #[test]
    fn an_upgrade_keeps_what_followed_the_handshake() {
        let mut s = session();
        s.handle_input(b"GET /cam0 HTTP/1.1\r\nHost: h\r\n\r\n\x81\x80");
        assert!(s.poll(0).is_some());
        let (_, rest) = s.take_upgrade();
        assert_eq!(rest, b"\x81\x80");
    }
}
