//! The kernel heap: the `#[global_allocator]` and the seam where allocation tracking plugs in.
//!
//! `KernelHeap` owns policy-free plumbing: it forwards to a backend (`size_class::SizeClassHeap`
//! today) and reports every successful allocation and every free to its `HeapObserver`. The
//! leak tracker (`mm::leak`) is that observer; keeping it out of the allocator means the tracker
//! can be switched off at boot (`kmemleak=off`) and measured (`bench=heap`, see
//! docs/performance.md), and the backend can change without touching it. The observer is a type
//! parameter rather than a `dyn` object set at run time: it is called twice per allocation, and
//! static dispatch lets its "am I on?" test and its fast path be inlined into the allocator (under
//! TCG each call and return through a pointer costs a translation-block lookup).
//!
//! The backend call and the observer call run in one interrupts-off section, inside which both
//! take plain spinlocks: an interrupt handler never sees a block that the backend handed out but
//! the observer has not recorded yet (or the reverse on free), and tracking adds no
//! interrupt-flag round trip of its own (under TCG reading RFLAGS is a helper call, and `sti`
//! ends a translation block).
//!
//! Fallible and infallible allocations share this allocator, and `GlobalAlloc` cannot tell them
//! apart, so the fallible kit (`mm::fallible`) says so: it sets `FALLIBLE` (with interrupts
//! masked, so no interrupt handler's allocation can be mistaken for its) around its
//! `try_reserve`. An allocation made under the marker may be failed by `failslab`, and grows the
//! heap with `Urgency::User` frames (it must leave the reserve alone: failing it costs a system
//! call an `ENOMEM`, not the kernel a panic); every other allocation grows with
//! `Urgency::Reserve` and may use the last frames.

pub mod bench;
pub mod size_class;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::x86_64::cpu;
pub use size_class::{CLASS_SIZES, HeapStats, block_containing, fragmentation};

/// Sees every allocation and free of the kernel heap.
///
/// Called with the heap's lock released and interrupts masked (an observer may rely on that and
/// use plain spinlocks); it must not allocate from the kernel heap itself.
pub trait HeapObserver: Sync {
    fn allocated(&self, ptr: *mut u8, layout: Layout);
    /// Called before the block is returned to the backend, so the observer can still inspect it
    /// (and refuse a double free by panicking with both call sites).
    fn freeing(&self, ptr: *mut u8, layout: Layout);
}

/// The observer wired into the global allocator: the leak tracker.
type Observer = crate::mm::leak::Observer;

/// Sets up the heap's frame descriptors (see `size_class`) for every frame the frame allocator
/// can hand out. Call once the frame allocator runs and before the first allocation; without
/// descriptors the heap still works, but cannot find blocks by address (no leak scan) or
/// measure external fragmentation.
pub fn init() {
    let end = crate::mm::usable_end().unwrap_or(0);
    if size_class::init_frame_meta(end).is_none() {
        crate::kprintln!("heap: no frames for the frame descriptors; leak scans will find nothing");
    }
}

/// Bytes of frames the frame descriptors take.
pub fn frame_meta_bytes() -> usize {
    size_class::meta_table_bytes()
}

/// Set by `mm::fallible` (interrupts masked) while it makes an allocation whose failure its
/// caller handles. One CPU: one flag.
static FALLIBLE: AtomicBool = AtomicBool::new(false);

/// Runs `f` (which should make one fallible allocation, e.g. a `try_reserve`) with the
/// fallible marker set and interrupts masked.
pub(crate) fn fallibly<R>(f: impl FnOnce() -> R) -> R {
    let _masked = InterruptsOff::new();
    let outer = FALLIBLE.swap(true, Ordering::Relaxed);
    let result = f();
    FALLIBLE.store(outer, Ordering::Relaxed);
    result
}

/// Masks interrupts until dropped, restoring the previous state.
pub(crate) struct InterruptsOff {
    were_enabled: bool,
}

impl InterruptsOff {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        let were_enabled = cpu::interrupts_enabled();
        if were_enabled {
            cpu::disable_interrupts();
        }
        Self { were_enabled }
    }
}

impl Drop for InterruptsOff {
    #[inline(always)]
    fn drop(&mut self) {
        if self.were_enabled {
            cpu::enable_interrupts();
        }
    }
}

pub struct KernelHeap<O: HeapObserver> {
    backend: size_class::SizeClassHeap,
    observer: O,
}

#[global_allocator]
static HEAP: KernelHeap<Observer> = KernelHeap {
    backend: size_class::SizeClassHeap::new(),
    observer: crate::mm::leak::Observer,
};

// SAFETY: the backend hands out disjoint blocks of at least `layout.size()` bytes aligned to
// `layout.align()` (see `size_class`), and takes back only blocks it handed out.
unsafe impl<O: HeapObserver> GlobalAlloc for KernelHeap<O> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _masked = InterruptsOff::new();
        let urgency = if FALLIBLE.load(Ordering::Relaxed) {
            // The report `should_fail` may print must not count as fallible allocations.
            FALLIBLE.store(false, Ordering::Relaxed);
            let fail = crate::mm::fault_inject::FAILSLAB.should_fail(layout.size());
            FALLIBLE.store(true, Ordering::Relaxed);
            if fail {
                self.backend.count_failure();
                return core::ptr::null_mut();
            }
            crate::mm::frame_allocator::Urgency::User
        } else {
            crate::mm::frame_allocator::Urgency::Reserve
        };
        let ptr = self.backend.alloc_masked(layout, urgency);
        if !ptr.is_null() {
            self.observer.allocated(ptr, layout);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _masked = InterruptsOff::new();
        self.observer.freeing(ptr, layout);
        // SAFETY: the caller guarantees `ptr` came from `alloc` with this `layout`; the observer
        // panics instead of returning if it knows better.
        unsafe { self.backend.dealloc_masked(ptr, layout) };
    }
}

pub fn stats() -> HeapStats {
    HEAP.backend.stats()
}

/// `stats` without waiting for the heap's lock (for the debugger and reports).
pub fn try_stats() -> Option<HeapStats> {
    HEAP.backend.try_stats()
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

crate::kernel_test!(heap_counts_requested_bytes_per_class, {
    use alloc::boxed::Box;
    let before = stats();
    let boxed = Box::new([1u8; 40]); // class 64: 24 bytes of rounding
    let during = stats();
    crate::check_eq!(
        during.classes[2].requested_bytes,
        before.classes[2].requested_bytes + 40
    );
    crate::check_eq!(
        during.internal_fragmentation(),
        before.internal_fragmentation() + 24
    );
    drop(boxed);
    crate::check_eq!(stats().classes[2], before.classes[2]);
    crate::check!(try_stats().is_some(), "the heap lock is free between calls");
});
