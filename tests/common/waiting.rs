//! Waiting on conditions with deadlines, never for a fixed time: a spawned daemon's stderr
//! followed into a `Log` that wakes its waiters on every line, and `wait_until` for conditions
//! only a query can tell (a `status` field, a process that exits). Shared by the tests
//! (`tests/common`) and the benchmarks (`benches/support`, which include this file by path).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often `wait_until` asks again: the condition is re-checked, not waited out.
const POLL: Duration = Duration::from_millis(20);

/// Ask `cond` until it holds or `limit` has passed; whether it held. For conditions with no
/// event to wait on (a status counter, a child's exit), checked every 20 ms.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        // The interval between two checks (the one sleep of the tests: it waits for nothing).
        std::thread::sleep(POLL.min(end - now));
    }
}

/// A daemon's stderr as it arrives, line by line; waiters wake on each new line.
#[derive(Default)]
pub struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

impl Log {
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text.lock().unwrap().lines().filter(|l| l.contains(needle)).count()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text.lock().unwrap().contains(needle)
    }

    /// Wait until a line containing `needle` has arrived, at most `limit`; whether it did.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut text = self.text.lock().unwrap();
        loop {
            if text.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            text = self.grew.wait_timeout(text, end - now).unwrap().0;
        }
    }

    fn push(&self, line: &str) {
        let mut t = self.text.lock().unwrap();
        t.push_str(line);
        t.push('\n');
        self.grew.notify_all();
    }
}

/// Follow a just-spawned daemon's stderr (piped) into a `Log`, and wait until it says where it
/// listens; a daemon that does not within `start_timeout` is killed, and the caller fails with
/// its log.
pub fn follow_log(child: &mut Child, start_timeout: Duration) -> (SocketAddr, Arc<Log>) {
    try_follow_log(child, start_timeout).unwrap_or_else(|e| panic!("{}", e.message))
}

/// A daemon that did not say where it listens in time (it has been killed).
pub struct NotStarted {
    /// Whether it printed nothing at all: it never got as far as its first log line.
    pub silent: bool,
    pub message: String,
}

/// `follow_log` that returns the failure instead of panicking on it.
pub fn try_follow_log(child: &mut Child, start_timeout: Duration) -> Result<(SocketAddr, Arc<Log>), NotStarted> {
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Log::default());
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.push(&line);
        }
    });
    let needle = "listening on http://";
    if !log.wait_for(needle, start_timeout) {
        // Where the process was, before it is killed: its command line (still the test's own
        // if it never reached exec) and its state.
        let proc = |f: &str| std::fs::read(format!("/proc/{}/{f}", child.id())).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&proc("cmdline")).replace('\0', " ");
        let stat = String::from_utf8_lossy(&proc("stat")).split(' ').nth(2).unwrap_or("?").to_string();
        let _ = child.kill();
        let _ = child.wait();
        let text = log.text();
        return Err(NotStarted {
            silent: text.trim().is_empty(),
            message: format!(
                "daemon did not start within {start_timeout:?} (process {}, state {stat}: {}); log:\n{text}",
                child.id(),
                cmdline.trim()
            ),
        });
    }
    let text = log.text();
    let addr = text.split(needle).nth(1).and_then(|r| r.split('/').next()).expect("an address");
    Ok((addr.parse().expect("ADDR:PORT"), log))
}
