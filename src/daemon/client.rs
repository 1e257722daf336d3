//! A connected client (browser or controller) as the loop sees it: a socket, what it is
//! (still speaking HTTP, a video viewer, a control connection), and its in/out buffers.

use std::io::{IoSlice, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use crate::control::line::LineReader;
use crate::histogram::Histogram;
use crate::limits::{MAX_COMMANDS_PER_S, MAX_WS_FRAMES_PER_S, RateLimit};
use crate::stream::fanout::Subscriber;
use crate::stream::outbox::{MAX_SLICES, Outbox};
use crate::stream::wire::Packet;
use crate::sys::socket::send_vectored;
use crate::ws::connection::Connection;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

pub enum Role {
    /// Reading HTTP requests (keep-alive), before any upgrade.
    Http,
    /// `/cam0`, `/cam1`: receives video.
    Video { eye: u8, ws: Connection, sub: Subscriber },
    /// `/control`: commands and replies as WebSocket text messages.
    ControlWs { ws: Connection },
    /// The Unix control socket: newline-separated commands.
    ControlUnix { lines: LineReader },
}

pub struct Client {
    pub stream: Stream,
    pub role: Role,
    pub peer: String,
    pub inbuf: Vec<u8>,
    pub outbox: Outbox,
    /// Stop reading; drop once the outbox is flushed (or `closing_deadline_us` passes).
    pub closing: bool,
    pub closing_deadline_us: u64,
    /// Sent `watch`: receives event lines.
    pub watching: bool,
    /// The peer's address (TCP only), for the per-address connection limit.
    pub addr: Option<std::net::IpAddr>,
    /// When the current HTTP request began (connect, or the end of the previous response).
    pub request_since_us: u64,
    pub responses: u64,
    /// Last time any byte arrived.
    pub last_rx_us: u64,
    /// A keepalive ping is out and unanswered since then.
    pub ping_sent_us: Option<u64>,
    /// WebSocket frames received so far (rate limited by `frame_budget`).
    pub frames_seen: u64,
    pub frame_budget: RateLimit,
    pub command_budget: RateLimit,
    /// Encoded → last byte written, per video packet, µs.
    pub encoded_to_sent: Histogram,
    /// May send steering commands (always on the Unix socket; with the token, or when no
    /// token is set, on `/control`).
    pub may_steer: bool,
}

pub enum ReadResult {
    /// Bytes were appended to `inbuf` (possibly zero on a spurious wake).
    Data,
    /// The peer closed its side or the socket failed.
    Gone(String),
}

/// Bytes read per readable event at most, so one chatty client cannot starve the others.
const READ_BUDGET: usize = 256 * 1024;

impl Client {
    pub fn new(stream: Stream, role: Role, peer: String, addr: Option<std::net::IpAddr>, now_us: u64) -> Client {
        Client {
            stream,
            role,
            peer,
            inbuf: Vec::new(),
            outbox: Outbox::default(),
            closing: false,
            closing_deadline_us: 0,
            watching: false,
            addr,
            request_since_us: now_us,
            responses: 0,
            last_rx_us: now_us,
            ping_sent_us: None,
            frames_seen: 0,
            frame_budget: RateLimit::new(MAX_WS_FRAMES_PER_S, 2 * MAX_WS_FRAMES_PER_S, now_us),
            command_budget: RateLimit::new(MAX_COMMANDS_PER_S, 2 * MAX_COMMANDS_PER_S, now_us),
            may_steer: false,
            encoded_to_sent: Histogram::new(),
        }
    }

    pub fn read_available(&mut self) -> ReadResult {
        let mut chunk = [0u8; 16 * 1024];
        let mut total = 0;
        while total < READ_BUDGET {
            let r = match &mut self.stream {
                Stream::Tcp(s) => s.read(&mut chunk),
                Stream::Unix(s) => s.read(&mut chunk),
            };
            match r {
                Ok(0) => return ReadResult::Gone("closed by peer".into()),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadResult::Gone(e.to_string()),
            }
        }
        ReadResult::Data
    }

    /// Write as much of the outbox as the socket takes; `sent` sees each video packet whose
    /// last byte went (and this viewer's encoded→sent histogram records it). Returns bytes
    /// written, or the error that means the client is gone (EPIPE, ECONNRESET…).
    pub fn flush(&mut self, now_us: u64, mut sent: impl FnMut(&Packet)) -> std::io::Result<usize> {
        let hist = &mut self.encoded_to_sent;
        let mut sent = |p: &Packet| {
            hist.record(now_us.saturating_sub(p.encoded_us));
            sent(p)
        };
        let mut written = 0;
        while !self.outbox.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.outbox.slices(&mut slices);
            match send_vectored(&self.stream, &slices[..n]) {
                Ok(0) => break,
                Ok(k) => {
                    self.outbox.advance(k, &mut sent);
                    written += k;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    pub fn wants_write(&self) -> bool {
        !self.outbox.is_empty()
    }

    pub fn ws_mut(&mut self) -> Option<&mut Connection> {
        match &mut self.role {
            Role::Video { ws, .. } | Role::ControlWs { ws } => Some(ws),
            _ => None,
        }
    }

    /// Begin closing: stop reading, drop after the outbox drains or in `grace_us`.
    pub fn close_after_flush(&mut self, now_us: u64, grace_us: u64) {
        if !self.closing {
            self.closing = true;
            self.closing_deadline_us = now_us + grace_us;
        }
    }
}
