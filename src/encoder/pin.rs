//! When a pinned encoder should leave its CPU (`--encoder-cpus`). Pinning keeps the two eyes'
//! encodes on different cores; it assumes the CPU is there for the encoder when a frame comes.
//! Something that holds that CPU and will not move (a per-CPU kernel thread, a kernel thread
//! that does not yield under a voluntary-preemption kernel, a pinned process) makes the encoder
//! wait on that CPU's run queue while the others idle, and every frame that arrives meanwhile
//! is dropped. Seen in the test guest: vimc's streamer thread computes each frame in the kernel
//! without yielding (~1.2 s under TCG) and held the encoder's only CPU; its frames waited
//! 1.1-1.5 s to start a 37 ms encode and half of them were dropped.
//!
//! The rule: a frame that waited longer than a frame interval on the run queue opens a window
//! (from the start of that wait); at its end (after [`WINDOW_US`]) the encoder is let go if it
//! spent at least a frame interval and an eighth of the window waiting and the other CPUs it may
//! use had a quarter of a CPU idle meanwhile (on a machine that is busy everywhere, moving helps
//! nobody and the pin stays).

/// How long the waiting is looked at before deciding.
pub const WINDOW_US: u64 = 2_000_000;

/// What a window saw: the encoder waited `waited_us` in `window_us` while the other CPUs idled
/// `idle_us` (measured from the end of the wait that opened it); `leave`: reason enough to leave
/// its CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub waited_us: u64,
    pub window_us: u64,
    pub idle_us: u64,
    pub leave: bool,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start_us: u64,
    /// When the other CPUs' idle time was first read, and what it was.
    idle_from_us: u64,
    idle_at_us: u64,
    waited_us: u64,
}

#[derive(Clone, Debug)]
pub struct PinWatch {
    interval_us: u64,
    window: Option<Window>,
}

impl PinWatch {
    pub fn new(fps: u32) -> PinWatch {
        PinWatch { interval_us: 1_000_000 / fps.max(1) as u64, window: None }
    }

    /// A new frame rate (the window in progress goes on).
    pub fn set_fps(&mut self, fps: u32) {
        self.interval_us = 1_000_000 / fps.max(1) as u64;
    }

    /// A frame is done at `now_us`; it waited `wait_us` on the run queue. `idle_us` reads the
    /// other CPUs' idle time so far (a running total; None when it cannot be read: the pin
    /// stays). Some verdict when a window closes (`leave`: the encoder should leave its CPU).
    pub fn frame(&mut self, now_us: u64, wait_us: u64, idle_us: &mut dyn FnMut() -> Option<u64>) -> Option<Verdict> {
        let Some(w) = &mut self.window else {
            if wait_us > self.interval_us
                && let Some(idle) = idle_us()
            {
                self.window = Some(Window {
                    start_us: now_us.saturating_sub(wait_us),
                    idle_from_us: now_us,
                    idle_at_us: idle,
                    waited_us: wait_us,
                });
            }
            return None;
        };
        w.waited_us += wait_us;
        let window_us = now_us.saturating_sub(w.start_us);
        if window_us < WINDOW_US {
            return None;
        }
        let w = self.window.take().expect("just looked");
        let idle = idle_us()?.saturating_sub(w.idle_at_us);
        let lost = w.waited_us >= self.interval_us && w.waited_us * 8 >= window_us;
        let spare = idle * 4 >= now_us.saturating_sub(w.idle_from_us);
        Some(Verdict { waited_us: w.waited_us, window_us, idle_us: idle, leave: lost && spare })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames at `interval` µs, each waiting `wait`; the other CPUs idle `idle_share` of the
    /// time. Returns the verdict and when it came.
    fn run(fps: u32, interval: u64, wait: u64, idle_share: f64, frames: u64) -> Option<(u64, Verdict)> {
        let mut w = PinWatch::new(fps);
        for i in 1..=frames {
            let now = 10_000_000 + i * interval;
            let mut idle = || Some((now as f64 * idle_share) as u64);
            if let Some(v) = w.frame(now, wait, &mut idle).filter(|v| v.leave) {
                return Some((now, v));
            }
        }
        None
    }

    #[test]
    fn an_encoder_held_off_its_cpu_while_another_idles_leaves_it() {
        // The test guest: vimc at ~0.8 fps for 2 fps asked, each frame waiting ~1.2 s for the
        // encoder's CPU while the other CPU idles half the time.
        let (at, v) = run(2, 1_250_000, 1_200_000, 0.5, 10).expect("leaves");
        assert_eq!(at, 10_000_000 + 2 * 1_250_000, "decided at the second frame");
        assert_eq!(v, Verdict { waited_us: 2_400_000, window_us: 2_450_000, idle_us: 625_000, leave: true });
        // A Pi at 30 fps with its encoder's CPU taken by something that will not move.
        assert!(run(30, 33_333, 40_000, 0.9, 200).is_some());
    }

    #[test]
    fn the_pin_stays_when_moving_would_not_help_or_nothing_waits() {
        // Busy everywhere: the other CPUs never idle.
        assert_eq!(run(2, 1_250_000, 1_200_000, 0.0, 50), None);
        // Waits shorter than a frame interval never open a window.
        assert_eq!(run(30, 33_333, 30_000, 1.0, 500), None);
        // A long wait now and then (a keyframe behind another task) is not a quarter of the time.
        let mut w = PinWatch::new(30);
        assert_eq!(w.frame(1_000_000, 50_000, &mut || Some(0)), None, "opens a window");
        for i in 1..=60u64 {
            let now = 1_000_000 + i * 33_333;
            let wait = if i % 20 == 0 { 50_000 } else { 1_000 };
            assert!(!w.frame(now, wait, &mut || Some(now)).is_some_and(|v| v.leave), "frame {i}");
        }
        // Idle time that cannot be read: the pin stays.
        let mut w = PinWatch::new(2);
        for i in 1..=50u64 {
            assert_eq!(w.frame(i * 1_250_000, 1_200_000, &mut || None), None);
        }
    }

    #[test]
    fn a_window_that_found_nothing_closes_and_the_next_long_wait_opens_another() {
        let mut w = PinWatch::new(10);
        let mut t = 0u64;
        let mut step = |w: &mut PinWatch, dt: u64, wait: u64| {
            t += dt;
            let now = t;
            w.frame(now, wait, &mut || Some(now / 2))
        };
        assert_eq!(step(&mut w, 100_000, 200_000), None, "opens");
        for _ in 0..18 {
            assert_eq!(step(&mut w, 100_000, 1_000), None);
        }
        let v = step(&mut w, 100_000, 1_000).expect("the window closes");
        assert_eq!((v.waited_us, v.window_us, v.leave), (219_000, 2_000_000, false), "{v:?}");
        assert!(w.window.is_none(), "closed");
        assert_eq!(step(&mut w, 100_000, 200_000), None, "opens again");
        let mut v = None;
        for _ in 0..20 {
            v = v.or(step(&mut w, 100_000, 90_000).filter(|v| v.leave));
        }
        let v = v.expect("waited 90 % of the window while the others idled half of it");
        assert_eq!(v.window_us, 2_000_000);
        assert_eq!(v.waited_us, 200_000 + 18 * 90_000);
        // An eighth of the window and a frame interval lost to waiting is enough.
        let mut w = PinWatch::new(10);
        assert_eq!(w.frame(120_000, 120_000, &mut || Some(0)), None);
        let v = (1..=19u64).find_map(|i| {
            let now = 120_000 + i * 100_000;
            w.frame(now, if i % 9 == 0 { 70_000 } else { 0 }, &mut || Some(now / 3))
        });
        assert_eq!(v, Some(Verdict { waited_us: 260_000, window_us: 2_020_000, idle_us: 673_333, leave: true }));
    }
}
