//! A worker thread off the poll loop: jobs go in over a channel, the thread turns each into a
//! result, pushes it to a shared list and rings a doorbell (an eventfd the loop polls); the
//! loop takes the finished results in order. The state-file saver (fsync on an SD card) and
//! the calibration estimate (tens of milliseconds of arithmetic) are both one of these.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::notify::Doorbell;

struct Shared<R> {
    done: Mutex<Vec<R>>,
    doorbell: Doorbell,
}

impl<R> Shared<R> {
    fn post(&self, result: R) {
        self.done.lock().expect("worker results lock").push(result);
        self.doorbell.ring();
    }
}

pub struct Worker<J, R> {
    tx: Option<Sender<J>>,
    shared: Arc<Shared<R>>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Worker<J, R> {
    /// Start thread `name`, which runs `work` on each job in the order they were submitted.
    pub fn start(name: &str, mut work: impl FnMut(J) -> R + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { done: Mutex::new(Vec::new()), doorbell: Doorbell::new()? });
        let (tx, rx) = channel::<J>();
        let theirs = shared.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            for job in rx {
                theirs.post(work(job));
            }
        })?;
        Ok(Worker { tx: Some(tx), shared, thread: Some(thread) })
    }

    /// Queue a job; handed back when the thread is gone (it panicked).
    pub fn submit(&self, job: J) -> Result<(), J> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// A result made without the thread (a job that failed before it could start): it comes
    /// out of `finished` with the others, so every answer is given from one place in the loop.
    pub fn post(&self, result: R) {
        self.shared.post(result);
    }

    /// Results finished so far, in order (call when the doorbell rang).
    pub fn finished(&self) -> Vec<R> {
        self.shared.doorbell.drain();
        std::mem::take(&mut *self.shared.done.lock().expect("worker results lock"))
    }
}

impl<J, R> AsFd for Worker<J, R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.doorbell.as_fd()
    }
}

impl<J, R> Drop for Worker<J, R> {
    fn drop(&mut self) {
        self.tx.take(); // the thread finishes the jobs it has, then its channel ends
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Worker;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

    fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
        let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        crate::sys::poll::poll(&mut fds, timeout_ms).unwrap() == 1
    }

    #[test]
    fn results_come_back_in_order_and_ring_the_doorbell() {
        let w = Worker::start("test-worker", |n: u32| n * 2).unwrap();
        for n in 0..5 {
            w.submit(n).unwrap();
        }
        w.post(99);
        let mut got = Vec::new();
        while got.len() < 6 {
            assert!(wait_readable(w.as_fd(), 10_000), "the doorbell rings within 10 s");
            got.extend(w.finished());
        }
        // The posted result may come before or after the thread's; the thread's keep their order.
        let theirs: Vec<u32> = got.iter().copied().filter(|&r| r != 99).collect();
        assert_eq!(theirs, vec![0, 2, 4, 6, 8]);
        assert!(got.contains(&99));
        assert!(w.finished().is_empty());
    }

    #[test]
    fn drop_finishes_queued_jobs() {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Worker::start("test-worker", move |n: u32| tx.send(n).unwrap()).unwrap();
        (0..3).for_each(|n| w.submit(n).unwrap());
        drop(w);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
