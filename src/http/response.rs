//! Response heads and small bodies, built into one byte vector ready to write.

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete response. `head_only` drops the body but keeps its Content-Length (for HEAD).
pub fn build(status: u16, headers: &[(&str, &str)], body: &[u8], keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + if head_only { 0 } else { body.len() });
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" });
    out.extend_from_slice(b"Server: pieyes\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error response; errors close the connection.
pub fn error(status: u16, message: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![("Content-Type", "text/plain; charset=utf-8")];
    headers.extend_from_slice(extra);
    build(status, &headers, format!("{status} {}: {message}\n", reason(status)).as_bytes(), false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_heads_with_length_and_connection() {
        let r = String::from_utf8(build(200, &[("Content-Type", "text/plain")], b"hi", true, false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 2\r\n") && r.contains("Connection: keep-alive\r\n"));
        assert!(r.ends_with("\r\n\r\nhi"));
        let h = String::from_utf8(build(200, &[], b"hello", false, true)).unwrap();
        assert!(h.contains("Content-Length: 5\r\n") && h.ends_with("\r\n\r\n"));
        let e = String::from_utf8(error(404, "no such file", &[])).unwrap();
        assert!(e.starts_with("HTTP/1.1 404 Not Found\r\n") && e.contains("Connection: close"));
    }
}
