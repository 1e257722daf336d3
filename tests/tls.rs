//! HTTPS on the HTTP port: `curl --cacert` with the certificate pieyes made fetches the page,
//! each eye's H.264 read over a TLS WebSocket is what ffprobe expects, the certificate is kept
//! across restarts, and misbehaving TLS clients are refused while a viewer keeps streaming.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::wait_until;
use common::{Daemon, SMALL, TempDir, Unit};
use pieyes::cli::ws_client::WsClient;

fn curl(url: &str, cacert: &std::path::Path) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(cacert)
        .arg(url)
        .output()
        .expect("curl is installed by `make test`");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), format!("{body}{}", String::from_utf8_lossy(&out.stderr)))
}

fn fingerprint(log: &str) -> String {
    let line = log.lines().find(|l| l.contains("SHA-256 fingerprint")).expect("fingerprint logged");
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn https_and_http_on_one_port_with_a_kept_certificate() {
    let kept = TempDir::new("tls-state"); // outlives both daemons
    let state = kept.0.join("state.conf");
    let (cert, key) = (kept.0.join("tls-cert.pem"), kept.0.join("tls-key.pem"));
    let keep = kept.0.clone();
    let d = Daemon::start_with_state(SMALL, TempDir::new("tls"), &state);
    let pem = std::fs::read(&cert).expect("certificate written beside the state");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let port = d.addr.port();

    let (code, body) = curl(&format!("https://localhost:{port}/"), &cert);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("<html"), "{body}");
    let (code, _, _) = common::http_get(d.addr, "/");
    assert_eq!(code, 200, "plain HTTP on the same port");

    for eye in 0..2u8 {
        let mut ws = WsClient::connect_tls(d.addr, "localhost", &pem, &format!("/cam{eye}"), "").expect("wss");
        let mut units = Vec::new();
        while units.len() < 40 {
            let (header, annexb) = ws.next_unit().expect("read").expect("stream");
            units.push(Unit { header, annexb });
        }
        let path = keep.join(format!("tls-eye{eye}.h264"));
        common::write_h264(&path, &units);
        let (profile, w, h, _) = common::ffprobe(&path);
        assert_eq!((w, h), (320, 240), "eye {eye}");
        assert!(profile.contains("Baseline"), "{profile}");
    }
    let first = fingerprint(&d.log());
    assert!(d.log().contains("made a self-signed certificate"));
    drop(d);

    // A restart keeps the certificate: a browser's "proceed" holds.
    let d = Daemon::start_with_state(SMALL, TempDir::new("tls"), &state);
    assert!(d.wait_log("SHA-256 fingerprint", Duration::from_secs(5)));
    assert!(d.log().contains("kept from an earlier start"), "{}", d.log());
    assert_eq!(fingerprint(&d.log()), first);
    // A certificate the browser does not know is refused by a verifying client.
    let other = pieyes::transport::cert::generate(&["localhost".into()], &[]).unwrap();
    assert!(WsClient::connect_tls(d.addr, "localhost", other.cert_pem.as_bytes(), "/cam0", "").is_err());
}

/// Read until the server closes; what it sent. Panics if it does not close within `limit`.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("not closed within {limit:?}: {e}"),
        }
    }
}

#[test]
fn bad_tls_is_refused_while_a_viewer_keeps_streaming() {
    let dir = TempDir::new("tls-bad");
    let state = dir.0.join("state.conf");
    let cert = dir.0.join("tls-cert.pem");
    let d = Daemon::start_with_state(&common::small(&["--tls", "only", "--header-timeout", "1"]), dir, &state);
    let pem = std::fs::read(&cert).unwrap();
    let units = Arc::new(AtomicUsize::new(0));
    let (count, addr) = (units.clone(), d.addr);
    std::thread::spawn(move || {
        let mut ws = WsClient::connect_tls(addr, "localhost", &pem, "/cam1", "").expect("wss");
        while let Ok(Some(_)) = ws.next_unit() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert!(wait_until(Duration::from_secs(10), || units.load(Ordering::SeqCst) > 0), "the viewer plays");

    // A handshake that starts and stalls; garbage after the first byte; plain HTTP.
    let mut stalled = TcpStream::connect(d.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let mut garbage = TcpStream::connect(d.addr).unwrap();
    garbage.write_all(b"\x16GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut plain = TcpStream::connect(d.addr).unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();

    let answer = String::from_utf8_lossy(&read_until_closed(&mut plain, Duration::from_secs(5))).to_string();
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("only HTTPS"), "{answer}");
    let alert = read_until_closed(&mut garbage, Duration::from_secs(5));
    assert!(alert.is_empty() || alert[0] == 0x15, "a TLS alert or nothing: {alert:?}");
    let before = units.load(Ordering::SeqCst);
    assert!(read_until_closed(&mut stalled, Duration::from_secs(5)).is_empty());
    assert!(wait_until(Duration::from_secs(5), || d.log.count("closed: refused by the transport") == 3), "{}", d.log());
    // One warning for the address (a flood from one address is not a flood of log lines).
    assert_eq!(d.log.count(") refused: "), 1, "{}", d.log());
    // The viewer kept playing through all of it, and still does.
    assert!(wait_until(Duration::from_secs(5), || units.load(Ordering::SeqCst) > before + 10), "the viewer stalled");
}

/// A TLS connection that ends (`Connection: close`) sends all of its last response and then a
/// close_notify, even when its socket was full as the response was finished: a client that
/// reads late gets every byte and a clean end (rustls reports a close without close_notify as
/// an unexpected EOF).
#[test]
fn an_https_response_that_ends_the_connection_arrives_whole_with_close_notify() {
    use rustls::pki_types::pem::PemObject;
    let dir = TempDir::new("tls-close");
    let state = dir.0.join("state.conf");
    let d = Daemon::start_with_state(SMALL, TempDir::new("tls"), &state);
    let pem = std::fs::read(dir.0.join("tls-cert.pem")).expect("certificate beside the state");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(d.addr).unwrap();
    // A small receive window, read late: the daemon's socket fills while it answers.
    nix::sys::socket::setsockopt(&tcp, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let get = |close: bool| {
        format!(
            "GET /controls.js HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        )
    };
    tls.write_all(format!("{}{}{}", get(false), get(false), get(true)).as_bytes()).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500)); // not a wait for anything: the late reader
    let mut got = Vec::new();
    let end = tls.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(end.is_ok(), "a clean end with close_notify: {end:?} after {} bytes", got.len());
    // Three whole responses: each body as long as its Content-Length says.
    let mut rest = &got[..];
    for i in 0..3 {
        let head_end =
            rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("response {i}: {text:.300}"));
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "response {i}: {head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: ").or_else(|| l.strip_prefix("content-length: ")))
            .expect("Content-Length")
            .trim()
            .parse()
            .unwrap();
        rest = &rest[head_end + 4..];
        assert!(rest.len() >= len, "response {i}: body {} of {len} bytes", rest.len());
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "nothing after the third response");
}
