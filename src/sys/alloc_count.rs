//! The global allocator: the system's, with a counter in front, so `status` and `/metrics`
//! can tell how many heap allocations the process made and `make bench` can show them per
//! frame (the streaming path should make none of its own). A relaxed atomic add per
//! allocation; frees are not counted. C libraries' own `malloc` calls (OpenH264) are not seen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

pub struct CountingAllocator;

// SAFETY: every call is passed unchanged to the system allocator, which upholds GlobalAlloc's
// contract; the counter touches no memory of the caller's.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires (non-zero size).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from System) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: `ptr` came from System with `layout`; the caller guarantees new_size > 0.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations (and reallocations) made by Rust code in this process so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_what_is_allocated() {
        let before = super::allocations();
        let v: Vec<Box<u32>> = (0..10).map(Box::new).collect();
        assert!(super::allocations() >= before + 11, "10 boxes and the vector");
        drop(v);
    }
}
