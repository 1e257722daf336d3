//! Frame memory that is an fd: a memfd the synthetic camera renders into, or a dmabuf a real
//! camera exports. Mapped once, shared read/write; whoever owns the `SharedMemory` value owns the
//! pixels, so moving it camera → encoder → camera is what keeps access exclusive.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; `&self` gives shared reads and
// `&mut self` exclusive writes, exactly like a `Vec<u8>`, so it may move between threads.
unsafe impl Send for SharedMemory {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// A new zero-filled memfd of `len` bytes, mapped read/write.
    pub fn memfd(name: &str, len: usize) -> std::io::Result<Self> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, len as libc::off_t)?;
        Self::map(fd, len)
    }

    /// Map an existing buffer fd (a dmabuf from a camera or a memfd) of `len` bytes.
    pub fn map(fd: OwnedFd, len: usize) -> std::io::Result<Self> {
        let size = NonZeroUsize::new(len).ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared mapping of a buffer we hold the fd of; no Rust object aliases it.
        let ptr =
            unsafe { mmap(None, size, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, &fd, 0)? };
        Ok(SharedMemory { fd, ptr: ptr.cast(), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is our live mapping; shared borrow of self means no writer.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr+len is our live mapping; the exclusive borrow of self makes this the
        // only reference into it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the region mapped in `map`; no slice into it can outlive `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
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
}
