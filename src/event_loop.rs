//! The `poll()` registry: each iteration the daemon lists (fd, token, interest), waits, and gets
//! back the tokens that are ready. Moves no bytes and decides nothing.

use std::os::fd::{AsRawFd, BorrowedFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    Signal,
    Housekeeping,
    /// The save worker finished a job.
    Saver,
    /// The calibrate worker finished an estimate.
    Calibrator,
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

/// The interest list of one loop iteration. Kept by the loop and refilled each time (`clear`,
/// `add`…, `wait`), so waking up allocates nothing. The fds added must stay open until `wait`
/// returns: the loop builds the list from what it owns and polls at once.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
}

impl PollSet {
    pub fn clear(&mut self) {
        self.fds.clear();
        self.tokens.clear();
    }

    pub fn add(&mut self, fd: BorrowedFd<'_>, token: Token, read: bool, write: bool) {
        let mut events = 0;
        if read {
            events |= libc::POLLIN;
        }
        if write {
            events |= libc::POLLOUT;
        }
        self.fds.push(libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 });
        self.tokens.push(token);
    }

    /// Wait up to `timeout_ms` (-1: forever) and append what is ready to `out`.
    pub fn wait(&mut self, timeout_ms: i32, out: &mut Vec<(Token, Ready)>) -> std::io::Result<()> {
        if crate::sys::poll::poll(&mut self.fds, timeout_ms)? == 0 {
            return Ok(());
        }
        for (fd, &token) in self.fds.iter().zip(&self.tokens) {
            let r = fd.revents;
            if r == 0 {
                continue;
            }
            out.push((
                token,
                Ready {
                    readable: r & (libc::POLLIN | libc::POLLPRI) != 0,
                    writable: r & libc::POLLOUT != 0,
                    hangup: r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
                },
            ));
        }
        Ok(())
    }
}
