//! The transport under the sessions (`transport::Transport`): a connection's first byte tells
//! TLS (0x16, a handshake record) from plain HTTP; TLS records then go through rustls's
//! `ServerConnection` (its record layer and handshake: ClientHellos of any shape, alerts,
//! records split or glued, garbage after the first byte).
//!
//! Input: one configuration byte, then what a client sends. Bit 0: `--tls only`; bit 1:
//! `--tls off`; bits 2-7 seed how the bytes are split into reads. Properties:
//! - plain bytes (a first byte other than 0x16, or TLS off) come out unchanged, at once or in
//!   chunks, unless the port speaks only TLS: then the first read refuses with `PlainToTlsOnly`
//!   and nothing else;
//! - with TLS on and a 0x16 first byte, no plaintext comes out while the handshake is not
//!   finished (a client cannot finish it without the server's key share), and what the
//!   server writes back stays small (one handshake flight or an alert, < 16 KiB);
//! - whether the connection is refused does not depend on how the bytes were split;
//! - a refusal is final: the daemon drops the connection, and reading on gives nothing new.
#![no_main]

use std::io::{self, Read};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pieyes::transport::{Input, Policy, Refused, Transport, cert};

/// One certificate for every run (generating a key per input would be all the fuzzer did).
fn tls_policy() -> Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let id = cert::generate(&["localhost".into()], &[]).expect("certificate");
            Policy { tls: Some(cert::server_config(&id).expect("server config")), tls_only: false }
        })
        .clone()
}

/// The client's bytes, released a chunk at a time: WouldBlock between chunks, EOF at the end.
struct Wire<'a> {
    data: &'a [u8],
    at: usize,
    ready: usize,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.data.len() {
            return Ok(0);
        }
        if self.ready == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.ready.min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        self.ready -= n;
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct Seen {
    plaintext: Vec<u8>,
    refused: Option<Refused>,
    failed: bool, // an io error (the daemon drops the connection as for a refusal)
    written: usize,
}

/// Feed `data` in chunks of `sizes` (cycled), reading until each chunk is used up, as the
/// daemon does on each readable event; flush what the server wants to say after each read.
fn run(data: &[u8], policy: &Policy, sizes: &[usize]) -> Seen {
    let mut t = Transport::sniffing();
    let mut wire = Wire { data, at: 0, ready: 0 };
    let mut seen = Seen::default();
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    let mut k = 0;
    loop {
        if wire.ready == 0 && wire.at < data.len() {
            wire.ready = sizes[k % sizes.len()].min(data.len() - wire.at);
            k += 1;
        }
        let r = t.read(&mut wire, policy, &mut buf);
        let _ = t.flush(&mut out);
        seen.written = out.len();
        match r {
            Ok(Input::Data(n)) => {
                assert!(n > 0 && n <= buf.len());
                assert!(!t.is_handshaking(), "plaintext during a TLS handshake");
                seen.plaintext.extend_from_slice(&buf[..n]);
            }
            Ok(Input::WouldBlock) => {
                assert_eq!(wire.ready, 0, "WouldBlock with bytes ready");
            }
            Ok(Input::Eof) => return seen,
            Ok(Input::Refused(why)) => {
                // Final: the daemon drops it. Reading on must not hand out plaintext.
                let more = t.read(&mut wire, policy, &mut buf);
                assert!(!matches!(more, Ok(Input::Data(_))) || !t.is_tls(), "plaintext after a refusal: {why}");
                seen.refused = Some(why);
                return seen;
            }
            Err(_) => {
                seen.failed = true;
                return seen;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, wire)) = data.split_first() else { return };
    let tls_only = cfg & 1 != 0;
    let tls_on = cfg & 2 == 0;
    let policy = if tls_on { Policy { tls_only, ..tls_policy() } } else { Policy::default() };

    let whole = run(wire, &policy, &[usize::MAX]);
    let mut seed = (cfg as u32 >> 2) ^ (wire.len() as u32).wrapping_mul(0x9e37_79b9) | 1;
    let sizes: Vec<usize> = (0..16)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            1 + (seed as usize % 12).pow(2)
        })
        .collect();
    let chunked = run(wire, &policy, &sizes);

    let tls = tls_on && wire.first() == Some(&0x16);
    if wire.is_empty() {
        assert!(whole.plaintext.is_empty() && whole.refused.is_none());
    } else if !tls && policy.tls_only {
        for s in [&whole, &chunked] {
            assert_eq!(s.refused, Some(Refused::PlainToTlsOnly));
            assert!(s.plaintext.is_empty() && s.written == 0);
        }
    } else if !tls {
        for s in [&whole, &chunked] {
            assert_eq!(s.plaintext, wire, "plain bytes pass unchanged");
            assert!(s.refused.is_none() && !s.failed && s.written == 0);
        }
    } else {
        for s in [&whole, &chunked] {
            assert!(s.plaintext.is_empty(), "plaintext from a client that cannot have finished the handshake");
            assert!(s.written < 16 * 1024, "the server wrote {} bytes", s.written);
        }
        let rejected = |s: &Seen| s.refused.is_some() || s.failed;
        assert_eq!(rejected(&whole), rejected(&chunked), "splitting changed the verdict: {whole:?} vs {chunked:?}");
    }
});
