//! Client sockets as the loop holds them (TCP or Unix), and socket I/O beyond std: gathered
//! writes that never raise SIGPIPE, an fd sent with a line (SCM_RIGHTS, for frame taps), and
//! socket options (TCP_NODELAY, SO_SNDBUF, TCP_NOTSENT_LOWAT). Listeners and clients are made
//! non-blocking with std's `set_nonblocking`.

use std::io::{IoSlice, IoSliceMut, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// A client's stream socket as the loop holds it: TCP (HTTP, WebSocket, TLS) or the Unix
/// control socket.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

/// Writes never raise SIGPIPE and never block (`send_vectored`).
impl std::io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        send_vectored(&*self, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        send_vectored(&*self, bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sendmsg` with MSG_NOSIGNAL over several buffers (the shared access units queued for one
/// viewer): one syscall for many frames, no copy into a per-viewer buffer.
pub fn send_vectored(fd: impl AsFd, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
    let n = sendmsg::<()>(fd.as_fd().as_raw_fd(), bufs, &[], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None)?;
    Ok(n)
}

/// Send `bytes` on a Unix stream socket with `attach` riding along (SCM_RIGHTS), without
/// blocking or SIGPIPE. The fd is delivered with the first byte that goes: a partial write has
/// delivered it (the rest is plain bytes), `WouldBlock` has sent nothing.
pub fn send_with_fd(sock: impl AsFd, bytes: &[u8], attach: BorrowedFd<'_>) -> std::io::Result<usize> {
    let fds = [attach.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(bytes)];
    let n =
        sendmsg::<()>(sock.as_fd().as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None)?;
    Ok(n)
}

/// Receive bytes and the fds that came with them (SCM_RIGHTS, close-on-exec); a tap client's
/// side of [`send_with_fd`] (the tests' and benchmarks' Rust client).
pub fn recv_with_fds(sock: impl AsFd, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 8]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_fd().as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave these fds to this process just now; nothing else owns them.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((msg.bytes, fds))
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

/// Bound the bytes the kernel holds not yet sent on a TCP socket (TCP_NOTSENT_LOWAT): past
/// it the socket stops being writable, so on a slow link the backlog waits in our queue, where
/// the fan-out policy can skip it, instead of in the kernel, where it can only arrive late.
/// Bytes in flight (sent, not yet acknowledged) do not count.
pub fn set_unsent_limit(fd: impl AsFd, bytes: u32) -> std::io::Result<()> {
    let v = bytes.min(i32::MAX as u32) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt reads `len` bytes from `&v`, an int that outlives the call; the fd is
    // borrowed, so open.
    let rc = unsafe {
        libc::setsockopt(fd.as_fd().as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, (&raw const v).cast(), len)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit as the kernel reads it back (getsockopt), for the test below.
    fn unsent_limit(fd: impl AsFd) -> std::io::Result<u32> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, an int on this stack frame.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_fd().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { Ok(v as u32) } else { Err(std::io::Error::last_os_error()) }
    }

    #[test]
    fn the_unsent_limit_is_set_on_tcp_and_refused_on_unix_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let before = unsent_limit(&client).unwrap();
        set_unsent_limit(&client, 64 * 1024).unwrap();
        assert_eq!(unsent_limit(&client).unwrap(), 64 * 1024, "was {before}");
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(set_unsent_limit(&a, 64 * 1024).is_err(), "a Unix socket has no TCP options");
    }
}
