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

/// This machine's IPv4 and IPv6 addresses (getifaddrs), loopback included, without link-local
/// IPv6 ones (no browser reaches those by URL); empty if they cannot be listed.
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let Ok(list) = nix::ifaddrs::getifaddrs() else { return out };
    for ifa in list {
        let Some(a) = ifa.address else { continue };
        let ip = if let Some(v4) = a.as_sockaddr_in() {
            std::net::IpAddr::V4(v4.ip())
        } else if let Some(v6) = a.as_sockaddr_in6() {
            let ip = v6.ip();
            if ip.segments()[0] & 0xffc0 == 0xfe80 {
                continue;
            }
            std::net::IpAddr::V6(ip)
        } else {
            continue;
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}
