//! poll(2) over a reusable array of `pollfd`s: the loop rebuilds its interest list every
//! iteration, and keeping the array (not a fresh `Vec` of borrowed fds) means no allocation
//! per wake-up.

/// Wait up to `timeout_ms` (-1: forever); revents are filled in. EINTR counts as a wake-up
/// with nothing ready.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs; poll
    // only writes their `revents` fields.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
