//! The daemon speaks systemd's notify protocol when `$NOTIFY_SOCKET` is set (as under
//! `Type=notify` in dist/pieyes.service): READY=1 once it listens, WATCHDOG=1 well within
//! `$WATCHDOG_USEC`, STOPPING=1 on SIGTERM — checked with a real datagram socket standing in for
//! systemd.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

fn recv(sock: &UnixDatagram) -> (Instant, String) {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notify datagram within the timeout");
    (Instant::now(), String::from_utf8(buf[..n].to_vec()).expect("notify datagrams are text"))
}

#[test]
fn tells_systemd_ready_then_pings_the_watchdog_then_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    const WATCHDOG_US: u64 = 2_000_000;
    let mut d = Daemon::start_with_env(
        SMALL,
        &[("NOTIFY_SOCKET", path.as_os_str()), ("WATCHDOG_USEC", WATCHDOG_US.to_string().as_ref())],
    );

    let (_, first) = recv(&systemd);
    assert_eq!(first, format!("READY=1\nSTATUS=streaming on http://{}/", d.addr), "READY comes first");
    // The first ping is due at once, then one every half period: each gap within the period.
    let mut pings = Vec::new();
    while pings.len() < 4 {
        let (t, msg) = recv(&systemd);
        assert_eq!(msg, "WATCHDOG=1");
        pings.push(t);
    }
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap < Duration::from_micros(WATCHDOG_US), "watchdog gap {gap:?} exceeds WATCHDOG_USEC");
        // Pinging at every 100 ms housekeeping tick would show here; the margin absorbs this
        // test thread waking late for one datagram and on time for the next.
        assert!(gap >= Duration::from_micros(WATCHDOG_US / 4), "pinging too often: {gap:?}");
    }

    d.signal(libc::SIGTERM);
    let stopping = loop {
        let (_, msg) = recv(&systemd);
        if msg != "WATCHDOG=1" {
            break msg;
        }
    };
    assert_eq!(stopping, "STOPPING=1\nSTATUS=shutting down");
    let st = d.wait_exit(Duration::from_secs(10)).expect("daemon exits");
    assert!(st.success(), "exit status {st:?}");
}

#[test]
fn without_notify_socket_nothing_is_sent_and_no_watchdog_is_assumed() {
    // WATCHDOG_USEC alone (no NOTIFY_SOCKET) must not make the daemon do anything odd.
    let d = Daemon::start_with_env(SMALL, &[("WATCHDOG_USEC", "100000".as_ref())]);
    assert!(d.status()["eyes"].is_array());
    assert!(!d.log().contains("systemd:"), "{}", d.log());
}
