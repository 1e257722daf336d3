//! systemd's readiness and watchdog protocol, by hand (no libsystemd): when the service manager
//! sets `$NOTIFY_SOCKET` (an absolute path, or `@name` for an abstract socket), the daemon sends
//! it datagrams of `KEY=value` lines — `READY=1` once it listens, `WATCHDOG=1` at least every
//! half `$WATCHDOG_USEC`, `STOPPING=1` when it begins to shut down, `STATUS=…` for
//! `systemctl status`. Protocol: sd_notify(3), sd_watchdog_enabled(3).
//!
//! Everything here is safe std: `UnixDatagram` reaches abstract addresses through
//! `std::os::linux::net::SocketAddrExt`. Sends are non-blocking and best effort: a full or gone
//! notify socket must never stall the poll loop.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
    /// `$WATCHDOG_USEC` when the watchdog is on for this process.
    watchdog_us: Option<u64>,
    last_ping_us: Option<u64>,
}

/// Parse `$NOTIFY_SOCKET` into a datagram address: `/abs/path` or `@abstract-name`.
fn parse_address(notify_socket: &OsStr) -> Result<SocketAddr, String> {
    let bytes = notify_socket.as_bytes();
    match bytes.first() {
        Some(b'/') => {
            SocketAddr::from_pathname(notify_socket).map_err(|e| format!("NOTIFY_SOCKET={notify_socket:?}: {e}"))
        }
        Some(b'@') if bytes.len() > 1 => {
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| format!("NOTIFY_SOCKET={notify_socket:?}: {e}"))
        }
        _ => Err(format!(
            "NOTIFY_SOCKET={notify_socket:?}: expected an absolute path or @abstract-name (other kinds, e.g. vsock, are not supported)"
        )),
    }
}

/// sd_watchdog_enabled(3): `$WATCHDOG_USEC` > 0, and `$WATCHDOG_PID`, if set, names this process.
fn parse_watchdog(watchdog_usec: Option<&OsStr>, watchdog_pid: Option<&OsStr>, own_pid: u32) -> Option<u64> {
    let usec: u64 = watchdog_usec?.to_str()?.trim().parse().ok().filter(|&u| u > 0)?;
    match watchdog_pid {
        None => Some(usec),
        Some(p) => (p.to_str()?.trim().parse::<u32>().ok()? == own_pid).then_some(usec),
    }
}

/// A `STATUS=` value is one line: newlines would start new assignments.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl Notifier {
    /// The notifier systemd asked for, or `None` when not started by a service manager with
    /// `Type=notify` (no `$NOTIFY_SOCKET`). A malformed `$NOTIFY_SOCKET` is logged and ignored.
    pub fn from_env() -> Option<Notifier> {
        let sock = std::env::var_os("NOTIFY_SOCKET")?;
        let usec = std::env::var_os("WATCHDOG_USEC");
        let pid = std::env::var_os("WATCHDOG_PID");
        match Notifier::new(&sock, usec.as_deref(), pid.as_deref(), std::process::id()) {
            Ok(n) => {
                match n.watchdog_interval_us() {
                    Some(i) => crate::info!("systemd: notify socket {sock:?}, watchdog ping every {} ms", i / 1000),
                    None => crate::info!("systemd: notify socket {sock:?}, no watchdog"),
                }
                Some(n)
            }
            Err(e) => {
                crate::warn!("systemd: not notifying: {e}");
                None
            }
        }
    }

    /// Build from the values of `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, `$WATCHDOG_PID` and this
    /// process's pid (split from `from_env` so tests need not touch the process environment).
    pub fn new(
        notify_socket: &OsStr,
        watchdog_usec: Option<&OsStr>,
        watchdog_pid: Option<&OsStr>,
        own_pid: u32,
    ) -> Result<Notifier, String> {
        let target = parse_address(notify_socket)?;
        let socket = UnixDatagram::unbound().map_err(|e| format!("notify socket: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| format!("notify socket: {e}"))?;
        Ok(Notifier {
            socket,
            target,
            watchdog_us: parse_watchdog(watchdog_usec, watchdog_pid, own_pid),
            last_ping_us: None,
        })
    }

    /// Send one datagram of newline-separated `KEY=value` assignments.
    pub fn send(&self, state: &str) -> std::io::Result<()> {
        let n = self.socket.send_to_addr(state.as_bytes(), &self.target)?;
        if n != state.len() {
            return Err(std::io::Error::other("notify datagram truncated"));
        }
        Ok(())
    }

    fn send_logged(&self, state: &str) {
        if let Err(e) = self.send(state) {
            crate::debug!("systemd: notify {:?} failed: {e}", state.lines().next().unwrap_or(""));
        }
    }

    /// `READY=1` with a status line: call once the listeners are bound.
    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=…`: free text shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1`: call when shutdown begins.
    pub fn stopping(&self) {
        self.send_logged("STOPPING=1\nSTATUS=shutting down");
    }

    /// How often to ping: half of `$WATCHDOG_USEC` (sd_watchdog_enabled(3)), `None` if off.
    pub fn watchdog_interval_us(&self) -> Option<u64> {
        self.watchdog_us.map(|u| (u / 2).max(1))
    }

    /// True when the watchdog is on and a ping is due (at once after start, then every half
    /// period). `now_us` is CLOCK_MONOTONIC µs.
    pub fn watchdog_due(&self, now_us: u64) -> bool {
        match (self.watchdog_interval_us(), self.last_ping_us) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(i), Some(last)) => now_us.saturating_sub(last) >= i,
        }
    }

    /// `WATCHDOG=1`, remembering when.
    pub fn ping(&mut self, now_us: u64) {
        self.last_ping_us = Some(now_us);
        self.send_logged("WATCHDOG=1");
    }

    /// Ping if due: the one call for a periodic timer.
    pub fn keep_alive(&mut self, now_us: u64) {
        if self.watchdog_due(now_us) {
            self.ping(now_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("pieyes-sdnotify-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn sends_ready_status_watchdog_and_stopping_to_a_path_socket() {
        let dir = Dir::new("path");
        let path = dir.0.join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier::new(path.as_os_str(), Some(os("4000000")), None, 1).unwrap();
        n.ready("streaming on http://0.0.0.0:8000/\nsecond line");
        assert_eq!(recv(&systemd), "READY=1\nSTATUS=streaming on http://0.0.0.0:8000/ second line");
        n.status("2 viewers");
        assert_eq!(recv(&systemd), "STATUS=2 viewers");
        assert!(n.watchdog_due(10), "the first ping is due at once");
        n.keep_alive(10);
        assert_eq!(recv(&systemd), "WATCHDOG=1");
        n.stopping();
        assert_eq!(recv(&systemd), "STOPPING=1\nSTATUS=shutting down");
    }

    #[test]
    fn reaches_an_abstract_socket() {
        let name = format!("pieyes-sdnotify-test-{}", std::process::id());
        let systemd = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::new(os(&format!("@{name}")), None, None, 1).unwrap();
        n.ready("up");
        assert_eq!(recv(&systemd), "READY=1\nSTATUS=up");
        assert_eq!(n.watchdog_interval_us(), None);
        assert!(!n.watchdog_due(u64::MAX));
    }

    #[test]
    fn a_missing_listener_is_an_error_not_a_stall() {
        let dir = Dir::new("gone");
        let n = Notifier::new(dir.0.join("nobody").as_os_str(), None, None, 1).unwrap();
        assert!(n.send("READY=1").is_err());
        n.ready("still fine"); // logged at debug, never panics or blocks
    }

    #[test]
    fn watchdog_pings_at_half_the_period() {
        let dir = Dir::new("wd");
        let path = dir.0.join("notify");
        let _systemd = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier::new(path.as_os_str(), Some(os("10000000")), Some(os("42")), 42).unwrap();
        assert_eq!(n.watchdog_interval_us(), Some(5_000_000));
        n.ping(1_000_000);
        assert!(!n.watchdog_due(1_000_000));
        assert!(!n.watchdog_due(5_999_999));
        assert!(n.watchdog_due(6_000_000));
        n.keep_alive(6_000_000);
        assert!(!n.watchdog_due(6_000_001));
    }

    #[test]
    fn watchdog_is_off_unless_usec_is_positive_and_the_pid_is_ours() {
        assert_eq!(parse_watchdog(None, None, 7), None);
        assert_eq!(parse_watchdog(Some(os("0")), None, 7), None);
        assert_eq!(parse_watchdog(Some(os("soon")), None, 7), None);
        assert_eq!(parse_watchdog(Some(os("-5")), None, 7), None);
        assert_eq!(parse_watchdog(Some(os("3000000")), Some(os("8")), 7), None, "another process's watchdog");
        assert_eq!(parse_watchdog(Some(os("3000000")), Some(os("x")), 7), None);
        assert_eq!(parse_watchdog(Some(os("3000000")), Some(os("7")), 7), Some(3_000_000));
        assert_eq!(parse_watchdog(Some(os("3000000")), None, 7), Some(3_000_000));
    }

    #[test]
    fn rejects_addresses_it_cannot_use() {
        for bad in ["", "@", "relative/notify", "vsock:2:1234"] {
            assert!(Notifier::new(os(bad), None, None, 1).is_err(), "{bad:?}");
        }
        assert!(Notifier::new(os(&format!("/{}", "x".repeat(200))), None, None, 1).is_err(), "longer than sun_path");
    }
}
