//! The estimate off the loop: a worker thread (`sys::worker`) takes each grabbed pair, runs
//! `grab::measure` (tens of milliseconds on a full-size pair: row profiles and a few hundred
//! correlations) and rings the loop, as `control::saver` does for the state file. The loop
//! hands the result to the controller, which answers the connections that asked.

use std::os::fd::{AsFd, BorrowedFd};

use super::grab::{Measurement, Pair, measure};
use crate::sys::worker;

/// The tickets a pair was grabbed for, and what it says.
pub type Done = (Vec<u64>, Result<Measurement, String>);

pub struct Worker(worker::Worker<(Vec<u64>, Box<Pair>), Done>);

impl Worker {
    pub fn start() -> std::io::Result<Worker> {
        let work = |(tickets, pair): (Vec<u64>, Box<Pair>)| (tickets, estimate(&pair));
        worker::Worker::start("pieyes-calibrate", work).map(Worker)
    }

    pub fn submit(&self, tickets: Vec<u64>, pair: Box<Pair>) {
        if let Err((tickets, _)) = self.0.submit((tickets, pair)) {
            self.fail(tickets, "the calibrate worker is gone".into());
        }
    }

    /// Answer tickets without a pair (the grab failed): through the same doorbell, so every
    /// answer comes from one place in the loop.
    pub fn fail(&self, tickets: Vec<u64>, why: String) {
        self.0.post((tickets, Err(why)));
    }

    /// Finished estimates, in order (call when the doorbell rang).
    pub fn finished(&self) -> Vec<Done> {
        self.0.finished()
    }
}

impl AsFd for Worker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn estimate(pair: &Pair) -> Result<Measurement, String> {
    let started = crate::sys::clock::monotonic_us();
    let result = measure(pair);
    let ms = (crate::sys::clock::monotonic_us() - started) as f64 / 1000.0;
    match &result {
        Ok(m) => crate::info!(
            "calibrate: eye 1 sits {:.1} px below eye 0, turned {:.2}°, confidence {:.2} (frames {} and {}, {ms:.1} ms)",
            m.dy,
            m.rotation_deg,
            m.confidence,
            pair.meta[0].sequence,
            pair.meta[1].sequence
        ),
        Err(e) => crate::warn!("calibrate: {e}"),
    }
    result
}
