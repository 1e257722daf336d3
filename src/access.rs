//! Who may reach pieyes from the network, decided from what a request says — sans-IO.
//!
//! - **Host allowlist** (against DNS rebinding): a request must name this machine in `Host`:
//!   an IP literal, `localhost`, the machine's hostname or `hostname.local`, or a name given
//!   with `--allowed-hosts`. A web page that rebinds its own name to the robot's address then
//!   sends its own name and is refused (421), before any route runs. (Vite's
//!   `server.allowedHosts`, webpack-dev-server and Syncthing guard the same way.)
//! - **Origin** on the WebSocket endpoints: a browser always sends one, and it must name an
//!   allowed host too, so a page on another site cannot stream the cameras or steer through
//!   a visitor's browser (WebSockets have no CORS). Programs send no Origin and pass.
//! - **Token scope**: with `--token`, steering needs it (`auth`); with `--token-scope view`,
//!   watching the cameras and reading `/status` or `/metrics` need it too (`?token=` or
//!   `Authorization: Bearer`).
//! - **Token back-off**: each wrong guess from an address doubles the time before that
//!   address may guess again, and is logged once per burst, not once per guess.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::http::request::Request;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPolicy {
    /// Only these names (lower case, no port), besides IP literals and `localhost`.
    Names(Vec<String>),
    /// `--allowed-hosts any`: no check (behind a proxy that checks, or on a trusted net).
    Any,
}

/// `host[:port]`, `[v6]:port` or `v6` → the host part, lower case, without a trailing dot.
pub fn host_of(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if a.matches(':').count() == 1 {
        a.split(':').next().unwrap_or("")
    } else {
        a // a bare IPv6 literal, or no port
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl HostPolicy {
    /// `--allowed-hosts`: this machine's names plus those given, or (`None`) any name at all.
    pub fn from_flag(allowed: Option<&[String]>) -> HostPolicy {
        match allowed {
            Some(extra) => HostPolicy::for_machine(&machine_hostname(), extra),
            None => {
                crate::warn!("--allowed-hosts any: requests naming any host are served (DNS rebinding is not guarded)");
                HostPolicy::Any
            }
        }
    }

    /// The names always allowed: this machine's hostname and its mDNS name, plus `extra`.
    pub fn for_machine(hostname: &str, extra: &[String]) -> HostPolicy {
        let mut names = vec!["localhost".to_string()];
        let h = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        if !h.is_empty() {
            let short = h.split('.').next().unwrap_or(&h).to_string();
            names.push(format!("{short}.local"));
            names.push(short);
            names.push(h);
        }
        names.extend(extra.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()));
        names.sort();
        names.dedup();
        HostPolicy::Names(names)
    }

    pub fn allows(&self, host: &str) -> bool {
        match self {
            HostPolicy::Any => true,
            HostPolicy::Names(names) => {
                !host.is_empty()
                    && (host.parse::<IpAddr>().is_ok()
                        || names.iter().any(|n| n == host)
                        || host.ends_with(".localhost"))
            }
        }
    }

    /// The request's `Host` names this machine (HTTP/1.0 without Host passes: it cannot be a
    /// rebinding browser).
    pub fn allows_request(&self, req: &Request) -> bool {
        match req.header("host") {
            Some(h) => self.allows(&host_of(h)),
            None => true,
        }
    }

    /// A browser's `Origin` (`scheme://host[:port]`) names an allowed host; no Origin passes.
    pub fn allows_origin(&self, req: &Request) -> bool {
        let Some(origin) = req.header("origin") else {
            return true;
        };
        let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
            return matches!(self, HostPolicy::Any); // "null", file://, other schemes
        };
        self.allows(&host_of(rest.split('/').next().unwrap_or("")))
    }
}

/// What the token guards (`--token-scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScope {
    /// Steering needs the token; anyone who reaches the port may watch.
    Steer,
    /// Watching (video, `/status`, `/metrics`) needs it too.
    View,
}

/// The token a request carries for viewing: `?token=…` (a browser's WebSocket cannot set
/// headers) or `Authorization: Bearer …`.
pub fn request_token(req: &Request) -> Option<String> {
    if let Some(auth) = req.header("authorization") {
        if let Some(t) = auth.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    let query = req.query.as_deref()?;
    query.split('&').find_map(|kv| kv.strip_prefix("token=")).map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Wrong guesses from one address, and when it may guess again.
#[derive(Clone, Debug, Default)]
struct Guesses {
    wrong: u32,
    until_us: u64,
    /// Guesses refused during the current burst (logged when it ends).
    refused: u64,
    last_us: u64,
}

/// Per-address back-off for token guesses: after the n-th wrong guess an address waits
/// `BASE_US << (n-1)`, at most `MAX_US`; a guess during the wait is refused unchecked. An
/// address quiet for `FORGET_US` starts over.
#[derive(Default)]
pub struct TokenBackoff {
    by_addr: HashMap<IpAddr, Guesses>,
}

pub const BACKOFF_BASE_US: u64 = 100_000;
pub const BACKOFF_MAX_US: u64 = 30_000_000;
const FORGET_US: u64 = 10 * 60_000_000;
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the token.
    Check,
    /// Too soon after a wrong guess: refuse without checking, for this many µs more.
    Wait(u64),
}

impl TokenBackoff {
    pub fn before_guess(&mut self, addr: Option<IpAddr>, now_us: u64) -> Verdict {
        let Some(g) = addr.and_then(|a| self.by_addr.get_mut(&a)) else {
            return Verdict::Check;
        };
        if now_us < g.until_us {
            g.refused += 1;
            g.last_us = now_us;
            return Verdict::Wait(g.until_us - now_us);
        }
        Verdict::Check
    }

    /// A guess was checked. Returns a line to log, at most one per burst of wrong guesses.
    pub fn after_guess(&mut self, addr: Option<IpAddr>, right: bool, now_us: u64) -> Option<String> {
        let a = addr?;
        if right {
            self.by_addr.remove(&a);
            return None;
        }
        if self.by_addr.len() >= MAX_ADDRESSES && !self.by_addr.contains_key(&a) {
            self.by_addr.retain(|_, g| now_us.saturating_sub(g.last_us) < FORGET_US);
            if self.by_addr.len() >= MAX_ADDRESSES {
                let oldest = self.by_addr.iter().min_by_key(|(_, g)| g.last_us).map(|(k, _)| *k);
                oldest.map(|k| self.by_addr.remove(&k));
            }
        }
        let g = self.by_addr.entry(a).or_default();
        if now_us.saturating_sub(g.last_us) > FORGET_US {
            *g = Guesses::default();
        }
        g.wrong += 1;
        g.last_us = now_us;
        let wait = (BACKOFF_BASE_US << (g.wrong - 1).min(20)).min(BACKOFF_MAX_US);
        g.until_us = now_us + wait;
        // The first wrong guess of a burst is logged; later ones only as a count, at powers
        // of two, so a guessing script costs a handful of lines.
        let refused = std::mem::take(&mut g.refused);
        (g.wrong.is_power_of_two()).then(|| {
            format!(
                "{a}: wrong token ({} wrong so far, {refused} more refused unchecked); next guess in {} ms",
                g.wrong,
                wait / 1000
            )
        })
    }
}

/// At most one log line per key per interval (refusals that would otherwise log per request).
pub struct LogThrottle {
    last: HashMap<IpAddr, u64>,
    interval_us: u64,
}

impl LogThrottle {
    pub fn new(interval_us: u64) -> LogThrottle {
        LogThrottle { last: HashMap::new(), interval_us }
    }

    pub fn should_log(&mut self, key: Option<IpAddr>, now_us: u64) -> bool {
        let Some(k) = key else { return true };
        if self.last.len() > MAX_ADDRESSES {
            let iv = self.interval_us;
            self.last.retain(|_, t| now_us.saturating_sub(*t) < iv);
        }
        match self.last.get(&k) {
            Some(&t) if now_us.saturating_sub(t) < self.interval_us => false,
            _ => {
                self.last.insert(k, now_us);
                true
            }
        }
    }
}

/// This machine's hostname (empty if it cannot be read).
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse;

    fn req(host: &str, origin: Option<&str>) -> Request {
        let o = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        parse(format!("GET /cam0?token=a%20b HTTP/1.1\r\nHost: {host}\r\n{o}\r\n").as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn hosts_parse_with_and_without_ports() {
        assert_eq!(host_of("Robot.Local:8000"), "robot.local");
        assert_eq!(host_of("[::1]:8000"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("10.0.0.5"), "10.0.0.5");
        assert_eq!(host_of("example.com.:80"), "example.com");
    }

    #[test]
    fn the_machine_its_addresses_and_named_extras_are_allowed_nothing_else() {
        let p = HostPolicy::for_machine("robot", &["cam.example.org".into()]);
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "robot:8000",
            "robot.local",
            "[::1]:8000",
            "192.168.1.7:8000",
            "cam.example.org",
            "ROBOT.LOCAL.",
            "a.localhost",
        ] {
            assert!(p.allows_request(&req(ok, None)), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "robot.evil.example",
            "localhost.evil.example",
            "cam.example.org.evil",
            "127.0.0.1.nip.io",
        ] {
            assert!(!p.allows_request(&req(bad, None)), "{bad}");
        }
        assert!(HostPolicy::Any.allows_request(&req("evil.example", None)));
    }

    #[test]
    fn origins_must_name_an_allowed_host() {
        let p = HostPolicy::for_machine("robot", &[]);
        assert!(p.allows_origin(&req("robot", None)), "programs send no Origin");
        assert!(p.allows_origin(&req("robot", Some("http://robot.local:8000"))));
        assert!(p.allows_origin(&req("robot", Some("https://192.168.1.7:8000"))));
        assert!(!p.allows_origin(&req("robot", Some("http://evil.example"))));
        assert!(!p.allows_origin(&req("robot", Some("null"))));
        assert!(!p.allows_origin(&req("robot", Some("http://127.0.0.1.evil.example"))));
    }

    #[test]
    fn tokens_come_from_the_query_or_a_bearer_header() {
        assert_eq!(request_token(&req("robot", None)).as_deref(), Some("a b"));
        let r = parse(b"GET /status HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cret\r\n\r\n").unwrap().unwrap().0;
        assert_eq!(request_token(&r).as_deref(), Some("s3cret"));
        let r = parse(b"GET /status HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().unwrap().0;
        assert_eq!(request_token(&r), None);
    }

    #[test]
    fn wrong_guesses_back_off_per_address_and_log_once_per_burst() {
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let b: IpAddr = "10.0.0.10".parse().unwrap();
        let mut t = TokenBackoff::default();
        let mut now = 1_000_000;
        let mut logged = 0;
        let mut checked = 0;
        // A script guessing as fast as it can for 10 s, one guess per ms.
        for _ in 0..10_000 {
            if t.before_guess(Some(a), now) == Verdict::Check {
                checked += 1;
                logged += t.after_guess(Some(a), false, now).is_some() as u32;
            }
            now += 1_000;
        }
        assert!(checked <= 8, "{checked} guesses were checked in 10 s");
        assert!(logged <= 4, "{logged} log lines");
        assert_eq!(t.before_guess(Some(b), now), Verdict::Check, "another address is not held back");
        assert!(matches!(t.before_guess(Some(a), now), Verdict::Wait(_)));
        now += BACKOFF_MAX_US;
        assert_eq!(t.before_guess(Some(a), now), Verdict::Check);
        assert_eq!(t.after_guess(Some(a), true, now), None);
        assert_eq!(t.before_guess(Some(a), now), Verdict::Check, "the right token clears it");
    }

    #[test]
    fn a_log_throttle_lets_one_line_per_address_per_interval() {
        let mut l = LogThrottle::new(60_000_000);
        let a = Some("10.0.0.1".parse().unwrap());
        assert!(l.should_log(a, 0));
        assert!(!l.should_log(a, 1_000_000));
        assert!(l.should_log(Some("10.0.0.2".parse().unwrap()), 1_000_000));
        assert!(l.should_log(a, 60_000_001));
    }
}
