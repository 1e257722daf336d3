//! Writing the state file off the loop: `save` fsyncs twice (the file, then its directory),
//! which on a Pi's SD card can take as long as the card likes; done on the poll thread that
//! would stall both streams. A worker thread (`sys::worker`) writes each job in order and
//! rings the loop; the loop then hands the result to the controller, which answers the
//! connection that asked and tells the watchers.

use std::os::fd::{AsFd, BorrowedFd};

use crate::control::state_file;
use crate::controller::SaveJob;
use crate::inject::{Kind, SharedFaults};
use crate::sys::clock::monotonic_us;
use crate::sys::worker::Worker;

/// A save's ticket and how it went.
pub type Done = (u64, Result<(), String>);

pub struct Saver(Worker<SaveJob, Done>);

impl Saver {
    pub fn start(faults: SharedFaults) -> std::io::Result<Saver> {
        Worker::start("pieyes-save", move |job| save(job, &faults)).map(Saver)
    }

    pub fn submit(&self, job: SaveJob) {
        if let Err(job) = self.0.submit(job) {
            self.0.post((job.ticket, Err("the save worker is gone".into())));
        }
    }

    /// Results of finished jobs, in order (call when the doorbell rang).
    pub fn finished(&self) -> Vec<Done> {
        self.0.finished()
    }
}

impl AsFd for Saver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn save(job: SaveJob, faults: &SharedFaults) -> Done {
    let now = monotonic_us();
    // Injected faults: a full card, or a slow one (the write waits out the window).
    let result = if faults.active(Kind::StateFull, 0, now).is_some() {
        Err(std::io::Error::from_raw_os_error(libc::ENOSPC).to_string())
    } else {
        if let Some(until) = faults.active(Kind::StateSlow, 0, now) {
            std::thread::sleep(std::time::Duration::from_micros(until.saturating_sub(now)));
        }
        state_file::save_atomic(&job.path, &job.contents).map_err(|e| e.to_string())
    };
    match &result {
        Ok(()) => crate::info!("saved state to {}", job.path.display()),
        Err(e) => crate::error!("cannot save state to {}: {e}", job.path.display()),
    }
    (job.ticket, result)
}
