//! Spare file descriptors, kept open on /dev/null so that the process can still accept the
//! robot's control connection when it has run out (EMFILE): one is given up just before such
//! an accept, and taken back once fds are free again.

/// Spare fds: released one at a time when the control socket must accept with none left,
/// taken back by housekeeping once fds are free again.
pub struct FdReserve {
    fds: Vec<std::fs::File>,
    want: usize,
}

impl FdReserve {
    pub fn new(want: usize) -> FdReserve {
        let mut r = FdReserve { fds: Vec::new(), want };
        r.refill();
        r
    }

    /// Give one fd back to the process; false when none is left.
    pub fn release(&mut self) -> bool {
        self.fds.pop().is_some()
    }

    pub fn refill(&mut self) {
        while self.fds.len() < self.want {
            match std::fs::File::open("/dev/null") {
                Ok(f) => self.fds.push(f),
                Err(_) => return,
            }
        }
    }
}
