//! dma-buf: bracketing CPU access (DMA_BUF_IOCTL_SYNC START/END) so a CPU reading a camera's
//! buffer in place sees what the device wrote (caches are cleaned/invalidated as the exporter
//! needs), and allocating dma-bufs from a DMA heap (`/dev/dma_heap/system`) for tests.
//! A memfd is not a dma-buf: SYNC answers ENOTTY, which [`SyncPolicy`] learns once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

const SYNC_READ: u64 = 1;
const SYNC_WRITE: u64 = 2;
const SYNC_START: u64 = 0;
const SYNC_END: u64 = 4;

#[repr(C)]
struct DmaBufSync {
    flags: u64,
}

#[repr(C)]
struct HeapAllocation {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

mod ioc {
    use super::*;
    nix::ioctl_write_ptr!(sync, b'b', 0, DmaBufSync);
    nix::ioctl_readwrite!(heap_alloc, b'H', 0, HeapAllocation);
}

/// Successful SYNC START calls in this process, by access (tests check the brackets happened).
static SYNC_STARTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

pub fn sync_starts(access: Access) -> u64 {
    SYNC_STARTS[access as usize].load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read = 0,
    Write = 1,
    ReadWrite = 2,
}

impl Access {
    fn bits(self) -> u64 {
        match self {
            Access::Read => SYNC_READ,
            Access::Write => SYNC_WRITE,
            Access::ReadWrite => SYNC_READ | SYNC_WRITE,
        }
    }
}

fn sync(fd: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    let s = DmaBufSync { flags };
    loop {
        // SAFETY: DMA_BUF_IOCTL_SYNC reads one struct dma_buf_sync; on a non-dma-buf fd the
        // kernel answers ENOTTY without touching anything.
        match unsafe { ioc::sync(fd.as_raw_fd(), &s) } {
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// CPU access to a dma-buf, between SYNC START (now) and SYNC END (on drop).
pub struct CpuAccess<'a> {
    fd: BorrowedFd<'a>,
    access: Access,
}

impl<'a> CpuAccess<'a> {
    pub fn begin(fd: BorrowedFd<'a>, access: Access) -> Result<CpuAccess<'a>, Errno> {
        sync(fd, SYNC_START | access.bits())?;
        SYNC_STARTS[access as usize].fetch_add(1, Ordering::Relaxed);
        Ok(CpuAccess { fd, access })
    }
}

impl Drop for CpuAccess<'_> {
    fn drop(&mut self) {
        let _ = sync(self.fd, SYNC_END | self.access.bits());
    }
}

/// "This fd does not know that ioctl": ENOTTY from a kernel; ENOSYS from qemu-user, which
/// refuses ioctls it does not emulate (the aarch64 tests run under it).
pub fn not_supported(e: Errno) -> bool {
    matches!(e, Errno::ENOTTY | Errno::ENOSYS)
}

/// Whether `fd` is a dma-buf (it accepts a SYNC bracket); a memfd is not.
pub fn is_dmabuf(fd: BorrowedFd<'_>) -> bool {
    CpuAccess::begin(fd, Access::Read).is_ok()
}

/// The buffers one consumer sees are all of one kind (a camera's pool): ask the first one
/// whether it is a dma-buf and remember the answer, so memfds cost one ENOTTY in all.
#[derive(Debug, Default)]
pub struct SyncPolicy {
    dmabuf: Option<bool>,
}

impl SyncPolicy {
    /// Bracket CPU access to `fd` when it is a dma-buf. Ok(None): not a dma-buf (known from the
    /// first buffer's ENOTTY); Err: the sync itself failed (the caller may log and go on).
    pub fn begin<'a>(&mut self, fd: BorrowedFd<'a>, access: Access) -> Result<Option<CpuAccess<'a>>, Errno> {
        if self.dmabuf == Some(false) {
            return Ok(None);
        }
        match CpuAccess::begin(fd, access) {
            Ok(a) => {
                self.dmabuf = Some(true);
                Ok(Some(a))
            }
            Err(e) if not_supported(e) && self.dmabuf.is_none() => {
                self.dmabuf = Some(false);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// None until the first buffer was seen.
    pub fn dmabuf(&self) -> Option<bool> {
        self.dmabuf
    }
}

/// A DMA heap (`/dev/dma_heap/system`, or `linux,cma` on a Pi) to allocate dma-bufs from.
pub struct Heap {
    fd: OwnedFd,
}

impl Heap {
    pub fn open(path: &Path) -> std::io::Result<Heap> {
        Ok(Heap { fd: open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())? })
    }

    /// A new dma-buf of at least `len` bytes (heaps round up to pages).
    pub fn alloc(&self, len: usize) -> std::io::Result<OwnedFd> {
        let mut a =
            HeapAllocation { len: len as u64, fd: 0, fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32, heap_flags: 0 };
        // SAFETY: DMA_HEAP_IOCTL_ALLOC reads and writes one struct dma_heap_allocation_data.
        unsafe { ioc::heap_alloc(self.fd.as_raw_fd(), &mut a) }?;
        // SAFETY: the kernel just created this fd for us; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(a.fd as i32) })
    }
}

impl AsFd for Heap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::shm::SharedMemory;

    #[test]
    fn a_memfd_is_not_a_dmabuf_and_the_policy_asks_only_once() {
        let m = SharedMemory::memfd("t", 4096).unwrap();
        assert!(!is_dmabuf(m.as_fd()));
        assert!(CpuAccess::begin(m.as_fd(), Access::Read).err().is_some_and(not_supported));
        let mut p = SyncPolicy::default();
        assert_eq!(p.dmabuf(), None);
        assert!(p.begin(m.as_fd(), Access::Read).unwrap().is_none());
        assert_eq!(p.dmabuf(), Some(false));
        // Known now: later buffers cost no ioctl.
        assert!(p.begin(m.as_fd(), Access::Read).unwrap().is_none());
    }
}
