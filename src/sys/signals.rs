//! SIGINT/SIGTERM as a readable fd, so shutdown is just another poll event. The signals are
//! blocked before any thread starts (threads inherit the mask), and SIGPIPE is ignored so a
//! viewer that vanishes mid-write is an EPIPE, not a dead daemon.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub struct ShutdownSignals {
    fd: SignalFd,
}

impl ShutdownSignals {
    /// Call on the main thread before spawning any other thread.
    pub fn install() -> std::io::Result<Self> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        // SAFETY: SIG_IGN installs no Rust code as a handler; it only changes the disposition.
        unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(ShutdownSignals { fd })
    }

    /// The name of a pending signal, if one arrived.
    pub fn read(&self) -> Option<&'static str> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Some(if info.ssi_signo == libc::SIGINT as u32 { "SIGINT" } else { "SIGTERM" }),
            _ => None,
        }
    }
}

impl AsFd for ShutdownSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
