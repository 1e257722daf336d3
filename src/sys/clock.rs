//! CLOCK_MONOTONIC in microseconds: the one time base for capture stamps, latency and timers.

use nix::time::{ClockId, clock_gettime};

/// Microseconds since an arbitrary point (boot), never jumps. Same clock as libcamera's
/// `SensorTimestamp` (which is in ns) and as the kernel's timerfd with CLOCK_MONOTONIC.
pub fn monotonic_us() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000
}

/// CPU time consumed by the calling thread, in microseconds (for encoder cost figures).
pub fn thread_cpu_us() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000
}

/// CPU time consumed by the whole process, in microseconds.
pub fn process_cpu_us() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("process CPU clock");
    ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000
}
