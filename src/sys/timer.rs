//! timerfd wrappers: a periodic timer for the loop's housekeeping and for camera frame ticks.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

pub struct Timer {
    fd: TimerFd,
}

impl Timer {
    /// A CLOCK_MONOTONIC timer; `nonblocking` for the poll loop, blocking for a worker thread
    /// that simply waits for its next tick.
    pub fn new(nonblocking: bool) -> std::io::Result<Self> {
        let mut flags = TimerFlags::TFD_CLOEXEC;
        if nonblocking {
            flags |= TimerFlags::TFD_NONBLOCK;
        }
        Ok(Timer { fd: TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)? })
    }

    /// Fire every `period`, first after one period.
    pub fn set_periodic(&self, period: Duration) -> std::io::Result<()> {
        let ts = TimeSpec::from_duration(period);
        self.fd.set(Expiration::Interval(ts), TimerSetTimeFlags::empty())?;
        Ok(())
    }

    /// Fire every `period`, first at the absolute CLOCK_MONOTONIC time `first_us`, so that two
    /// timers started from the same origin tick in phase.
    pub fn set_periodic_from(&self, first_us: u64, period: Duration) -> std::io::Result<()> {
        let start = TimeSpec::from_duration(Duration::from_micros(first_us));
        let ts = TimeSpec::from_duration(period);
        self.fd.set(Expiration::IntervalDelayed(start, ts), TimerSetTimeFlags::TFD_TIMER_ABSTIME)?;
        Ok(())
    }

    /// Consume expirations; returns how many periods elapsed since the last read (0 if none).
    pub fn expirations(&self) -> u64 {
        let mut buf = [0u8; 8];
        match nix::unistd::read(&self.fd, &mut buf) {
            Ok(8) => u64::from_ne_bytes(buf),
            _ => 0,
        }
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
