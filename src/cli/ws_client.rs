//! A small blocking WebSocket client of pieyes' own endpoints, for `pieyes record`, the tests
//! and the benchmarks (the daemon never blocks). The protocol is the daemon's own sans-IO code in
//! the client role — `ws::handshake`'s client half and `ws::Connection` — so this file only
//! moves bytes between them and a `TcpStream`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Error, ErrorKind, Read, Result, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::stream::wire::VideoHeader;
use crate::ws::connection::{Connection, Event};
use crate::ws::frame::{Opcode, Role};
use crate::ws::handshake;

/// Largest message taken from the server (a keyframe is well under this).
const MAX_MESSAGE: usize = 64 << 20;

pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
}

pub struct WsClient {
    /// The socket, for tests that set timeouts or write raw bytes (plain connections).
    pub stream: TcpStream,
    /// TLS over a clone of `stream` (`connect_tls`).
    tls: Option<Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>,
    ws: Connection,
    /// Bytes read and not yet consumed by `ws`.
    input: Vec<u8>,
    chunk: Vec<u8>,
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidData, msg)
}

/// 64 unpredictable bits from std's per-process random hash keys (no RNG crate needed for a
/// handshake nonce and masking keys).
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(crate::sys::clock::monotonic_us());
    h.finish()
}

impl WsClient {
    /// Connect and upgrade `path`; `extra_headers` are raw `Name: value\r\n` lines.
    pub fn connect(addr: SocketAddr, path: &str, extra_headers: &str) -> Result<WsClient> {
        Self::open(addr, None, path, extra_headers)
    }

    /// The same over TLS (`wss://`): the server's certificate must be `ca_pem` (pieyes' own
    /// self-signed one, or the CA of the one it was given) and name `server_name`.
    pub fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        ca_pem: &[u8],
        path: &str,
        extra_headers: &str,
    ) -> Result<WsClient> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(c.map_err(|e| bad(format!("certificate: {e}")))?).map_err(|e| bad(e.to_string()))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| bad(e.to_string()))?;
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).map_err(|e| bad(e.to_string()))?;
        Self::open(addr, Some(conn), path, extra_headers)
    }

    fn open(addr: SocketAddr, tls: Option<rustls::ClientConnection>, path: &str, extra: &str) -> Result<WsClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let tls = match tls {
            Some(c) => Some(Box::new(rustls::StreamOwned::new(c, stream.try_clone()?))),
            None => None,
        };
        let mut client = WsClient {
            stream,
            tls,
            ws: Connection::new(Role::Client, MAX_MESSAGE),
            input: Vec::new(),
            chunk: vec![0u8; 256 * 1024],
        };
        client.upgrade(addr, path, extra)?;
        Ok(client)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.tls {
            Some(t) => t.write_all(bytes),
            None => self.stream.write_all(bytes),
        }
    }

    fn read_some(&mut self) -> Result<usize> {
        match &mut self.tls {
            Some(t) => t.read(&mut self.chunk),
            None => self.stream.read(&mut self.chunk),
        }
    }

    fn upgrade(&mut self, addr: SocketAddr, path: &str, extra_headers: &str) -> Result<()> {
        let nonce = [random_u64().to_le_bytes(), random_u64().to_le_bytes()].concat();
        let key = handshake::client_key(nonce.try_into().expect("16 bytes"));
        self.write_all(handshake::client_request(&addr.to_string(), path, &key, extra_headers).as_bytes())?;
        let end = loop {
            if let Some(p) = self.input.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = self.read_some()?;
            if n == 0 {
                return Err(bad(format!("closed during handshake: {}", String::from_utf8_lossy(&self.input))));
            }
            self.input.extend_from_slice(&self.chunk[..n]);
        };
        handshake::check_response(&self.input[..end], &key).map_err(|e| bad(format!("ws://{addr}{path}: {e}")))?;
        self.input.drain(..end);
        self.ws = Connection::new(Role::Client, MAX_MESSAGE).with_mask_seed(random_u64() as u32);
        Ok(())
    }

    /// Write what the protocol wants sent (pongs, the answering close).
    fn flush(&mut self) -> Result<()> {
        while let Some(f) = self.ws.take_outgoing() {
            self.write_all(&f)?;
        }
        Ok(())
    }

    /// Next message; `Ok(None)` when the server closed the TCP connection. Pings are answered
    /// on the way (the server drops connections that never answer).
    pub fn recv(&mut self) -> Result<Option<Msg>> {
        loop {
            let event = self.ws.read(&mut self.input);
            self.flush()?;
            match event {
                Ok(Some(Event::Text(t))) => return Ok(Some(Msg::Text(t))),
                Ok(Some(Event::Binary(b))) => return Ok(Some(Msg::Binary(b))),
                Ok(Some(Event::Closed { code, .. })) => return Ok(Some(Msg::Close(code))),
                Ok(Some(Event::Ping | Event::Pong(_))) => continue,
                Ok(None) => {}
                Err(e) => return Err(bad(format!("bad frame from the server: {} (close {})", e.reason, e.code))),
            }
            match self.read_some() {
                Ok(0) => return Ok(None),
                Ok(n) => self.input.extend_from_slice(&self.chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn send_text(&mut self, t: &str) -> Result<()> {
        match self.ws.message(Opcode::Text, t.as_bytes()) {
            Some(f) => self.write_all(&f),
            None => Err(Error::new(ErrorKind::BrokenPipe, "the connection is closing: nothing more may be sent")),
        }
    }

    /// Send a command on `/control` and wait for its reply (`event …` lines of a watching
    /// connection are skipped).
    pub fn command(&mut self, t: &str) -> Result<String> {
        self.send_text(t)?;
        loop {
            match self.recv()? {
                Some(Msg::Text(r)) if !r.starts_with("event ") => return Ok(r),
                Some(Msg::Close(code)) => {
                    return Err(Error::new(ErrorKind::UnexpectedEof, format!("closed ({code:?}) before a reply")));
                }
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
