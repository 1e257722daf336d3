//! One line per event on stderr: `<uptime s> <LEVEL> <message>`. The level comes from
//! `PIEYES_LOG` (error, warn, info, debug; default info). Nothing logs per frame at info.
//!
//! A line that cannot be written (stderr piped to a reader that went away, a full disk under
//! journald) is dropped: logging never stops the daemon. (`eprintln!` would panic on EPIPE;
//! SIGPIPE itself is ignored, by Rust's runtime and again by `sys::signals`.)

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static START: OnceLock<u64> = OnceLock::new();

pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" | "trace" => Level::Debug,
        _ => return None,
    })
}

/// Read `PIEYES_LOG`; an unknown value is reported and ignored.
pub fn init_from_env() {
    START.get_or_init(crate::sys::clock::monotonic_us);
    if let Ok(v) = std::env::var("PIEYES_LOG") {
        match parse_level(&v) {
            Some(l) => LEVEL.store(l as u8, Ordering::Relaxed),
            None => emit(format_args!("pieyes: ignoring PIEYES_LOG={v:?} (use error, warn, info or debug)\n")),
        }
    }
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let start = *START.get_or_init(crate::sys::clock::monotonic_us);
    let t = crate::sys::clock::monotonic_us().saturating_sub(start);
    let tag = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
    };
    emit(format_args!("{:>6}.{:03} {tag} {args}\n", t / 1_000_000, t / 1000 % 1000));
}

/// Write one whole line to stderr in one `write` (so lines of concurrent threads never
/// interleave); a failure is ignored.
fn emit(line: std::fmt::Arguments<'_>) {
    let mut buf = Vec::with_capacity(128);
    if buf.write_fmt(line).is_ok() {
        let _ = std::io::stderr().lock().write_all(&buf);
    }
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) { $crate::log::write($lvl, format_args!($($arg)*)) }
    };
}
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($arg)*) }; }
