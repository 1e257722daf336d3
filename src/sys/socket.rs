//! Socket I/O the loop needs beyond std: gathered writes that never raise SIGPIPE, and socket
//! options (TCP_NODELAY, SO_SNDBUF). Listeners and clients are made non-blocking with std's
//! `set_nonblocking`.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{MsgFlags, sendmsg};

/// `sendmsg` with MSG_NOSIGNAL over several buffers (the shared access units queued for one
/// viewer): one syscall for many frames, no copy into a per-viewer buffer.
pub fn send_vectored(fd: impl AsFd, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
    let n = sendmsg::<()>(fd.as_fd().as_raw_fd(), bufs, &[], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None)?;
    Ok(n)
}

/// Turn on TCP_NODELAY: an access unit is sent the moment it exists, never held for Nagle.
pub fn set_nodelay(fd: impl AsFd) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::TcpNoDelay, &true)?;
    Ok(())
}

/// Bound the kernel's send buffer for a socket (the kernel doubles the value for its own
/// bookkeeping and disables autotuning for it).
pub fn set_send_buffer(fd: impl AsFd, bytes: usize) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::SndBuf, &bytes)?;
    Ok(())
}
