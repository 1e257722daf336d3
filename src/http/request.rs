//! Request-head parsing on `httparse`, with the limits a small device needs: the head must fit
//! in `MAX_HEAD` bytes (else 431), at most `MAX_HEADERS` headers (431), no request bodies (413).

pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400 with a reason.
    BadRequest(&'static str),
    /// 431: the head or a header is too large, or there are too many headers.
    HeaderTooLarge,
    /// 413: the request carries a body, which nothing here accepts.
    BodyNotAllowed,
    /// 505
    VersionNotSupported,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeaderTooLarge => 431,
            HttpError::BodyNotAllowed => 413,
            HttpError::VersionNotSupported => 505,
        }
    }
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::BadRequest(r) => r,
            HttpError::HeaderTooLarge => "request head too large",
            HttpError::BodyNotAllowed => "request bodies are not accepted",
            HttpError::VersionNotSupported => "only HTTP/1.x is spoken here",
        }
    }
}

impl Request {
    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True when a comma-separated header contains `token` (case-insensitive), as `Connection:
    /// keep-alive, Upgrade` does.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default yes, 1.0 no).
    pub fn keep_alive(&self) -> bool {
        if self.minor_version >= 1 {
            !self.header_has_token("connection", "close")
        } else {
            self.header_has_token("connection", "keep-alive")
        }
    }
}

/// Parse one request head from the front of `buf`. `Ok(None)`: need more bytes. `Ok(Some((req,
/// n)))`: the head took `n` bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeaderTooLarge),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(_) => return Err(HttpError::BadRequest("malformed request")),
    };
    let n = match status {
        httparse::Status::Partial => {
            return if buf.len() >= MAX_HEAD { Err(HttpError::HeaderTooLarge) } else { Ok(None) };
        }
        httparse::Status::Complete(n) => n,
    };
    if n > MAX_HEAD {
        return Err(HttpError::HeaderTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(HttpError::BadRequest("request target must be an absolute path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut hs = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::BadRequest("header value is not UTF-8"))?;
        hs.push((h.name.to_string(), value.trim().to_string()));
    }
    let request = Request { method, path, query, minor_version: req.version.unwrap_or(1), headers: hs };
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::BodyNotAllowed);
    }
    // Every Content-Length counts (RFC 9112 §6.3): values that disagree are an error, not
    // "the first wins" — that is how a body gets smuggled in as a second request.
    let mut length = None;
    for (_, v) in request.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        for item in v.split(',') {
            let n = item.trim().parse::<u64>().map_err(|_| HttpError::BadRequest("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadRequest("conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    if length.is_some_and(|n| n > 0) {
        return Err(HttpError::BodyNotAllowed);
    }
    if request.minor_version >= 1 && request.header("host").is_none() {
        return Err(HttpError::BadRequest("HTTP/1.1 request without Host"));
    }
    Ok(Some((request, n)))
}

/// Percent-decode a URL path and check it names something inside a flat file tree: no `..`,
/// no NUL, no backslash, no empty segments. Returns the decoded path (leading '/').
pub fn clean_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None; // from_str_radix alone would take a sign: "%+1" as byte 1
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if !s.starts_with('/') || s.contains('\0') || s.contains('\\') {
        return None;
    }
    if s[1..].split('/').any(|seg| seg == ".." || seg == "." || (seg.is_empty() && s != "/")) {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_simple_get_and_reports_consumed_bytes() {
        let raw = b"GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\nNEXT";
        let (r, n) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len() - 4);
        assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_deref()), ("GET", "/index.html", Some("x=1")));
        assert!(r.header_has_token("connection", "upgrade"));
        assert_eq!(r.header("HOST"), Some("a"));
        assert!(r.keep_alive());
    }

    #[test]
    fn partial_heads_wait_for_more_bytes() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"GE"), Ok(None));
    }

    #[test]
    fn oversized_heads_and_header_floods_are_431() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse(&big), Err(HttpError::HeaderTooLarge));
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend(format!("X-{i}: y\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(parse(&many), Err(HttpError::HeaderTooLarge));
    }

    #[test]
    fn garbage_versions_bodies_and_missing_host() {
        assert_eq!(parse(b"\x00\x01\x02\r\n\r\n"), Err(HttpError::BadRequest("malformed request")));
        assert!(matches!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::VersionNotSupported)));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), Err(HttpError::BodyNotAllowed));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::BodyNotAllowed)
        );
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequest(_))));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"),
            Err(HttpError::BadRequest("conflicting Content-Length headers"))
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 3\r\n\r\n"),
            Err(HttpError::BadRequest("conflicting Content-Length headers"))
        );
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-length: 0\r\n\r\n").unwrap().is_some()
        );
        assert!(matches!(parse(b"GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n"), Err(HttpError::BadRequest(_))));
        let (r, _) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive());
    }

    #[test]
    fn clean_path_refuses_traversal_in_every_spelling() {
        assert_eq!(clean_path("/viewer.js").as_deref(), Some("/viewer.js"));
        assert_eq!(clean_path("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(clean_path("/").as_deref(), Some("/"));
        for bad in
            ["/../etc/passwd", "/%2e%2e/x", "/a/%2E%2E/b", "/a\\b", "/a%00b", "/a//b", "/./a", "/%zz", "/%2", "x"]
        {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }

    /// Found by fuzz/http_request: a leading empty segment ("//a", "/%2Fa") was let through.
    #[test]
    fn clean_path_refuses_a_leading_double_slash() {
        for bad in ["//a/ HTTP/1.1\r\nHost: a\n\r\r\n", "//", "//viewer.js", "/%2Fviewer.js", "//etc/passwd"] {
            assert_eq!(clean_path(bad), None, "{bad:?}");
        }
    }

    /// Found by fuzz/http_request: "%+1" decoded as byte 0x01 (`from_str_radix` takes a sign).
    #[test]
    fn clean_path_takes_only_two_hex_digits_after_percent() {
        assert_eq!(clean_path("/0a)2%+1 1 0a)2%+1 0a)2%+1*0P./P."), None);
        for bad in ["/%+1", "/%+f", "/%-1", "/a%+2e"] {
            assert_eq!(clean_path(bad), None, "{bad:?}");
        }
        assert_eq!(clean_path("/%41%6a").as_deref(), Some("/Aj"));
    }
}
