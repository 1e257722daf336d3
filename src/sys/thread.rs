//! Thread scheduling: the encoders run at a lower priority than the poll loop and the capture
//! thread, so on a busy machine the loop still hands a finished frame to the viewers (and a
//! captured one to the encoder) at once instead of waiting for an encoder's time slice.

/// Raise the calling thread's nice value by `delta` (lower its priority; allowed unprivileged).
pub fn lower_priority(delta: i32) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: getpriority/setpriority read and set this thread's nice value; no memory is shared.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (current + delta).min(19)) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lowers_only_the_calling_thread() {
        // SAFETY: reading this process's nice value.
        let main_before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let t = std::thread::spawn(|| {
            super::lower_priority(3).unwrap();
            // SAFETY: gettid/getpriority on the calling thread.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        });
        let inner = t.join().unwrap();
        assert_eq!(inner, (main_before + 3).min(19));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, main_before);
    }
}
