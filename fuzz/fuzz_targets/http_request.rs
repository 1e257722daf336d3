//! `http::request::parse` and `clean_path` on arbitrary bytes, plus the handshake check that
//! runs on every parsed upgrade request. Properties checked on every input:
//! - `parse` never claims more bytes than it was given, nor more than `MAX_HEAD`;
//! - the head alone parses to the same request, and one byte less of it is "need more";
//! - `Ok(None)` ("need more") only below `MAX_HEAD` bytes: a client cannot make us buffer forever;
//! - errors map to the four statuses the daemon sends;
//! - `clean_path` output is exactly the strict percent-decoding (`%` + two hex digits) of its
//!   input and names a file in a flat tree: leading '/', no NUL, no '\', no "", "." or ".."
//!   segment;
//! - `handshake::accept` either refuses with a 4xx or returns a complete 101 head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pieyes::http::request::{MAX_HEAD, clean_path, parse};
use pieyes::ws::handshake;

/// Reference percent-decoder (RFC 3986 `pct-encoded = "%" HEXDIG HEXDIG`).
fn strict_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            let digit = |c: u8| (c as char).to_digit(16);
            out.push((digit(h[0])? * 16 + digit(h[1])?) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn check_clean_path(input: &str) {
    let Some(p) = clean_path(input) else { return };
    assert_eq!(strict_decode(input).as_deref(), Some(p.as_bytes()), "clean_path({input:?}) = {p:?}");
    assert!(p.starts_with('/'), "{p:?}");
    assert!(!p.contains('\0') && !p.contains('\\'), "{p:?}");
    if p != "/" {
        for seg in p[1..].split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{input:?} -> {p:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check_clean_path(s);
    }
    match parse(data) {
        Ok(Some((req, n))) => {
            assert!(n <= data.len() && n <= MAX_HEAD, "consumed {n} of {}", data.len());
            assert_eq!(parse(&data[..n]), Ok(Some((req.clone(), n))), "the head alone parses the same");
            assert_eq!(parse(&data[..n - 1]), Ok(None), "one byte short of the head is incomplete");
            assert!(req.path.starts_with('/') && !req.path.contains('?'), "{:?}", req.path);
            check_clean_path(&req.path);
            let _ = req.keep_alive();
            match handshake::accept(&req) {
                Ok(resp) => {
                    assert!(resp.starts_with(b"HTTP/1.1 101 ") && resp.ends_with(b"\r\n\r\n"));
                    assert!(handshake::is_upgrade(&req) && req.method == "GET");
                }
                Err(r) => assert!((400..500).contains(&r.status), "{r:?}"),
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEAD, "waiting for more after {} bytes", data.len()),
        Err(e) => {
            assert!(matches!(e.status(), 400 | 413 | 431 | 505), "{e:?}");
            assert!(!e.reason().is_empty());
        }
    }
});
