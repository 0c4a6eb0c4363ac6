//! The kernel heap: the `#[global_allocator]` and the seam where allocation tracking plugs in.
//!
//! `KernelHeap` owns policy-free plumbing: it forwards to a backend (`size_class::SizeClassHeap`
//! today) and reports every successful allocation and every free to an optional
//! `HeapObserver`. The leak tracker will be such an observer; keeping it out of the allocator
//! means the tracker can be switched off at boot and measured, and the backend can change without
//! touching it.

pub mod size_class;

use core::alloc::{GlobalAlloc, Layout};

use spin::Once;

pub use size_class::HeapStats;

/// Sees every allocation and free of the kernel heap.
///
/// Called with the heap's lock released but interrupts in whatever state the caller had; an
/// observer must not allocate from the kernel heap itself.
pub trait HeapObserver: Sync {
    fn allocated(&self, ptr: *mut u8, layout: Layout);
    /// Called before the block is returned to the backend, so the observer can still inspect it
    /// (and refuse a double free by panicking with both call sites).
    fn freeing(&self, ptr: *mut u8, layout: Layout);
}

static OBSERVER: Once<&'static dyn HeapObserver> = Once::new();

/// Installs the heap observer. Only the first call has an effect.
#[allow(
    dead_code,
    reason = "the seam the leak tracker plugs into; it has no user yet"
)]
pub fn set_observer(observer: &'static dyn HeapObserver) {
    OBSERVER.call_once(|| observer);
}

pub struct KernelHeap {
    backend: size_class::SizeClassHeap,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    backend: size_class::SizeClassHeap::new(),
};

// SAFETY: the backend hands out disjoint blocks of at least `layout.size()` bytes aligned to
// `layout.align()` (see `size_class`), and takes back only blocks it handed out.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.backend.alloc(layout);
        if !ptr.is_null()
            && let Some(observer) = OBSERVER.get()
        {
            observer.allocated(ptr, layout);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(observer) = OBSERVER.get() {
            observer.freeing(ptr, layout);
        }
        // SAFETY: the caller guarantees `ptr` came from `alloc` with this `layout`.
        unsafe { self.backend.dealloc(ptr, layout) };
    }
}

pub fn stats() -> HeapStats {
    HEAP.backend.stats()
}

crate::kernel_test!(heap_small_large_and_aligned, {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    let before = stats();
    {
        let boxed = Box::new(0x1234_5678_u64);
        crate::check_eq!(*boxed, 0x1234_5678);
        let mut v: Vec<u32> = Vec::new();
        for i in 0..10_000 {
            v.push(i);
        }
        crate::check_eq!(v.iter().map(|&x| u64::from(x)).sum::<u64>(), 49_995_000);
        let layout =
            Layout::from_size_align(100, 256).map_err(|_| crate::selftest::fail("layout"))?;
        // SAFETY: the layout has non-zero size; the block is freed with the same layout.
        let p = unsafe { alloc::alloc::alloc(layout) };
        crate::check!(!p.is_null() && (p as usize).is_multiple_of(256));
        // SAFETY: allocated above with `layout`.
        unsafe { alloc::alloc::dealloc(p, layout) };
        let big = Layout::from_size_align(3 * 4096 + 5, 16384)
            .map_err(|_| crate::selftest::fail("layout"))?;
        // SAFETY: as above.
        let q = unsafe { alloc::alloc::alloc(big) };
        crate::check!(!q.is_null() && (q as usize).is_multiple_of(16384));
        // SAFETY: allocated above with `big`.
        unsafe { alloc::alloc::dealloc(q, big) };
        crate::check!(stats().live_allocations > before.live_allocations);
    }
    let after = stats();
    crate::check_eq!(after.live_allocations, before.live_allocations);
    crate::check_eq!(after.live_bytes, before.live_bytes);
    crate::check_eq!(after.large_frames, before.large_frames);
    crate::check!(
        after.footprint() >= after.classes.iter().map(|c| c.frames * 4096).sum::<usize>()
    );
    let class_16 = after.classes[0];
    crate::check_eq!(
        class_16.free_blocks() + class_16.live_blocks,
        class_16.frames * 4096 / 16
    );
});
