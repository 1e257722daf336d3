//! The kernel corner: every `unsafe` block of pieyes' own lives below here, each with a
//! `// SAFETY:` line. The rest of the crate sees plain, safe types.

pub mod alloc_count;
pub mod clock;
pub mod dmabuf;
pub mod fd_reserve;
pub mod notify;
pub mod poll;
pub mod sd_notify;
pub mod shm;
pub mod signals;
pub mod socket;
pub mod thread;
pub mod timer;
pub mod v4l2;
pub mod worker;

/// The kernel's page size in bytes.
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}
