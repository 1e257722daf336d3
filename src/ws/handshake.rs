//! The opening handshake (RFC 6455 §4.2): validate the client's upgrade request and compute
//! `Sec-WebSocket-Accept`.

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
}
