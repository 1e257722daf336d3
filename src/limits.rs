//! Every limit pieyes puts on what a client may do, in one place (README.md, "Limits").
//! What is not here lives beside the parser it bounds: `http::request::{MAX_HEAD,
//! MAX_HEADERS}`, `control::command::MAX_LINE`, `stream::fanout::Limits`.

/// Network connections (HTTP, WebSocket) at once; past it: 503.
pub const MAX_CONNECTIONS: usize = 256;
/// Unix control socket connections at once, a budget of their own: however many network
/// clients there are, the robot's controller still gets in. Past it: `err busy`.
pub const MAX_CONTROL_CONNECTIONS: usize = 32;
/// TCP connections from one address at once; past it: 503.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 32;

/// Whether a new network connection fits the budgets, given the connections already open from
/// its address and in all (`Err`: why not, for its 503).
pub fn admit_network(from_address: usize, open: usize) -> Result<(), &'static str> {
    if from_address >= MAX_CONNECTIONS_PER_ADDRESS {
        Err("too many connections from your address")
    } else if open >= MAX_CONNECTIONS {
        Err("too many connections")
    } else {
        Ok(())
    }
}

/// Whether a new control socket connection fits its own budget (`Err`: why not).
pub fn admit_control(open: usize) -> Result<(), &'static str> {
    if open >= MAX_CONTROL_CONNECTIONS { Err("too many control connections") } else { Ok(()) }
}

/// Time limits on connections; each has a flag (`--header-timeout` …, in seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// A request head (a WebSocket handshake included) must arrive within this: else 408.
    pub header_us: u64,
    /// An HTTP keep-alive connection with no request in progress is closed after this.
    pub idle_us: u64,
    /// A WebSocket that has sent nothing for this long gets a ping, and is closed if nothing
    /// (a pong) comes back within as long again.
    pub ping_us: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { header_us: 10_000_000, idle_us: 60_000_000, ping_us: 15_000_000 }
    }
}
/// Largest WebSocket message a client may send (commands are one short line): close 1009.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// WebSocket frames per second from one client (burst of twice that): past it, close 1008.
pub const MAX_WS_FRAMES_PER_S: u32 = 100;
/// Control commands per second on one connection (burst of twice that): past it, `err rate-limited`.
pub const MAX_COMMANDS_PER_S: u32 = 50;
/// Frame taps at once (`tap` on the control socket); past it: `err busy`.
pub const MAX_TAPS: usize = 4;
/// A tap that holds a frame longer than this without `release` is disconnected.
pub const TAP_HOLD_TIMEOUT_US: u64 = 2_000_000;
/// A `watch` connection that lets this much pile up unread is closed.
pub const MAX_WATCH_BACKLOG: usize = 1 << 20;
/// How long a closing connection may take to flush before it is dropped.
pub const CLOSE_GRACE_US: u64 = 1_000_000;
/// Back-pressure: an HTTP connection whose responses are unread past this many bytes is not
/// read (its next pipelined request waits in the kernel) until they drain.
pub const MAX_HTTP_BACKLOG: usize = 256 * 1024;
/// Back-pressure: a control connection whose replies are unread past this many bytes is not
/// read until they drain (`watch` events are bounded apart, by `MAX_WATCH_BACKLOG`).
pub const MAX_REPLY_BACKLOG: usize = 64 * 1024;
/// Bytes read but not yet parsed that a connection may hold; past it, reading pauses.
pub const MAX_UNPARSED_INPUT: usize = 256 * 1024;

/// A token bucket: `rate` per second, up to `burst` at once.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_us: u64,
}

impl TokenBucket {
    pub fn new(rate_per_s: u32, burst: u32, now_us: u64) -> Self {
        TokenBucket { rate: rate_per_s as f64, burst: burst as f64, tokens: burst as f64, last_us: now_us }
    }

    /// Take `n` tokens; false (and nothing taken) if there are not enough.
    pub fn allow(&mut self, n: u32, now_us: u64) -> bool {
        let dt = now_us.saturating_sub(self.last_us) as f64 / 1e6;
        self.last_us = now_us;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// Microseconds from `now_us` until `n` tokens are there (0 if they are).
    pub fn time_until(&self, n: u32, now_us: u64) -> u64 {
        let dt = now_us.saturating_sub(self.last_us) as f64 / 1e6;
        let have = (self.tokens + dt * self.rate).min(self.burst);
        let missing = (n as f64).min(self.burst) - have;
        if missing <= 0.0 { 0 } else { (missing / self.rate * 1e6).ceil() as u64 }
    }
}

/// Compare secrets in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_budgets() {
        assert_eq!(admit_network(0, 0), Ok(()));
        assert_eq!(admit_network(MAX_CONNECTIONS_PER_ADDRESS - 1, MAX_CONNECTIONS - 1), Ok(()));
        assert_eq!(admit_network(MAX_CONNECTIONS_PER_ADDRESS, 0), Err("too many connections from your address"));
        assert_eq!(admit_network(0, MAX_CONNECTIONS), Err("too many connections"));
        assert_eq!(admit_control(MAX_CONTROL_CONNECTIONS - 1), Ok(()));
        assert_eq!(admit_control(MAX_CONTROL_CONNECTIONS), Err("too many control connections"));
    }

    #[test]
    fn bucket_allows_bursts_then_the_rate() {
        let mut r = TokenBucket::new(10, 20, 0);
        assert!((0..20).all(|_| r.allow(1, 0)), "a full burst");
        assert!(!r.allow(1, 0));
        assert!(!r.allow(1, 50_000), "half a token after 50 ms");
        assert!(r.allow(1, 100_000), "one token after 100 ms");
        assert!(r.allow(20, 10_000_000), "refills to the burst, not beyond");
        assert!(!r.allow(1, 10_000_000));
    }

    #[test]
    fn secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd") && !same_secret(b"abc", b"abcd") && !same_secret(b"", b"a"));
    }
}
