//! Writing the state file off the loop: `save` fsyncs twice (the file, then its directory),
//! which on a Pi's SD card can take as long as the card likes; done on the poll thread that
//! would stall both streams. A worker thread writes each job in order and rings the loop's
//! doorbell; the loop then hands the result to the controller, which answers the connection
//! that asked and tells the watchers.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::control::state_file;
use crate::controller::SaveJob;
use crate::inject::{Kind, SharedFaults};
use crate::sys::clock::monotonic_us;
use crate::sys::notify::Doorbell;

type Done = (u64, Result<(), String>);

struct Shared {
    done: Mutex<Vec<Done>>,
    doorbell: Doorbell,
}

pub struct Saver {
    tx: Option<Sender<SaveJob>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Saver {
    pub fn start(faults: SharedFaults) -> std::io::Result<Saver> {
        let shared = Arc::new(Shared { done: Mutex::new(Vec::new()), doorbell: Doorbell::new()? });
        let (tx, rx) = channel();
        let worker = shared.clone();
        let thread = std::thread::Builder::new().name("pieyes-save".into()).spawn(move || run(rx, worker, faults))?;
        Ok(Saver { tx: Some(tx), shared, thread: Some(thread) })
    }

    pub fn submit(&self, job: SaveJob) {
        if let Some(tx) = &self.tx {
            let ticket = job.ticket;
            if tx.send(job).is_err() {
                self.shared.done.lock().expect("saver lock").push((ticket, Err("the save worker is gone".into())));
                self.shared.doorbell.ring();
            }
        }
    }

    /// Results of finished jobs, in order (call when the doorbell rang).
    pub fn finished(&self) -> Vec<Done> {
        self.shared.doorbell.drain();
        std::mem::take(&mut *self.shared.done.lock().expect("saver lock"))
    }
}

impl AsFd for Saver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.doorbell.as_fd()
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.tx.take(); // the worker finishes what it has and ends
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<SaveJob>, shared: Arc<Shared>, faults: SharedFaults) {
    for job in rx {
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
        shared.done.lock().expect("saver lock").push((job.ticket, result));
        shared.doorbell.ring();
    }
}
