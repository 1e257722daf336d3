//! What each URL is: the viewer's files, `/status`, and the WebSocket endpoints `/cam0`,
//! `/cam1` (video; the seed's `/cam0/`, `/cam1/` too) and `/control`.

use super::client::{Client, Role};
use super::{Daemon, commands};
use crate::http::request::{self, Request};
use crate::http::response;
use crate::json;
use crate::limits::{CLOSE_GRACE_US, MAX_WS_MESSAGE};
use crate::stream::fanout::Subscriber;
use crate::ws::connection::Connection;
use crate::ws::frame::{Opcode, Role as WsRole};
use crate::ws::handshake;

/// Kernel send buffer of a video viewer's socket: a few frames, well under a second.
const VIDEO_SNDBUF: usize = 256 * 1024;

enum After {
    /// Response queued; keep reading requests if keep-alive.
    Responded,
    /// Now a WebSocket: the caller re-dispatches on the new role.
    Upgraded,
    /// Response queued and the connection is closing.
    Closing,
}

/// Parse and answer the requests buffered in `c.inbuf`. Returns true when the connection was
/// upgraded to a WebSocket (its remaining input belongs to the new role).
pub(super) fn handle_http(d: &mut Daemon, id: u64, c: &mut Client, now: u64) -> bool {
    loop {
        match request::parse(&c.inbuf) {
            Ok(None) => return false,
            Err(e) => {
                crate::debug!("client {id} ({}): bad request: {}", c.peer, e.reason());
                c.inbuf.clear();
                c.outbox.push_bytes(response::error(e.status(), e.reason(), &[]));
                c.close_after_flush(now, CLOSE_GRACE_US);
                return false;
            }
            Ok(Some((req, n))) => {
                c.inbuf.drain(..n);
                c.responses += 1;
                c.request_since_us = now;
                match route(d, id, c, &req, now) {
                    After::Upgraded => return true,
                    After::Closing => return false,
                    After::Responded if !req.keep_alive() => {
                        c.close_after_flush(now, CLOSE_GRACE_US);
                        return false;
                    }
                    After::Responded => {}
                }
            }
        }
    }
}

fn video_eye(path: &str) -> Option<u8> {
    match path {
        "/cam0" | "/cam0/" => Some(0),
        "/cam1" | "/cam1/" => Some(1),
        _ => None,
    }
}

fn refuse(c: &mut Client, status: u16, why: &str, extra: &[(&str, &str)], now: u64) -> After {
    c.outbox.push_bytes(response::error(status, why, extra));
    c.close_after_flush(now, CLOSE_GRACE_US);
    After::Closing
}

fn route(d: &mut Daemon, id: u64, c: &mut Client, req: &Request, now: u64) -> After {
    let ws_endpoint = video_eye(&req.path).is_some() || req.path == "/control";
    if ws_endpoint {
        if !handshake::is_upgrade(req) {
            return refuse(c, 426, "this is a WebSocket endpoint", &[("Upgrade", "websocket")], now);
        }
        let reply = match handshake::accept(req) {
            Ok(r) => r,
            Err(refusal) => {
                let extra: &[(&str, &str)] =
                    if refusal.status == 426 { &[("Sec-WebSocket-Version", "13")] } else { &[] };
                return refuse(c, refusal.status, refusal.reason, extra, now);
            }
        };
        if req.path == "/control" {
            if let Some(origin) = req.header("origin") {
                if !same_origin(origin, req.header("host").unwrap_or("")) {
                    crate::warn!("client {id} ({}): /control from foreign origin {origin:?} refused", c.peer);
                    return refuse(c, 403, "cross-origin control connections are refused", &[], now);
                }
            }
        }
        c.outbox.push_bytes(reply);
        let ws = Connection::new(WsRole::Server, MAX_WS_MESSAGE);
        match video_eye(&req.path) {
            Some(eye) if (eye as usize) < d.eyes.len() => {
                let hello = hello_json(d, eye);
                c.outbox.push_bytes(ws.message(Opcode::Text, hello.as_bytes()));
                c.role = Role::Video { eye, ws, sub: Subscriber::new(d.fanout_limits, now) };
                // A small kernel send buffer keeps a slow viewer's backlog in our queue, where
                // the fan-out policy sees it (skip to a keyframe), not hidden in the kernel.
                if let Err(e) = crate::sys::socket::set_send_buffer(&c.stream, VIDEO_SNDBUF) {
                    crate::debug!("client {id}: SO_SNDBUF: {e}");
                }
                let e = &mut d.eyes[eye as usize];
                e.viewers.push(id);
                e.keyframes.request();
                crate::info!("viewer {id} ({}) joined eye {eye}; {} viewer(s)", c.peer, e.viewers.len());
                d.pending_events.push(format!("event viewer eye={eye} joined viewers={}", e.viewers.len()));
            }
            Some(_) => return refuse(c, 404, "no such eye", &[], now),
            None => {
                c.role = Role::ControlWs { ws };
                c.may_steer = d.token.is_none();
                crate::info!(
                    "control client {id} ({}) connected{}",
                    c.peer,
                    if c.may_steer { "" } else { " (view-only until it sends the token)" }
                );
            }
        }
        return After::Upgraded;
    }
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        return refuse(c, 405, "only GET and HEAD", &[("Allow", "GET, HEAD")], now);
    }
    let keep = req.keep_alive();
    if req.path == "/metrics" {
        let body = commands::metrics_text(d, now);
        let headers = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")];
        c.outbox.push_bytes(response::build(200, &headers, body.as_bytes(), keep, head_only));
        return After::Responded;
    }
    if req.path == "/status" {
        let body = commands::status_json(d, now);
        let headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")];
        c.outbox.push_bytes(response::build(200, &headers, body.as_bytes(), keep, head_only));
        return After::Responded;
    }
    let Some(clean) = request::clean_path(&req.path) else {
        return refuse(c, 400, "bad path", &[], now);
    };
    match d.www.get(&clean) {
        Some((body, ctype)) => {
            let headers =
                [("Content-Type", ctype), ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")];
            c.outbox.push_bytes(response::build(200, &headers, &body, keep, head_only));
            After::Responded
        }
        None => {
            c.outbox.push_bytes(response::build(
                404,
                &[("Content-Type", "text/plain; charset=utf-8")],
                b"404 Not Found\n",
                keep,
                head_only,
            ));
            After::Responded
        }
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

/// The first message on a video WebSocket: what the stream is.
fn hello_json(d: &Daemon, eye: u8) -> String {
    let e = &d.eyes[eye as usize];
    let info = e.camera.info();
    let s = info.sensor;
    json::Obj::new()
        .str("type", "hello")
        .int("version", crate::stream::wire::VERSION as u64)
        .int("eye", eye as u64)
        .opt_str("codec", e.codec.as_deref())
        .int("width", info.output.w as u64)
        .int("height", info.output.h as u64)
        .int("fps", d.cfg.fps as u64)
        .raw("sensor", &json::array([s.x, s.y, s.w, s.h].map(|v| v.to_string())))
        .int("header_len", crate::stream::wire::HEADER_LEN as u64)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::same_origin;

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
