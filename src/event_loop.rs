//! The `poll()` registry: each iteration the daemon lists (fd, token, interest), waits, and gets
//! back the tokens that are ready. Moves no bytes and decides nothing.

use std::os::fd::BorrowedFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    Signal,
    Housekeeping,
    HttpListener,
    ControlListener,
    Camera(u8),
    Encoder(u8),
    Client(u64),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: the fd should be read (to learn why) and then dropped.
    pub hangup: bool,
}

#[derive(Default)]
pub struct PollSet<'a> {
    fds: Vec<PollFd<'a>>,
    tokens: Vec<Token>,
}

impl<'a> PollSet<'a> {
    pub fn with_capacity(n: usize) -> Self {
        PollSet { fds: Vec::with_capacity(n), tokens: Vec::with_capacity(n) }
    }

    pub fn add(&mut self, fd: BorrowedFd<'a>, token: Token, read: bool, write: bool) {
        let mut ev = PollFlags::empty();
        if read {
            ev |= PollFlags::POLLIN;
        }
        if write {
            ev |= PollFlags::POLLOUT;
        }
        self.fds.push(PollFd::new(fd, ev));
        self.tokens.push(token);
    }

    /// Wait up to `timeout_ms` (-1: forever) and append what is ready to `out`.
    pub fn wait(mut self, timeout_ms: i32, out: &mut Vec<(Token, Ready)>) -> std::io::Result<()> {
        let timeout = if timeout_ms < 0 {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)
        };
        match poll(&mut self.fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for (fd, &token) in self.fds.iter().zip(&self.tokens) {
            let Some(r) = fd.revents() else { continue };
            if r.is_empty() {
                continue;
            }
            out.push((
                token,
                Ready {
                    readable: r.intersects(PollFlags::POLLIN | PollFlags::POLLPRI),
                    writable: r.contains(PollFlags::POLLOUT),
                    hangup: r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL),
                },
            ));
        }
        Ok(())
    }
}
