//! What each URL is, decided from the request alone: the viewer's files, `/status`,
//! `/metrics`, and the WebSocket endpoints `/cam0`, `/cam1` (video; the seed's `/cam0/`,
//! `/cam1/` too) and `/control`. Pure: the daemon carries the decision out.

use crate::http::request::{self, Request};
use crate::http::response;
use crate::ws::handshake;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Video(u8),
    Control,
}

#[derive(Debug, PartialEq)]
pub enum Route {
    /// A WebSocket handshake that passed: `accept` is the 101 response.
    Upgrade {
        endpoint: Endpoint,
        accept: Vec<u8>,
    },
    Status,
    Metrics,
    /// A viewer file, by its cleaned path.
    File(String),
    /// An error response; the connection closes after it.
    Refuse {
        status: u16,
        reason: &'static str,
        extra: &'static [(&'static str, &'static str)],
    },
}

fn video_eye(path: &str) -> Option<u8> {
    match path {
        "/cam0" | "/cam0/" => Some(0),
        "/cam1" | "/cam1/" => Some(1),
        _ => None,
    }
}

fn refuse(status: u16, reason: &'static str) -> Route {
    Route::Refuse { status, reason, extra: &[] }
}

/// Route one request for a daemon with `eyes` eyes.
pub fn route(req: &Request, eyes: usize) -> Route {
    let endpoint = match (video_eye(&req.path), req.path.as_str()) {
        (Some(eye), _) => Some(Endpoint::Video(eye)),
        (None, "/control") => Some(Endpoint::Control),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        if !handshake::is_upgrade(req) {
            return Route::Refuse {
                status: 426,
                reason: "this is a WebSocket endpoint",
                extra: &[("Upgrade", "websocket")],
            };
        }
        let accept = match handshake::accept(req) {
            Ok(a) => a,
            Err(r) if r.status == 426 => {
                return Route::Refuse { status: 426, reason: r.reason, extra: &[("Sec-WebSocket-Version", "13")] };
            }
            Err(r) => return refuse(r.status, r.reason),
        };
        if endpoint == Endpoint::Control {
            if let Some(origin) = req.header("origin") {
                if !same_origin(origin, req.header("host").unwrap_or("")) {
                    return refuse(403, "cross-origin control connections are refused");
                }
            }
        }
        if let Endpoint::Video(eye) = endpoint {
            if eye as usize >= eyes {
                return refuse(404, "no such eye");
            }
        }
        return Route::Upgrade { endpoint, accept };
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Route::Refuse { status: 405, reason: "only GET and HEAD", extra: &[("Allow", "GET, HEAD")] };
    }
    match req.path.as_str() {
        "/status" => Route::Status,
        "/metrics" => Route::Metrics,
        p => match request::clean_path(p) {
            Some(clean) => Route::File(clean),
            None => refuse(400, "bad path"),
        },
    }
}

/// Whether a browser's `Origin` names the host the page was served from (a page on another
/// site must not drive the robot through the visitor's browser: cross-site WebSocket
/// hijacking). Compares host and port; the scheme is http(s) either way.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let origin_host = rest.split('/').next().unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// A 200 response to `req` (HEAD gets the head only), keep-alive as the request asks.
pub fn ok(req: &Request, headers: &[(&str, &str)], body: &[u8]) -> (Vec<u8>, bool) {
    let keep = req.keep_alive();
    (response::build(200, headers, body, keep, req.method == "HEAD"), keep)
}

/// A 404 for a file that is not there; the connection stays usable.
pub fn not_found(req: &Request) -> (Vec<u8>, bool) {
    let keep = req.keep_alive();
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    (response::build(404, &headers, b"404 Not Found\n", keep, req.method == "HEAD"), keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> Request {
        request::parse(raw.as_bytes()).unwrap().unwrap().0
    }

    const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn files_status_and_metrics() {
        assert_eq!(route(&req("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::File("/".into()));
        assert_eq!(route(&req("HEAD /viewer.js HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::File("/viewer.js".into()));
        assert_eq!(route(&req("GET /status?x HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::Status);
        assert_eq!(route(&req("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::Metrics);
        assert!(matches!(
            route(&req("GET /%2e%2e/x HTTP/1.1\r\nHost: h\r\n\r\n"), 2),
            Route::Refuse { status: 400, .. }
        ));
        assert!(matches!(route(&req("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::Refuse { status: 405, .. }));
    }

    #[test]
    fn websocket_endpoints() {
        let up = |path: &str, extra: &str| {
            route(&req(&format!("GET {path} HTTP/1.1\r\nHost: h:1\r\n{UPGRADE}{extra}\r\n")), 2)
        };
        assert!(matches!(up("/cam0", ""), Route::Upgrade { endpoint: Endpoint::Video(0), .. }));
        assert!(matches!(up("/cam1/", ""), Route::Upgrade { endpoint: Endpoint::Video(1), .. }));
        assert!(matches!(up("/control", "Origin: http://h:1\r\n"), Route::Upgrade { endpoint: Endpoint::Control, .. }));
        assert!(matches!(up("/control", "Origin: http://evil.example\r\n"), Route::Refuse { status: 403, .. }));
        assert!(matches!(
            route(&req(&format!("GET /cam1 HTTP/1.1\r\nHost: h\r\n{UPGRADE}\r\n")), 1),
            Route::Refuse { status: 404, .. }
        ));
        assert!(matches!(route(&req("GET /cam0 HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::Refuse { status: 426, .. }));
    }

    #[test]
    fn origin_must_name_the_serving_host() {
        assert!(same_origin("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(same_origin("https://Robot.local", "robot.local"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8000"));
        assert!(!same_origin("http://127.0.0.1:8001", "127.0.0.1:8000"));
        assert!(!same_origin("null", "127.0.0.1:8000"));
        assert!(!same_origin("http://127.0.0.1:8000", ""));
        assert!(!same_origin("http://127.0.0.1:8000.evil.example", "127.0.0.1:8000"));
    }
}
