//! Frame memory that is an fd: a memfd the synthetic camera renders into, or a dmabuf a real
//! camera exports. Mapped once, shared read/write; whoever owns the `SharedMemory` value owns the
//! pixels, so moving it camera → encoder → camera is what keeps access exclusive.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// A shared, read/write mapping of (part of) an fd; unmapped on drop. The fd may be closed
/// while mapped (the kernel keeps the object alive), but a device's buffers must be unmapped
/// before the device frees them.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; `&self` gives shared reads and
// `&mut self` exclusive writes, exactly like a `Vec<u8>`, so it may move between threads.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len` bytes of `fd` from `offset`.
    pub fn new(fd: BorrowedFd<'_>, len: usize, offset: libc::off_t) -> std::io::Result<Mapping> {
        let size = NonZeroUsize::new(len).ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared mapping of an object we hold an fd of; no Rust object aliases
        // it, and `Mapping` unmaps it on drop.
        let ptr = unsafe {
            mmap(None, size, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, fd, offset)?
        };
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    /// Map `len` bytes of `fd` read-only from the start (what a frame tap's client does).
    pub fn read_only(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<Mapping> {
        let size = NonZeroUsize::new(len).ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared read-only mapping; only ever read through `as_slice`.
        let ptr = unsafe { mmap(None, size, ProtFlags::PROT_READ, MapFlags::MAP_SHARED, fd, 0)? };
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is our live mapping; a shared borrow of self means no writer
        // through this value (a device writes a buffer only while it is queued to it).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr+len is our live mapping; the exclusive borrow of self makes this the
        // only reference into it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping the region mapped in `new`; no slice into it can outlive `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// A buffer that is an fd, with its mapping.
pub struct SharedMemory {
    fd: OwnedFd,
    map: Mapping,
}

impl SharedMemory {
    /// A new zero-filled memfd of `len` bytes, mapped read/write.
    pub fn memfd(name: &str, len: usize) -> std::io::Result<Self> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, len as libc::off_t)?;
        Self::map(fd, len)
    }

    /// Map an existing buffer fd (a dmabuf from a camera or a memfd) of `len` bytes.
    pub fn map(fd: OwnedFd, len: usize) -> std::io::Result<Self> {
        let map = Mapping::new(fd.as_fd(), len, 0)?;
        Ok(SharedMemory { fd, map })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.map.as_mut_slice()
    }

    /// The fd and the writable bytes at once (to bracket a CPU write with dma-buf syncs).
    pub fn fd_and_mut_slice(&mut self) -> (BorrowedFd<'_>, &mut [u8]) {
        (self.fd.as_fd(), self.map.as_mut_slice())
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A second fd for the same buffer that only reads: a memfd is reopened through /proc with
/// O_RDONLY (a mapping of it cannot write); what cannot be reopened (a dma-buf) is duplicated.
pub fn read_only_clone(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    match nix::fcntl::open(path.as_str(), flags, nix::sys::stat::Mode::empty()) {
        Ok(ro) => Ok(ro),
        Err(_) => fd.try_clone_to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_round_trip_through_a_second_mapping() {
        let mut a = SharedMemory::memfd("t", 4096).unwrap();
        a.as_mut_slice()[..3].copy_from_slice(b"eye");
        let dup = a.as_fd().try_clone_to_owned().unwrap();
        let b = SharedMemory::map(dup, 4096).unwrap();
        assert_eq!(&b.as_slice()[..3], b"eye");
        assert!(b.as_slice()[3..].iter().all(|&x| x == 0));
    }

    #[test]
    fn a_read_only_clone_maps_for_reading_only() {
        let mut a = SharedMemory::memfd("t", 4096).unwrap();
        a.as_mut_slice()[..3].copy_from_slice(b"eye");
        let ro = read_only_clone(a.as_fd()).unwrap();
        assert!(Mapping::new(ro.as_fd(), 4096, 0).is_err(), "no writable mapping from the clone");
        let m = Mapping::read_only(ro.as_fd(), 4096).unwrap();
        assert_eq!(&m.as_slice()[..3], b"eye");
        a.as_mut_slice()[0] = b'E';
        assert_eq!(m.as_slice()[0], b'E', "the same pages, no copy");
    }
}
