//! An eventfd used as a doorbell: a worker thread rings it after pushing work into a shared
//! queue, the poll loop sees the fd readable and drains the queue. Safe to ring from any thread.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

pub struct Doorbell {
    fd: EventFd,
}

impl Doorbell {
    pub fn new() -> std::io::Result<Self> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Doorbell { fd })
    }

    /// Wake the poll loop. Never blocks: the counter saturates long before it could.
    pub fn ring(&self) {
        let _ = self.fd.write(1);
    }

    /// Reset after waking; returns how many rings were coalesced (0 on a spurious wake).
    pub fn drain(&self) -> u64 {
        self.fd.read().unwrap_or(0)
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
