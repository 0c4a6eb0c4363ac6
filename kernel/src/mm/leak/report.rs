//! The human-readable views: kmemleak's report format, `/proc/meminfo`, and the heap report.
//!
//! Each is written through `core::fmt::Write` by one function that the console, gdb's `monitor`
//! commands and (later) `/proc` and debugfs all call, so they never disagree. None of them holds
//! the heap's or the tracker's lock while writing: the figures are copied out first, so the
//! writer may allocate (a `String`, a gdb reply buffer) without deadlocking on the tracker.

use core::fmt::{self, Write};

use super::{
    CommandError, Filter, ObjectInfo, ScanStats, SiteInfo, TrackerStats, capture, task_comm,
    top_sites, tracker_stats, visit_objects,
};
use crate::arch::x86_64::{lapic, stack};
use crate::mm::heap::{self, CLASS_SIZES, HeapStats};
use crate::mm::{PAGE_SIZE, frame_allocator};

/// Writes to the kernel console, line by line with timestamps (`kprint!`).
pub struct ConsoleWriter;

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::kprint!("{s}");
        Ok(())
    }
}

/// Bytes of all registered kernel stacks.
fn kernel_stack_bytes() -> usize {
    stack::registered()
        .map(|stacks| stacks.iter().flatten().map(|s| s.top - s.bottom).sum())
        .unwrap_or(0)
}

fn kib(bytes: u64) -> u64 {
    bytes / 1024
}

/// `/proc/meminfo`: Linux's field names where the meaning matches (the kernel heap is our slab:
/// unreclaimable, so `MemAvailable` equals `MemFree`), then the heap's and tracker's own lines.
pub fn write_meminfo(out: &mut dyn Write) {
    let frames = frame_allocator::stats();
    let page = PAGE_SIZE as u64;
    let mut line = |name: &str, kb: u64| {
        let _ = writeln!(out, "{:<16}{kb:>8} kB", Label(name));
    };
    line("MemTotal", frames.total * page / 1024);
    line("MemFree", frames.free * page / 1024);
    line("MemAvailable", frames.free * page / 1024);
    // tmpfs file data is page cache that cannot be dropped (Linux counts it in both).
    let shmem = crate::fs::tmpfs::pages_in_use() * page / 1024;
    line("Buffers", 0);
    line("Cached", shmem);
    line("SwapCached", 0);
    line("SwapTotal", 0);
    line("SwapFree", 0);
    line("Shmem", shmem);
    let Some(heap) = heap::try_stats() else {
        let _ = writeln!(
            out,
            "(heap figures unavailable: the heap is locked by the stopped code)"
        );
        return;
    };
    let footprint = heap.footprint() as u64;
    line("Slab", kib(footprint));
    line("SReclaimable", 0);
    line("SUnreclaim", kib(footprint));
    line("KernelStack", kib(kernel_stack_bytes() as u64));
    line("HeapLive", kib(heap.live_bytes as u64));
    line("HeapFree", kib(heap.free_block_bytes() as u64));
    line("HeapMeta", kib(heap::frame_meta_bytes() as u64));
    let tracker = tracker_stats().map_or(0, |t| t.overhead_bytes as u64);
    line("Kmemleak", kib(tracker));
}

/// `Name:`, padded like /proc/meminfo's labels.
struct Label<'a>(&'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 24];
        let bytes = self.0.as_bytes();
        let n = bytes.len().min(text.len() - 1);
        text[..n].copy_from_slice(&bytes[..n]);
        text[n] = b':';
        f.pad(core::str::from_utf8(&text[..=n]).unwrap_or("?:"))
    }
}

fn write_classes(out: &mut dyn Write, heap: &HeapStats) {
    let frag = heap::fragmentation();
    let _ = writeln!(
        out,
        " class frames   live   free requested int-frag partial p-free  empty"
    );
    for (class, stats) in heap.classes.iter().enumerate() {
        if stats.frames == 0 {
            continue;
        }
        let f = frag[class];
        let _ = writeln!(
            out,
            "{:>6} {:>6} {:>6} {:>6} {:>9} {:>8} {:>7} {:>6} {:>6}",
            CLASS_SIZES[class],
            stats.frames,
            stats.live_blocks,
            stats.free_blocks(),
            stats.requested_bytes,
            stats.internal_fragmentation(),
            f.partial_frames,
            f.partial_free_blocks,
            f.empty_frames,
        );
    }
    let _ = writeln!(
        out,
        " large {:>6} frames, {} objects, {} bytes requested, {} bytes of rounding",
        heap.large_frames,
        heap.large_allocations,
        heap.large_requested_bytes,
        heap.large_frames * PAGE_SIZE - heap.large_requested_bytes
    );
}

/// External fragmentation: bytes of free blocks stranded in frames that also hold live blocks.
pub fn external_fragmentation() -> usize {
    heap::fragmentation()
        .iter()
        .zip(CLASS_SIZES)
        .map(|(f, size)| f.partial_free_blocks * size)
        .sum()
}

fn write_tracker_line(out: &mut dyn Write, tracker: &TrackerStats) {
    let _ = write!(out, "kmemleak: {}", tracker.state);
    if tracker.overhead_bytes > 0 {
        let _ = write!(
            out,
            "; {} objects (peak {}) of {}, {} of {} call sites, {} KiB of tables; {} scans, {} unreferenced",
            tracker.objects,
            tracker.peak,
            super::OBJECT_CAPACITY,
            tracker.sites,
            super::SITE_LIMIT,
            tracker.overhead_bytes / 1024,
            tracker.scans,
            tracker.unreferenced
        );
        if tracker.untracked > 0 {
            let _ = write!(out, ", {} untracked", tracker.untracked);
        }
    }
    let _ = writeln!(out);
}

/// gdb's `monitor heap`: totals, size classes with fragmentation, the top call sites.
pub fn write_heap_report(out: &mut dyn Write) {
    let Some(heap) = heap::try_stats() else {
        let _ = writeln!(
            out,
            "heap: locked by the stopped code; continue and try again"
        );
        return;
    };
    let _ = writeln!(
        out,
        "heap: {} live objects, {} bytes requested, {} bytes in {} frames",
        heap.live_allocations,
        heap.live_bytes,
        heap.footprint(),
        heap.footprint() / PAGE_SIZE
    );
    let _ = writeln!(
        out,
        "heap: {} allocations, {} frees, {} failed",
        heap.total_allocations, heap.total_frees, heap.failed_allocations
    );
    let _ = writeln!(
        out,
        "heap: fragmentation: {} bytes internal (rounding up), {} bytes external (free blocks in partly used frames), {} bytes free in all",
        heap.internal_fragmentation(),
        external_fragmentation(),
        heap.free_block_bytes()
    );
    write_classes(out, &heap);
    let mut sites = [SiteInfo::default(); 8];
    if let Ok(n) = top_sites(&mut sites) {
        let _ = writeln!(out, "top call sites by live bytes:");
        let _ = writeln!(out, "     bytes  objects   allocs  site");
        for site in &sites[..n] {
            let _ = writeln!(
                out,
                "{:>10} {:>8} {:>8}  {}",
                site.live_bytes,
                site.live_count,
                site.allocs,
                capture::OneLine {
                    frames: site.caller(),
                    max: 3
                }
            );
        }
    }
    match tracker_stats() {
        Some(tracker) => write_tracker_line(out, &tracker),
        None => {
            let _ = writeln!(out, "kmemleak: locked by the stopped code");
        }
    }
}

/// One object in kmemleak's format; `header` is `unreferenced object` or `object`.
pub fn write_object(out: &mut dyn Write, header: &str, info: &ObjectInfo) {
    let now = crate::time::ticks() as u32;
    let age_ms = u64::from(now.wrapping_sub(info.jiffies)) * 1000 / lapic::TICK_HZ;
    let _ = writeln!(out, "{header} {:#x} (size {}):", info.addr, info.size);
    let _ = writeln!(
        out,
        "  comm \"{}\", pid {}, jiffies {} (age {}.{:03}s)",
        task_comm(info.pid).as_str(),
        info.pid,
        info.jiffies,
        age_ms / 1000,
        age_ms % 1000
    );
    let _ = writeln!(out, "  hex dump (first {} bytes):", info.head_len);
    for row in info.head[..info.head_len].chunks(16) {
        let _ = out.write_str("   ");
        for byte in row {
            let _ = write!(out, " {byte:02x}");
        }
        for _ in row.len()..16 {
            let _ = out.write_str("   ");
        }
        let _ = out.write_str("  ");
        for &byte in row {
            let c = if byte.is_ascii_graphic() || byte == b' ' {
                byte as char
            } else {
                '.'
            };
            let _ = out.write_char(c);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "  backtrace:");
    for &address in info.caller() {
        let _ = write!(out, "    [<{address:016x}>] ");
        let _ = capture::write_frame(out, address);
        let _ = writeln!(out);
    }
}

/// After a scan: the summary, and Linux's dmesg line when something new turned up.
pub fn write_scan_summary(out: &mut dyn Write, stats: &ScanStats) {
    let _ = writeln!(
        out,
        "kmemleak: scanned {} objects, {} KiB of roots and {} KiB of objects in {} us: {} unreferenced",
        stats.objects,
        stats.root_bytes / 1024,
        stats.object_bytes / 1024,
        stats.duration_ns / 1000,
        stats.unreferenced
    );
    if stats.new > 0 {
        let _ = writeln!(
            out,
            "kmemleak: {} new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            stats.new
        );
    }
}

/// gdb's `monitor leaks` and the kmemleak file: with `scan`, scan first (and say what it found);
/// then every object the last scan found unreferenced, in kmemleak's format.
pub fn write_leaks(out: &mut dyn Write, scan: bool) {
    if scan && let Err(error) = super::command("scan", out) {
        let _ = writeln!(out, "kmemleak: {error}");
        return;
    }
    if let Err(error) = visit_objects(Filter::Unreferenced, usize::MAX, |info| {
        write_object(out, "unreferenced object", info)
    }) && !scan
    {
        let _ = writeln!(out, "kmemleak: {error}");
    }
}

/// `since-mark`: what was allocated after the mark and is still live.
pub fn write_since(out: &mut dyn Write, mark: u64) -> Result<(), CommandError> {
    const SHOWN: usize = 32;
    let (mut count, mut bytes) = (0u64, 0u64);
    visit_objects(Filter::Since(mark), usize::MAX, |info| {
        if count < SHOWN as u64 {
            write_object(out, "object", info);
        }
        count += 1;
        bytes += info.size;
    })?;
    if count > SHOWN as u64 {
        let _ = writeln!(out, "({} more not shown)", count - SHOWN as u64);
    }
    let _ = writeln!(
        out,
        "kmemleak: {count} objects ({bytes} bytes) allocated after mark #{mark} are still live"
    );
    Ok(())
}

/// `dump=`: one object, with its flags.
pub fn write_dump(out: &mut dyn Write, index: usize) -> Result<(), CommandError> {
    visit_objects(Filter::Index(index), 1, |info| {
        write_object(out, "object", info);
        let _ = writeln!(
            out,
            "  seq {}, align {}, {}",
            info.seq,
            info.align,
            if info.flags & super::tables::IGNORED != 0 {
                "ignored (never reported)"
            } else if info.is_unreferenced() {
                "unreferenced at the last scan"
            } else {
                "referenced (or not scanned yet)"
            }
        );
    })?;
    Ok(())
}
