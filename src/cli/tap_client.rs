//! A blocking frame tap client (README "Frame taps"), shared by the tests and the benchmarks:
//! lines in order, each frame line (`{…}`) paired with the oldest fd received and not yet
//! paired. An fd arrives with the first byte of its line, never after it, so reading lines in
//! order and taking fds in order pairs them right.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::sys::socket::recv_with_fds;

pub enum TapMsg {
    /// A frame: its JSON line and its fd.
    Frame(String, OwnedFd),
    /// Any other line (`ok …`, `err …`, `event …`).
    Reply(String),
}

pub struct TapClient {
    pub stream: UnixStream,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl TapClient {
    pub fn connect(path: &Path) -> std::io::Result<TapClient> {
        Ok(TapClient { stream: UnixStream::connect(path)?, buf: Vec::new(), fds: VecDeque::new() })
    }

    /// Send one command line.
    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.stream.write_all(format!("{line}\n").as_bytes())
    }

    /// The next line (blocks as the socket's read timeout allows).
    pub fn next_msg(&mut self) -> std::io::Result<TapMsg> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line[..i]).into_owned();
                if line.starts_with('{') {
                    let fd =
                        self.fds.pop_front().ok_or_else(|| std::io::Error::other("a frame line without its fd"))?;
                    return Ok(TapMsg::Frame(line, fd));
                }
                return Ok(TapMsg::Reply(line));
            }
            let mut chunk = [0u8; 4096];
            let (n, fds) = recv_with_fds(&self.stream, &mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            self.fds.extend(fds);
        }
    }

    /// The next reply line; frames on the way are dropped here (and stay held: not released).
    pub fn reply(&mut self) -> std::io::Result<String> {
        loop {
            if let TapMsg::Reply(r) = self.next_msg()? {
                return Ok(r);
            }
        }
    }
}
