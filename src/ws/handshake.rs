//! The opening handshake (RFC 6455 §4): the server validates the client's upgrade request and
//! computes `Sec-WebSocket-Accept`; the client half (for `cli::ws_client`) writes the request
//! and checks the answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use crate::http::request::Request;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub fn accept_key(client_key: &str) -> String {
    let mut h = Sha1::new();
    h.update(client_key.as_bytes());
    h.update(GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Why an upgrade was refused: HTTP status and reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

pub fn is_upgrade(req: &Request) -> bool {
    req.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Check an upgrade request; on success the 101 response to send.
pub fn accept(req: &Request) -> Result<Vec<u8>, Refusal> {
    let refuse = |status, reason| Err(Refusal { status, reason });
    if req.method != "GET" {
        return refuse(405, "WebSocket upgrade needs GET");
    }
    if req.minor_version < 1 {
        return refuse(400, "WebSocket upgrade needs HTTP/1.1");
    }
    if !is_upgrade(req) || !req.header_has_token("connection", "upgrade") {
        return refuse(400, "missing Upgrade: websocket / Connection: Upgrade");
    }
    if req.header("sec-websocket-version") != Some("13") {
        return refuse(426, "only WebSocket version 13 is supported");
    }
    let key = match req.header("sec-websocket-key") {
        Some(k) if STANDARD.decode(k).map(|b| b.len() == 16).unwrap_or(false) => k,
        _ => return refuse(400, "bad Sec-WebSocket-Key"),
    };
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nServer: pieyes\r\n\r\n",
        accept_key(key)
    )
    .into_bytes())
}

/// A client's `Sec-WebSocket-Key` from a 16-byte nonce (RFC 6455 §4.1: fresh per connection).
pub fn client_key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// The client's upgrade request for `path` on `host`; `extra_headers` are raw `Name: value\r\n`
/// lines (an `Origin`, say).
pub fn client_request(host: &str, path: &str, key: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{extra_headers}\r\n"
    )
}

/// Check the server's answer to `client_request` (its head, through the blank line): a 101 with
/// the upgrade headers and the accept key that proves the server read our key.
pub fn check_response(head: &[u8], key: &str) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(e) => return Err(format!("bad response head: {e}")),
    }
    if resp.code != Some(101) {
        return Err(format!("refused: {} {}", resp.code.unwrap_or(0), resp.reason.unwrap_or("")));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        || !header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
    {
        return Err("101 without Upgrade: websocket / Connection: Upgrade".into());
    }
    match header("sec-websocket-accept") {
        Some(a) if a == accept_key(key) => Ok(()),
        other => Err(format!("wrong Sec-WebSocket-Accept {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse;

    #[test]
    fn rfc6455_test_vector() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn req(extra: &str) -> Request {
        let raw = format!("GET /cam0 HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        parse(raw.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn accepts_a_browser_upgrade() {
        let r = req(
            "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        let resp = String::from_utf8(accept(&r).unwrap()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 101 "));
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn refuses_bad_upgrades() {
        let ok = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
        assert_eq!(
            accept(&req(&format!("{ok}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")))
                .unwrap_err()
                .status,
            426
        );
        assert_eq!(
            accept(&req(&format!("{ok}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n")))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(accept(&req(&format!("{ok}Sec-WebSocket-Version: 13\r\n"))).unwrap_err().status, 400);
        assert_eq!(
            accept(&req("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn the_client_half_agrees_with_the_server_half() {
        let key = client_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==", "RFC 6455's example nonce");
        let raw = client_request("127.0.0.1:8000", "/cam1", &key, "Origin: http://127.0.0.1:8000\r\n");
        let (r, _) = parse(raw.as_bytes()).unwrap().unwrap();
        assert_eq!((r.path.as_str(), r.header("origin")), ("/cam1", Some("http://127.0.0.1:8000")));
        let answer = accept(&r).unwrap();
        assert_eq!(check_response(&answer, &key), Ok(()));
        // Another key's answer, a refusal, a 101 that is not a WebSocket upgrade.
        let other = client_key([7; 16]);
        assert!(check_response(&answer, &other).unwrap_err().contains("Sec-WebSocket-Accept"));
        assert!(check_response(b"HTTP/1.1 403 Forbidden\r\n\r\n", &key).unwrap_err().contains("403"));
        let bare = format!("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n", accept_key(&key));
        assert!(check_response(bare.as_bytes(), &key).is_err());
    }
}
