//! Heap and leak reports (placeholder until the leak tracker lands: statistics only).

use core::fmt::Write;

use crate::mm::{frame_allocator, heap};

/// `/proc/meminfo`-style summary of physical memory and the heap.
pub fn write_meminfo(out: &mut dyn Write) {
    let frames = frame_allocator::stats();
    let heap = heap::stats();
    let _ = writeln!(out, "MemTotal:       {:>8} kB", frames.total * 4);
    let _ = writeln!(out, "MemFree:        {:>8} kB", frames.free * 4);
    let _ = writeln!(out, "KernelHeap:     {:>8} kB", heap.footprint() / 1024);
}

/// Heap totals and size classes.
pub fn write_heap_report(out: &mut dyn Write) {
    let heap = heap::stats();
    let _ = writeln!(
        out,
        "heap: {} live allocations, {} live bytes",
        heap.live_allocations, heap.live_bytes
    );
}

/// Leak report in kmemleak's format (`scan`: run a scan first).
pub fn write_leaks(out: &mut dyn Write, scan: bool) {
    let _ = scan;
    let _ = writeln!(
        out,
        "kmemleak: leak tracking is not available in this kernel yet"
    );
}
