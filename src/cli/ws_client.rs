//! A small blocking WebSocket client of pieyes' own streams, on the same sans-IO codec the
//! server uses: for `pieyes record`, the benchmarks and the tests (not for the daemon, which
//! never blocks).

use std::io::{Error, ErrorKind, Read, Result, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::stream::wire::VideoHeader;
use crate::ws::frame::{self, Opcode, Role};

pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
}

pub struct WsClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidData, msg)
}

impl WsClient {
    /// Connect and upgrade `path`; `extra_headers` are raw `Name: value\r\n` lines.
    pub fn connect(addr: SocketAddr, path: &str, extra_headers: &str) -> Result<WsClient> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
        );
        stream.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(bad(format!("closed during handshake: {}", String::from_utf8_lossy(&buf))));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        if !head.starts_with("HTTP/1.1 101") || !head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
            return Err(bad(format!("handshake refused: {}", head.lines().next().unwrap_or(""))));
        }
        Ok(WsClient { stream, buf: buf[end..].to_vec() })
    }

    /// Next message; `Ok(None)` when the server closed the TCP connection.
    pub fn recv(&mut self) -> Result<Option<Msg>> {
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            match frame::decode(&self.buf, Role::Client, 64 << 20) {
                Ok(Some((f, n))) => {
                    self.buf.drain(..n);
                    return Ok(Some(match f.opcode {
                        Opcode::Text => {
                            Msg::Text(String::from_utf8(f.payload).map_err(|_| bad("text not UTF-8".into()))?)
                        }
                        Opcode::Binary => Msg::Binary(f.payload),
                        Opcode::Close => {
                            Msg::Close((f.payload.len() >= 2).then(|| u16::from_be_bytes([f.payload[0], f.payload[1]])))
                        }
                        Opcode::Ping => {
                            // Keepalive: the server closes connections that never answer.
                            self.stream.write_all(&frame::encode_masked(
                                true,
                                Opcode::Pong,
                                &f.payload,
                                [1, 2, 3, 4],
                            ))?;
                            continue;
                        }
                        _ => continue,
                    }));
                }
                Ok(None) => {}
                Err(e) => return Err(bad(format!("bad frame from server: {}", e.reason))),
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn send_text(&mut self, t: &str) -> Result<()> {
        self.stream.write_all(&frame::encode_masked(true, Opcode::Text, t.as_bytes(), [9, 8, 7, 6]))
    }

    /// Send a command on `/control` and wait for its reply (`event …` lines of a watching
    /// connection are skipped).
    pub fn command(&mut self, t: &str) -> Result<String> {
        self.send_text(t)?;
        loop {
            match self.recv()? {
                Some(Msg::Text(r)) if !r.starts_with("event ") => return Ok(r),
                Some(_) => continue,
                None => return Err(Error::new(ErrorKind::UnexpectedEof, "closed while waiting for a reply")),
            }
        }
    }

    /// Next video message: its header and Annex-B payload (text messages are skipped).
    pub fn next_unit(&mut self) -> Result<Option<(VideoHeader, Vec<u8>)>> {
        loop {
            match self.recv()? {
                Some(Msg::Binary(b)) => {
                    let (h, payload) = VideoHeader::parse(&b).ok_or_else(|| bad("bad video header".into()))?;
                    return Ok(Some((h, payload.to_vec())));
                }
                Some(Msg::Close(_)) | None => return Ok(None),
                Some(Msg::Text(_)) => continue,
            }
        }
    }
}
