//! Hostile input and stuck clients, from raw sockets: each limit answered with the right
//! status or close code, while a normal viewer on the same daemon keeps receiving every frame
//! and the control socket keeps answering.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use pieyes::ws::frame::{Opcode, encode_masked};

fn status_of(raw: &[u8]) -> u16 {
    split_response(raw).0
}

/// Read a raw WebSocket connection until the server's close frame; its code.
fn close_code(ws: &mut WsClient) -> Option<u16> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match ws.0.recv() {
            Ok(Some(Msg::Close(c))) => return c,
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
    None
}

/// Wait until the server closes `s` (EOF or reset); how long it took.
fn wait_closed(mut s: TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some((t0.elapsed(), got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some((t0.elapsed(), got)),
        }
    }
    None
}

#[test]
fn every_limit_is_enforced_while_a_normal_viewer_keeps_every_frame() {
    let d = Daemon::start(&small(&["--header-timeout", "1", "--idle-timeout", "1", "--ping-interval", "1"]));
    let viewer = Recorder::start(d.addr, 0);
    let before = d.status();

    // HTTP: head too large, too many headers, a body, garbage, traversal in every spelling.
    let huge = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(9000));
    assert_eq!(status_of(&http_raw(d.addr, huge.as_bytes(), Duration::from_secs(5))), 431);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
    assert_eq!(status_of(&http_raw(d.addr, req.as_bytes(), Duration::from_secs(5))), 431);
    let body = b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n";
    assert_eq!(status_of(&http_raw(d.addr, body, Duration::from_secs(5))), 413);
    for (path, want) in [
        ("/../Cargo.toml", 400),
        ("/%2e%2e/Cargo.toml", 400),
        ("/%2E%2e%2fsrc", 400),
        ("/www/../Cargo.toml", 400),
        ("/index.html%00.js", 400),
        ("/..%5c..%5cetc%5cpasswd", 400),
        ("//etc/passwd", 400),
        ("/src/main.rs", 404),
        ("/Cargo.toml", 404),
    ] {
        assert_eq!(http_get(d.addr, path).0, want, "{path}");
    }
    let abs = b"GET http://x/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(status_of(&http_raw(d.addr, abs, Duration::from_secs(5))), 400);

    // Slowloris: a head trickling in, and a connection that says nothing, both get 408.
    let mut slow = TcpStream::connect(d.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let silent = TcpStream::connect(d.addr).unwrap();
    let trickle = std::thread::spawn(move || {
        // A header line every 150 ms, on a clock (timerfd), as a slowloris client sends them.
        let clock = pieyes::sys::timer::Timer::new(false).unwrap();
        clock.set_periodic(Duration::from_millis(150)).unwrap();
        for _ in 0..20 {
            clock.expirations();
            if slow.write_all(b"X-Slow: 1\r\n").is_err() {
                break;
            }
        }
        slow
    });
    let (t, got) = wait_closed(silent, Duration::from_secs(5)).expect("a silent connection is closed");
    assert!(t < Duration::from_secs(3), "{t:?}");
    assert_eq!(status_of(&got), 408);
    let slow = trickle.join().unwrap();
    let (_, got) = wait_closed(slow, Duration::from_secs(5)).expect("a trickling head is cut off");
    assert_eq!(status_of(&got), 408);

    // Keep-alive idle timeout.
    let mut idle = TcpStream::connect(d.addr).unwrap();
    idle.write_all(b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (t, got) = wait_closed(idle, Duration::from_secs(5)).expect("an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(t > Duration::from_millis(700) && t < Duration::from_secs(3), "{t:?}");

    // WebSocket: a message over the limit (1009), a frame flood (1008), bad UTF-8 (1007),
    // unmasked and reserved-bit frames (1002).
    let mut ws = WsClient::connect(d.addr, "/control");
    ws.send_raw(&encode_masked(true, Opcode::Text, &vec![b'a'; 100_000], [1, 2, 3, 4]));
    assert_eq!(close_code(&mut ws), Some(1009));
    let mut ws = WsClient::connect(d.addr, "/control");
    let flood: Vec<u8> = (0..500).flat_map(|_| encode_masked(true, Opcode::Ping, b"x", [1, 2, 3, 4])).collect();
    ws.send_raw(&flood);
    assert_eq!(close_code(&mut ws), Some(1008));
    let mut ws = WsClient::connect(d.addr, "/control");
    ws.send_raw(&encode_masked(true, Opcode::Text, &[0xc3, 0x28], [1, 2, 3, 4]));
    assert_eq!(close_code(&mut ws), Some(1007));
    let mut ws = WsClient::connect(d.addr, "/cam1");
    ws.send_raw(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(close_code(&mut ws), Some(1002));
    let mut ws = WsClient::connect(d.addr, "/control");
    ws.send_raw(&[0xc1, 0x80, 0, 0, 0, 0]);
    assert_eq!(close_code(&mut ws), Some(1002));

    // A WebSocket that never answers pings is dropped (raw socket: no automatic pongs).
    let mut raw = TcpStream::connect(d.addr).unwrap();
    raw.write_all(
        format!("GET /control HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", d.addr).as_bytes(),
    )
    .unwrap();
    let (t, got) = wait_closed(raw, Duration::from_secs(6)).expect("a deaf WebSocket is dropped");
    assert!(got.windows(2).any(|w| w == [0x89, 0x06]), "it was pinged first");
    assert!(t > Duration::from_millis(1500), "{t:?}");

    // The control socket: a command flood is rate limited — the burst over the rate gets one
    // `err rate-limited` and the rest of it no reply (a flood of lines never becomes a flood
    // of replies) — and the connection survives.
    let mut s = UnixStream::connect(&d.control).unwrap();
    let lines = watch_lines(s.try_clone().unwrap());
    s.write_all("clock\n".repeat(300).as_bytes()).unwrap();
    let mut replies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replies.iter().any(|l: &String| l.starts_with("ok {")) {
        assert!(Instant::now() < deadline, "no status reply after the flood: {replies:?}");
        s.write_all(b"status\n").unwrap(); // dropped while the burst lasts, answered after
        while let Ok(l) = lines.recv_timeout(Duration::from_millis(100)) {
            replies.push(l);
        }
    }
    let clocks = replies.iter().filter(|l| l.starts_with("ok clock=")).count();
    let limited = replies.iter().filter(|l| l.starts_with("err rate-limited")).count();
    assert!((100..250).contains(&clocks), "{clocks} of 300 answered");
    assert!((1..=3).contains(&limited), "one error per burst, not per line: {limited}");
    assert!(clocks + limited < 280, "dropped lines get no reply: {} replies", clocks + limited);

    // Through all of it the viewer got every frame and the control socket answered.
    let units = viewer.stop();
    let after = d.status();
    let num = |st: &Value, k: &str| u64_at(eye_status(st, 0), k);
    assert_eq!(num(&after, "drops"), 0, "no frame was skipped for the viewer");
    let lost = num(&after, "encoder_drops") + num(&after, "camera_starved") + num(&after, "camera_skipped")
        - num(&before, "camera_skipped")
        - num(&before, "encoder_drops")
        - num(&before, "camera_starved");
    let span = (units.last().unwrap().header.sequence - units[0].header.sequence + 1) as u64;
    assert!(units.len() as u64 + lost >= span, "{} frames of {span} arrived, {lost} lost before encoding", units.len());
    assert!(units.len() > 60, "the viewer kept streaming ({} frames)", units.len());
}

#[test]
fn connection_limits_refuse_with_503() {
    let d = Daemon::start(SMALL);
    // `clients` counts the daemon's connections (the control connection asking may count too).
    let clients = || u64_at(&d.status(), "clients");
    let held: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(d.addr).unwrap()).collect();
    assert!(wait_until(Duration::from_secs(10), || clients() >= 32), "the daemon took all 32: {}", d.status());
    let raw = http_raw(d.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", Duration::from_secs(5));
    assert_eq!(status_of(&raw), 503, "33rd connection from one address");
    drop(held);
    assert!(wait_until(Duration::from_secs(10), || clients() <= 1), "the daemon let them go: {}", d.status());
    assert_eq!(http_get(d.addr, "/").0, 200, "served again once they are gone");
}

#[test]
fn who_may_steer() {
    let d = Daemon::start(&small(&["--token", "s3cret-token"]));
    // Cross-site pages cannot open /control; the daemon's own page can.
    let evil = http_raw(
        d.addr,
        format!("GET /control HTTP/1.1\r\nHost: {}\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", d.addr).as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&evil), 403);
    let mut ws = WsClient::connect_with(d.addr, "/control", &format!("Origin: http://{}\r\n", d.addr));
    assert!(ws.command("status").starts_with("ok {"), "viewing is open");
    assert!(ws.command("look both 0.5 0").starts_with("err forbidden"));
    assert!(ws.command("save").starts_with("err forbidden"));
    assert_eq!(ws.command("auth wrong-token"), "err forbidden wrong token");
    // A wrong guess holds this address back for a while (100 ms, doubling with each one):
    // even the right token waits it out.
    let r = ws.command("auth s3cret-token");
    let wait_ms: u64 = r
        .strip_prefix("err forbidden too many wrong tokens from your address: wait ")
        .and_then(|w| w.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("{r}"))
        .parse()
        .unwrap();
    assert!(wait_ms <= 100, "{r}");
    std::thread::sleep(Duration::from_millis(wait_ms)); // as long as the daemon said
    assert_eq!(ws.command("auth s3cret-token"), "ok steering");
    assert!(ws.command("look both 0.5 0").starts_with("ok seq="));
    // Another browser connection is still view-only; the Unix socket always steers.
    let mut other = WsClient::connect(d.addr, "/control");
    assert!(other.command("zoom 0 2").starts_with("err forbidden"));
    assert!(d.ctl("zoom 0 2").starts_with("ok seq="));
    // Video is for everyone.
    assert!(!Recorder::start(d.addr, 1).stop().is_empty());
    // The control socket is group-writable only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&d.control).unwrap().permissions().mode() & 0o777, 0o660);
}

#[test]
fn the_control_socket_is_not_stolen_and_a_stale_one_is_replaced() {
    let d = Daemon::start(SMALL);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pieyes"))
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--control"])
        .arg(&d.control)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(d.ctl("status").starts_with("ok"), "the first daemon is unharmed");
    // A socket file nobody listens on (a crashed daemon's) is cleaned up.
    let dir = TempDir::new("stale");
    let stale = dir.0.join("ctl.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut d2 = pieyes_command()
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic"])
        .args(SMALL)
        .arg("--control")
        .arg(&stale)
        .arg("--state")
        .arg(dir.0.join("state.conf"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (_, log) = follow_log(&mut d2);
    assert!(log.contains("removed stale control socket"), "{}", log.text());
    let _ = d2.kill();
    let _ = d2.wait();
    // A regular file in the way is never deleted.
    let file = dir.0.join("precious");
    std::fs::write(&file, "data").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pieyes"))
        .args(["--listen", "127.0.0.1:0", "--camera", "synthetic", "--control"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn a_stalled_viewer_is_skipped_to_keyframes_then_dropped_while_another_gets_every_frame() {
    use std::io::Read;
    // A high bitrate fills a stalled viewer's socket quickly.
    let d =
        Daemon::start(&["--size", "480x540", "--sensor", "1152x648", "--bitrate", "20000000", "--viewer-timeout", "3"]);
    let healthy = Recorder::start(d.addr, 0);
    let sock = socket2_tcp_small_rcvbuf(d.addr);
    let mut stalled = sock;
    let req = format!(
        "GET /cam0 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        d.addr
    );
    std::io::Write::write_all(&mut stalled, req.as_bytes()).unwrap();
    let mut head = [0u8; 512];
    let _ = stalled.read(&mut head).unwrap(); // the 101 and maybe the hello; then it stops reading
    assert!(d.wait_log("stuck: no progress writing video", Duration::from_secs(15)), "{}", d.log());
    let status = d.status();
    // The eye's drops count what was skipped for its viewers (the healthy one's own is 0, below).
    assert!(u64_at(eye_status(&status, 0), "drops") > 0, "the stalled viewer was skipped before it was dropped");
    let units = healthy.stop();
    let after = d.status(); // drop counts that cover every frame the viewer could have had
    let num_after = |k: &str| u64_at(eye_status(&after, 0), k);
    // Only the healthy viewer is left on eye 0: nothing was skipped for it, and every frame
    // the encoder made reached it.
    let viewers = eye_status(&status, 0)["viewer_latency_ms"].as_array().expect("viewer_latency_ms").clone();
    assert_eq!(viewers.len(), 1, "{viewers:?}");
    assert_eq!(viewers[0]["dropped"], 0, "{viewers:?}");
    let span = (units.last().unwrap().header.sequence - units[0].header.sequence + 1) as u64;
    assert!(
        units.len() as u64 + num_after("encoder_drops") + num_after("camera_starved") + num_after("camera_skipped")
            >= span,
        "the healthy viewer got every frame that was encoded: {} of {span}\n{}",
        units.len(),
        d.log().lines().filter(|l| l.contains("left eye") || l.contains("joined")).collect::<Vec<_>>().join("\n")
    );
    let rss_mb = f64_at(&after, "rss_mb");
    assert!(rss_mb < 100.0, "memory stayed bounded: {rss_mb} MB");
    drop(stalled);
}

/// A TCP connection with a tiny receive buffer, so a reader that stops blocks the sender soon.
fn socket2_tcp_small_rcvbuf(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt};
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    let std::net::SocketAddr::V4(v4) = addr else { panic!("v4") };
    use std::os::fd::AsRawFd;
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).unwrap();
    std::net::TcpStream::from(fd)
}
