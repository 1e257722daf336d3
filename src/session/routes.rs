//! What each URL is, decided from the request alone: the viewer's files, `/status`,
//! `/metrics`, and the WebSocket endpoints `/cam0`, `/cam1` (video; the seed's `/cam0/`,
//! `/cam1/` too) and `/control`. Before any of that, the request must name this machine in
//! `Host`, and a browser's WebSocket must come from a page of this machine (`access`). Pure:
//! the daemon carries the decision out.

use crate::access::HostPolicy;
use crate::http::request::{self, Request};
use crate::http::response;
use crate::http::static_files::Source;
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

impl Route {
    /// Whether the route shows what the cameras see (video, status): with `--token-scope
    /// view` it needs the token.
    pub fn shows_cameras(&self) -> bool {
        matches!(self, Route::Upgrade { endpoint: Endpoint::Video(_), .. } | Route::Status | Route::Metrics)
    }
}

/// Route one request for a daemon with `eyes` eyes that answers to the hosts of `hosts`;
/// `may_view` says whether the request's token (if any) lets it see the cameras.
pub fn route(req: &Request, eyes: usize, hosts: &HostPolicy, may_view: impl FnOnce(Option<&str>) -> bool) -> Route {
    let route = route_unguarded(req, eyes, hosts);
    if route.shows_cameras() && !may_view(crate::access::request_token(req).as_deref()) {
        return refuse(403, "watching needs the token (?token=…)");
    }
    route
}

fn route_unguarded(req: &Request, eyes: usize, hosts: &HostPolicy) -> Route {
    if !hosts.allows_request(req) {
        return refuse(421, "this pieyes does not answer to that host name (see --allowed-hosts)");
    }
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
        if !hosts.allows_origin(req) {
            return refuse(403, "cross-origin WebSocket connections are refused");
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

/// A refused request as the log tells it: what it asked, the host and origin it named, why.
pub fn refusal_line(req: &Request, status: u16, reason: &str) -> String {
    let (host, origin) = (req.header("host").unwrap_or("-"), req.header("origin").unwrap_or("-"));
    format!("{status} for {} {} (Host {host}, Origin {origin}): {reason}", req.method, req.path)
}

/// A 200 response to `req` (HEAD gets the head only), keep-alive as the request asks.
pub fn ok(req: &Request, headers: &[(&str, &str)], body: &[u8]) -> (Vec<u8>, bool) {
    let keep = req.keep_alive();
    (response::build(200, headers, body, keep, req.method == "HEAD"), keep)
}

/// `/status`: its JSON, never cached.
pub fn status(req: &Request, json: &str) -> (Vec<u8>, bool) {
    ok(req, &[("Content-Type", "application/json"), ("Cache-Control", "no-store")], json.as_bytes())
}

/// `/metrics`: Prometheus' text format, never cached.
pub fn metrics(req: &Request, text: &str) -> (Vec<u8>, bool) {
    let ctype = ("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    ok(req, &[ctype, ("Cache-Control", "no-store")], text.as_bytes())
}

/// A viewer file (revalidated on each load, so a deploy shows at once), or a 404.
pub fn file(req: &Request, www: &Source, clean: &str) -> (Vec<u8>, bool) {
    match www.get(clean) {
        Some((body, ctype)) => {
            let headers =
                [("Content-Type", ctype), ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")];
            ok(req, &headers, &body)
        }
        None => not_found(req),
    }
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

    fn hosts() -> HostPolicy {
        HostPolicy::for_machine("h", &[])
    }

    fn route(r: &Request, eyes: usize) -> Route {
        super::route(r, eyes, &hosts(), |_| true)
    }

    #[test]
    fn watching_may_need_the_token() {
        let may_view = |t: Option<&str>| t == Some("s3cret");
        let watch = |q: &str, extra: &str| {
            super::route(
                &req(&format!("GET /cam0{q} HTTP/1.1\r\nHost: h\r\n{UPGRADE}{extra}\r\n")),
                2,
                &hosts(),
                may_view,
            )
        };
        assert!(matches!(watch("", ""), Route::Refuse { status: 403, .. }));
        assert!(matches!(watch("?token=s3cret", ""), Route::Upgrade { .. }));
        assert!(matches!(watch("", "Authorization: Bearer s3cret\r\n"), Route::Upgrade { .. }));
        let status = super::route(&req("GET /status HTTP/1.1\r\nHost: h\r\n\r\n"), 2, &hosts(), may_view);
        assert!(matches!(status, Route::Refuse { status: 403, .. }));
        let page = super::route(&req("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 2, &hosts(), may_view);
        assert_eq!(page, Route::File("/".into()), "the page itself needs no token");
    }

    #[test]
    fn a_foreign_host_name_is_refused_before_any_route() {
        for path in ["/", "/metrics", "/status", "/cam0", "/control"] {
            let r = req(&format!("GET {path} HTTP/1.1\r\nHost: evil.example:8000\r\n{UPGRADE}\r\n"));
            assert!(matches!(super::route(&r, 2, &hosts(), |_| true), Route::Refuse { status: 421, .. }), "{path}");
            assert!(
                !matches!(super::route(&r, 2, &HostPolicy::Any, |_| true), Route::Refuse { .. }),
                "{path} with any"
            );
        }
    }

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
        assert!(matches!(up("/cam0", "Origin: http://evil.example\r\n"), Route::Refuse { status: 403, .. }));
        assert!(matches!(up("/cam0", "Origin: http://192.168.1.7:8000\r\n"), Route::Upgrade { .. }));
        assert!(up("/cam0", "").shows_cameras() && !up("/control", "").shows_cameras());
        assert!(matches!(
            route(&req(&format!("GET /cam1 HTTP/1.1\r\nHost: h\r\n{UPGRADE}\r\n")), 1),
            Route::Refuse { status: 404, .. }
        ));
        assert!(matches!(route(&req("GET /cam0 HTTP/1.1\r\nHost: h\r\n\r\n"), 2), Route::Refuse { status: 426, .. }));
    }
}
