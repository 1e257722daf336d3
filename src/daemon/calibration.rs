//! `calibrate` in the loop: both pipelines copy luma from their next good frames, the copies
//! are paired by capture time, the pair goes to the worker thread, and its estimate answers
//! the connections that asked (through the controller, which keeps it for `calibrate apply`).

use super::Daemon;
use crate::calibrate::grab::{self, Grabbed};
use crate::sys::clock::monotonic_us;

impl Daemon {
    /// The controller wants a pair for `ticket` (it checked there are two eyes).
    pub(super) fn start_calibration(&mut self, ticket: u64) {
        let period_us = 1_000_000 / self.controller.fps().max(1) as u64;
        let (a, b) = self.eyes.split_at_mut(1);
        self.pair_grab.request(ticket, monotonic_us(), [&mut a[0].grab, &mut b[0].grab], period_us);
    }

    /// After frames came in (or on the housekeeping tick, for the timeout): a pair for the
    /// worker, or the waiting tickets fail.
    pub(super) fn collect_calibration(&mut self, now: u64) {
        if !self.pair_grab.active() || self.eyes.len() < 2 {
            return;
        }
        let output = self.eyes[0].camera.info().output;
        let (a, b) = self.eyes.split_at_mut(1);
        let eyes = [&mut a[0].grab, &mut b[0].grab];
        match self.pair_grab.collect(eyes, output, now) {
            Grabbed::Nothing => return,
            Grabbed::Pair(tickets, pair) => self.calibrator.submit(tickets, pair),
            Grabbed::Failed(tickets, why) => self.calibrator.fail(tickets, why),
        }
        grab::stop([&mut a[0].grab, &mut b[0].grab]);
    }

    /// The worker finished estimates: answer the connections that asked.
    pub(super) fn calibrations_finished(&mut self) {
        for (tickets, result) in self.calibrator.finished() {
            for ticket in tickets {
                let reply = self.controller.calibration_finished(ticket, &result);
                self.answer_pending(ticket, &reply);
            }
        }
    }
}
