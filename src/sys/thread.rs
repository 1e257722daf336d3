//! Thread scheduling: the encoders run at a lower priority than the poll loop and the capture
//! thread, so on a busy machine the loop still hands a finished frame to the viewers (and a
//! captured one to the encoder) at once instead of waiting for an encoder's time slice; and
//! each on a CPU of its own, so that the two eyes' encodes never queue on one core.

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

/// The CPUs this thread may run on (its affinity mask), in order.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size is that of `set`, which the call fills.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the set within its fixed size (CPU_SETSIZE).
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Keep the calling thread on one CPU.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes within the set's fixed size; `cpu` was checked against it above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised cpu_set_t.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
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

    #[test]
    fn pins_only_the_calling_thread() {
        let all = super::allowed_cpus().unwrap();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        let inner = std::thread::spawn(move || {
            super::pin_to_cpu(last).unwrap();
            super::allowed_cpus().unwrap()
        });
        assert_eq!(inner.join().unwrap(), vec![last]);
        assert_eq!(super::allowed_cpus().unwrap(), all);
        assert!(super::pin_to_cpu(1 << 20).is_err());
    }
}
