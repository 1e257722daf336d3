//! Thread scheduling: the encoders run at a lower priority than the poll loop and the capture
//! thread, so on a busy machine the loop still hands a finished frame to the viewers (and a
//! captured one to the encoder) at once instead of waiting for an encoder's time slice; and
//! each on a CPU of its own, so that the two eyes' encodes never queue on one core (and, when
//! something that will not move holds that CPU, off it again: `encoder::pin`, which reads the
//! run-queue wait and the CPUs' idle time from here).

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
    set_affinity(&[cpu])
}

/// Let the calling thread run on `cpus` (and only there).
pub fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes within the set's fixed size; `cpu` was checked against it above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised cpu_set_t.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How long the calling thread has waited on a run queue, runnable but not running (the
/// kernel's `sched_info.run_delay`, from /proc/thread-self/schedstat; kernels with
/// CONFIG_SCHED_INFO, as Debian's and Raspberry Pi OS's have).
pub struct RunDelay {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl RunDelay {
    /// For the calling thread (the file names the thread that opens it).
    pub fn open() -> Option<RunDelay> {
        let file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        let mut r = RunDelay { file, buf: Vec::with_capacity(64) };
        r.read_us().map(|_| r)
    }

    /// Total run-queue wait so far, µs.
    pub fn read_us(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        self.buf.resize(64, 0);
        let n = self.file.read_at(&mut self.buf, 0).ok()?;
        parse_run_delay_ns(std::str::from_utf8(&self.buf[..n]).ok()?).map(|ns| ns / 1000)
    }
}

/// The second field of a schedstat line ("runtime_ns run_delay_ns timeslices").
fn parse_run_delay_ns(line: &str) -> Option<u64> {
    let mut f = line.split_ascii_whitespace();
    let _runtime: u64 = f.next()?.parse().ok()?;
    let delay = f.next()?.parse().ok()?;
    f.next()?.parse::<u64>().ok()?;
    Some(delay)
}

/// Time CPUs `cpus` spent idle so far (idle + iowait in /proc/stat), summed, µs.
pub fn cpus_idle_us(cpus: &[usize]) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    idle_us_of(&stat, cpus, if ticks > 0 { ticks as u64 } else { 100 })
}

/// Idle + iowait of `cpus` from /proc/stat's text, µs (`ticks_per_s`: USER_HZ).
fn idle_us_of(stat: &str, cpus: &[usize], ticks_per_s: u64) -> Option<u64> {
    let mut total = 0u64;
    let mut found = 0;
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else { continue };
        let mut f = rest.split_ascii_whitespace();
        let Some(Ok(cpu)) = f.next().map(str::parse::<usize>) else { continue }; // "cpu " is the sum
        if !cpus.contains(&cpu) {
            continue;
        }
        let v: Vec<u64> = f.take(5).map_while(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            return None;
        }
        total += v[3] + v[4];
        found += 1;
    }
    (found == cpus.len()).then(|| total * 1_000_000 / ticks_per_s)
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
    fn reads_run_delay_and_idle_time() {
        assert_eq!(super::parse_run_delay_ns("123456 7890000 42\n"), Some(7_890_000));
        assert_eq!(super::parse_run_delay_ns("0 0\n"), None);
        let stat = "cpu  10 0 10 500 20 0 0 0 0 0\ncpu0 5 0 5 200 10 0 0 0 0 0\n\
                    cpu1 5 0 5 300 10 0 0 0 0 0\nintr 1 2 3\n";
        assert_eq!(super::idle_us_of(stat, &[1], 100), Some(3_100_000));
        assert_eq!(super::idle_us_of(stat, &[0, 1], 100), Some(5_200_000));
        assert_eq!(super::idle_us_of(stat, &[2], 100), None, "a CPU /proc/stat does not list");
        // This machine: a thread that sleeps does not wait on a run queue for it.
        let mut rd = super::RunDelay::open().expect("/proc/thread-self/schedstat");
        let a = rd.read_us().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(rd.read_us().unwrap() >= a);
        assert!(super::cpus_idle_us(&super::allowed_cpus().unwrap()).is_some());
    }

    #[test]
    fn pins_only_the_calling_thread() {
        let all = super::allowed_cpus().unwrap();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        let every = all.clone();
        let inner = std::thread::spawn(move || {
            super::pin_to_cpu(last).unwrap();
            let pinned = super::allowed_cpus().unwrap();
            super::set_affinity(&every).unwrap(); // and free again (an encoder leaving its CPU)
            (pinned, super::allowed_cpus().unwrap())
        });
        assert_eq!(inner.join().unwrap(), (vec![last], all.clone()));
        assert_eq!(super::allowed_cpus().unwrap(), all);
        assert!(super::pin_to_cpu(1 << 20).is_err());
        assert!(super::set_affinity(&[]).is_err());
    }
}
