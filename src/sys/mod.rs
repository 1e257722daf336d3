//! The kernel corner: every `unsafe` block of pieyes' own lives below here, each with a
//! `// SAFETY:` line. The rest of the crate sees plain, safe types.

pub mod clock;
pub mod dmabuf;
pub mod notify;
pub mod poll;
pub mod sd_notify;
pub mod shm;
pub mod signals;
pub mod socket;
pub mod timer;
pub mod v4l2;
