//! What a TCP connection carries under the sessions: plain bytes, or TLS. HTTP and HTTPS share
//! the port, told apart by the connection's first byte (a TLS handshake record starts with
//! 0x16; no HTTP method does). The sessions never see TLS: they get plaintext in, and their
//! outbox's bytes are encrypted on the way out.
//!
//! TLS is rustls's `ServerConnection`, itself sans-IO: ciphertext goes in with `read_tls` and
//! `process_new_packets`, comes out with `write_tls`, so it fits the one poll() loop. The layer
//! takes `Read`/`Write` ends (the socket in the daemon, byte buffers in the tests).
//!
//! Back-pressure stays where the fan-out policy sees it: plaintext is handed to rustls only
//! when the ciphertext it made before has gone to the kernel, so a slow viewer's backlog stays
//! in its outbox (skipped to the next keyframe there), not hidden inside rustls.

pub mod cert;

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// Ciphertext rustls may hold unsent, and plaintext it may buffer during the handshake.
const TLS_BUFFER: usize = 64 * 1024;

/// `--tls`: what the port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// HTTP and HTTPS on the same port.
    Auto,
    /// HTTP only.
    Off,
    /// HTTPS only: a plain request is refused.
    Only,
}

/// What the port speaks, shared by every connection.
#[derive(Clone, Default)]
pub struct Policy {
    /// TLS, when on.
    pub tls: Option<Arc<ServerConfig>>,
    /// Plain HTTP is refused (`--tls only`).
    pub tls_only: bool,
}

/// Why a connection is refused at the transport (one log line, then dropped).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Plain bytes to a port that speaks only TLS.
    PlainToTlsOnly,
    /// The TLS records or handshake were bad (garbage after the first byte, no common cipher…).
    Tls(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::PlainToTlsOnly => write!(f, "plain HTTP to a port that speaks only HTTPS"),
            Refused::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

/// The answer a plain client gets from a TLS-only port before it is dropped.
pub const PLAIN_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\
Content-Length: 52\r\n\r\nThis port speaks only HTTPS: open it as https://...\n";

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Plaintext bytes, at the start of the buffer.
    Data(usize),
    /// The peer closed (TCP FIN, or TLS close_notify).
    Eof,
    /// Nothing more now.
    WouldBlock,
    Refused(Refused),
}

enum Layer {
    /// Nothing read yet.
    Sniffing,
    Plain,
    Tls(Box<ServerConnection>),
}

pub struct Transport {
    layer: Layer,
    /// Decrypted bytes rustls holds that were not read yet.
    plaintext_pending: usize,
}

impl Transport {
    /// A TCP connection: what it speaks is decided by its first byte.
    pub fn sniffing() -> Transport {
        Transport { layer: Layer::Sniffing, plaintext_pending: 0 }
    }

    /// The Unix control socket: always plain.
    pub fn plain() -> Transport {
        Transport { layer: Layer::Plain, plaintext_pending: 0 }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.layer, Layer::Tls(_))
    }

    /// TLS whose handshake has not finished.
    pub fn is_handshaking(&self) -> bool {
        matches!(&self.layer, Layer::Tls(c) if c.is_handshaking())
    }

    /// Ciphertext waits to be written (handshake messages, alerts, encrypted records).
    pub fn wants_write(&self) -> bool {
        matches!(&self.layer, Layer::Tls(c) if c.wants_write())
    }

    /// Decrypted bytes are waiting that no socket event will announce: read again.
    pub fn has_buffered_input(&self) -> bool {
        self.plaintext_pending > 0
    }

    /// Read plaintext into `buf`: from the wire directly, or through TLS.
    pub fn read(&mut self, wire: &mut impl Read, policy: &Policy, buf: &mut [u8]) -> io::Result<Input> {
        if let Layer::Sniffing = self.layer {
            let n = match wire.read(buf) {
                Ok(0) => return Ok(Input::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::WouldBlock),
                Err(e) => return Err(e),
            };
            match (buf[0] == TLS_HANDSHAKE, &policy.tls) {
                (true, Some(config)) => {
                    let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                    conn.set_buffer_limit(Some(TLS_BUFFER));
                    self.layer = Layer::Tls(Box::new(conn));
                    let first = buf[..n].to_vec();
                    if let Err(r) = self.take_ciphertext(&mut &first[..]) {
                        return Ok(Input::Refused(r));
                    }
                }
                (false, _) if policy.tls_only => return Ok(Input::Refused(Refused::PlainToTlsOnly)),
                _ => {
                    self.layer = Layer::Plain;
                    return Ok(Input::Data(n));
                }
            }
        }
        match &mut self.layer {
            Layer::Sniffing => unreachable!("decided above"),
            Layer::Plain => match wire.read(buf) {
                Ok(0) => Ok(Input::Eof),
                Ok(n) => Ok(Input::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Input::WouldBlock),
                Err(e) => Err(e),
            },
            Layer::Tls(_) => loop {
                let Layer::Tls(conn) = &mut self.layer else { unreachable!() };
                match conn.reader().read(buf) {
                    Ok(0) => return Ok(Input::Eof), // close_notify
                    Ok(n) => {
                        self.plaintext_pending = self.plaintext_pending.saturating_sub(n);
                        return Ok(Input::Data(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.plaintext_pending = 0,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Input::Eof),
                    Err(e) => return Err(e),
                }
                match conn.read_tls(wire) {
                    Ok(0) => return Ok(Input::Eof),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::WouldBlock),
                    Err(e) => return Err(e),
                }
                if let Err(r) = self.process() {
                    return Ok(Input::Refused(r));
                }
            },
        }
    }

    /// Feed ciphertext already read (the sniffed first read) to rustls.
    fn take_ciphertext(&mut self, mut bytes: &mut &[u8]) -> Result<(), Refused> {
        while !bytes.is_empty() {
            let Layer::Tls(conn) = &mut self.layer else { unreachable!("only for TLS") };
            conn.read_tls(&mut bytes).map_err(|e| Refused::Tls(e.to_string()))?;
            self.process()?;
        }
        Ok(())
    }

    fn process(&mut self) -> Result<(), Refused> {
        let Layer::Tls(conn) = &mut self.layer else { return Ok(()) };
        match conn.process_new_packets() {
            Ok(state) => {
                self.plaintext_pending = state.plaintext_bytes_to_read();
                Ok(())
            }
            Err(e) => Err(Refused::Tls(e.to_string())),
        }
    }

    /// Send what rustls has ready (handshake messages, alerts, records). WouldBlock when the
    /// wire takes no more while some is left.
    pub fn flush(&mut self, wire: &mut impl Write) -> io::Result<()> {
        if let Layer::Tls(conn) = &mut self.layer {
            while conn.wants_write() {
                if conn.write_tls(wire)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
        }
        Ok(())
    }

    /// Write plaintext: straight to the wire, or encrypted. Returns how many plaintext bytes
    /// were taken; WouldBlock when none could be.
    pub fn write(&mut self, wire: &mut impl Write, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.layer {
            Layer::Sniffing | Layer::Plain => wire.write_vectored(bufs),
            Layer::Tls(_) => {
                // The ciphertext of the last write first: take no more plaintext until it left.
                self.flush(wire)?;
                let Layer::Tls(conn) = &mut self.layer else { unreachable!() };
                let mut taken = 0;
                for b in bufs {
                    let k = conn.writer().write(b)?;
                    taken += k;
                    if k < b.len() || taken >= TLS_BUFFER {
                        break;
                    }
                }
                if taken == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                match self.flush(wire) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
                    _ => Ok(taken),
                }
            }
        }
    }

    /// Closing: tell a TLS peer (close_notify) after what is queued.
    pub fn close(&mut self) {
        if let Layer::Tls(conn) = &mut self.layer {
            conn.send_close_notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    /// One direction of a connection in memory: written bytes wait until read.
    #[derive(Default)]
    struct Pipe {
        bytes: Vec<u8>,
    }
    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.bytes.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes.drain(..n);
            Ok(n)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn policy(tls_only: bool) -> (Policy, cert::Identity) {
        let id = cert::generate(&["localhost".into()], &[]).unwrap();
        let config = cert::server_config(&id).unwrap();
        (Policy { tls: Some(config), tls_only }, id)
    }

    fn client(id: &cert::Identity) -> ClientConnection {
        let mut roots = RootCertStore::empty();
        roots.add(id.cert_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    /// Read everything the server has now; the plaintext it got.
    fn server_reads(t: &mut Transport, wire: &mut Pipe, p: &Policy) -> Result<Vec<u8>, Refused> {
        let mut got = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            match t.read(wire, p, &mut buf).unwrap() {
                Input::Data(n) => got.extend_from_slice(&buf[..n]),
                Input::Eof | Input::WouldBlock => return Ok(got),
                Input::Refused(r) => return Err(r),
            }
        }
    }

    #[test]
    fn plain_http_passes_through_untouched() {
        let (p, _) = policy(false);
        let mut t = Transport::sniffing();
        let mut wire = Pipe { bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec() };
        assert_eq!(server_reads(&mut t, &mut wire, &p).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(!t.is_tls());
        let mut out = Pipe::default();
        assert_eq!(t.write(&mut out, &[IoSlice::new(b"HTTP/1.1 200 OK")]).unwrap(), 15);
        assert_eq!(out.bytes, b"HTTP/1.1 200 OK");
    }

    #[test]
    fn plain_to_a_tls_only_port_is_refused() {
        let (p, _) = policy(true);
        let mut t = Transport::sniffing();
        let mut wire = Pipe { bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec() };
        assert_eq!(server_reads(&mut t, &mut wire, &p), Err(Refused::PlainToTlsOnly));
        assert!(PLAIN_REFUSAL.ends_with(b"\r\n\r\nThis port speaks only HTTPS: open it as https://...\n"));
        let body = &PLAIN_REFUSAL[PLAIN_REFUSAL.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert_eq!(body.len(), 52);
    }

    #[test]
    fn without_tls_a_handshake_byte_is_just_bytes() {
        let p = Policy::default();
        let mut t = Transport::sniffing();
        let mut wire = Pipe { bytes: vec![0x16, 3, 1] };
        assert_eq!(server_reads(&mut t, &mut wire, &p).unwrap(), vec![0x16, 3, 1]);
        assert!(!t.is_tls());
    }

    #[test]
    fn garbage_after_the_handshake_byte_is_refused() {
        let (p, _) = policy(false);
        let mut t = Transport::sniffing();
        let mut wire = Pipe { bytes: b"\x16GET / HTTP/1.1\r\n\r\n".to_vec() };
        assert!(matches!(server_reads(&mut t, &mut wire, &p), Err(Refused::Tls(_))));
    }

    #[test]
    fn a_tls_client_talks_to_the_session_in_plaintext() {
        let (p, id) = policy(false);
        let mut c = client(&id);
        let mut t = Transport::sniffing();
        let (mut up, mut down) = (Pipe::default(), Pipe::default());
        c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        for _ in 0..10 {
            while c.wants_write() {
                c.write_tls(&mut up).unwrap();
            }
            got.extend(server_reads(&mut t, &mut up, &p).unwrap());
            t.flush(&mut down).unwrap();
            if !down.bytes.is_empty() {
                c.read_tls(&mut down).unwrap();
                c.process_new_packets().unwrap();
            }
        }
        assert!(t.is_tls() && !t.is_handshaking());
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        // The answer, larger than one record and than one write's worth.
        let answer: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut sent = 0;
        let mut received = Vec::new();
        while received.len() < answer.len() {
            if sent < answer.len() {
                sent += t.write(&mut down, &[IoSlice::new(&answer[sent..])]).unwrap();
            }
            c.read_tls(&mut down).unwrap();
            c.process_new_packets().unwrap();
            let mut buf = vec![0; 300_000];
            if let Ok(n) = c.reader().read(&mut buf) {
                received.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(received, answer);
    }

    #[test]
    fn plaintext_beyond_one_read_is_announced() {
        let (p, id) = policy(false);
        let mut c = client(&id);
        let mut t = Transport::sniffing();
        let (mut up, mut down) = (Pipe::default(), Pipe::default());
        for _ in 0..10 {
            while c.wants_write() {
                c.write_tls(&mut up).unwrap();
            }
            let _ = server_reads(&mut t, &mut up, &p).unwrap();
            t.flush(&mut down).unwrap();
            if !down.bytes.is_empty() {
                c.read_tls(&mut down).unwrap();
                c.process_new_packets().unwrap();
            }
        }
        c.writer().write_all(&[7u8; 1000]).unwrap();
        while c.wants_write() {
            c.write_tls(&mut up).unwrap();
        }
        let mut buf = [0u8; 100];
        assert_eq!(t.read(&mut up, &p, &mut buf).unwrap(), Input::Data(100));
        assert!(t.has_buffered_input());
        let rest = server_reads(&mut t, &mut up, &p).unwrap();
        assert_eq!(rest.len(), 900);
        assert!(!t.has_buffered_input());
    }
}
