//! The snapshot writer: format v1 of docs/telemetry.md.
//!
//! One record per line, `kind key=value ...`, between `telemetry-begin` and `telemetry-end`
//! lines that carry the version and the sequence number; strings are double-quoted with `\"`,
//! `\\` and `\xNN` escapes. Every figure is gathered before the first byte is written (the
//! writer may be slow or may allocate), and nothing here allocates.

use core::fmt::{self, Write};

use crate::arch::x86_64::lapic;
use crate::debug::kallsyms::{self, Symbolic};
use crate::mm::heap::{self, CLASS_SIZES};
use crate::mm::leak::{self, Filter, ObjectInfo, SiteInfo};
use crate::mm::{PAGE_SIZE, frame_allocator};
use crate::task::Pid;
use crate::task::info::ProcessInfo;

pub const VERSION: u32 = 1;
/// Call sites listed, by live bytes.
const TOP_SITES: usize = 10;
/// Unreferenced objects listed (the `leaks` record's `total` says how many there are).
const MAX_LEAKS: usize = 16;
/// Processes listed (the `tasks` record's `total` says how many there are).
const MAX_TASKS: usize = 64;

/// Counts the lines written through it.
struct Counting<'a> {
    out: &'a mut dyn Write,
    lines: u64,
}

impl Write for Counting<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.lines += s.bytes().filter(|&b| b == b'\n').count() as u64;
        self.out.write_str(s)
    }
}

/// Escapes the inside of a quoted value.
struct Escaped<'a>(&'a mut dyn Write);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                c if c.is_control() => write!(self.0, "\\x{:02x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// ` ret0=0x… sym0="kernel::foo+0x1/0x2" ret1=…` (`sym` is `?` without a symbol).
fn write_frames(out: &mut dyn Write, frames: &[u64]) -> fmt::Result {
    for (i, &address) in frames.iter().enumerate() {
        write!(out, " ret{i}={address:#x} sym{i}=\"")?;
        if kallsyms::lookup(address.wrapping_sub(1)).is_some() {
            write!(
                Escaped(out),
                "{}",
                Symbolic {
                    address,
                    return_address: true
                }
            )?;
        } else {
            out.write_str("?")?;
        }
        out.write_str("\"")?;
    }
    Ok(())
}

/// Writes one snapshot with sequence number `seq`; with `detail`, that process's memory map and
/// kernel stack follow the task list.
pub fn write_snapshot(out: &mut dyn Write, seq: u64, detail: Option<Pid>) -> fmt::Result {
    let uptime_ns = crate::time::now_ns();
    let jiffies = crate::time::ticks();
    let frames = frame_allocator::stats();
    let heap = heap::stats();
    let frag = heap::fragmentation();
    let external: usize = frag
        .iter()
        .zip(CLASS_SIZES)
        .map(|(f, size)| f.partial_free_blocks * size)
        .sum();
    let tracker = leak::tracker_stats();
    let mut sites = [SiteInfo::default(); TOP_SITES];
    let site_count = leak::top_sites(&mut sites).unwrap_or(0);
    let mut leaks = [ObjectInfo::default(); MAX_LEAKS];
    let mut leak_count = 0;
    let _ = leak::visit_objects(Filter::Unreferenced, MAX_LEAKS, |info| {
        leaks[leak_count] = *info;
        leak_count += 1;
    });
    let mut tasks: [Option<ProcessInfo>; MAX_TASKS] = [None; MAX_TASKS];
    let (mut task_count, mut task_total) = (0, 0);
    // Never waits for a lock: this runs in the telemetry interrupt.
    crate::task::info::for_each(|process| {
        task_total += 1;
        if task_count < MAX_TASKS {
            tasks[task_count] = Some(*process);
            task_count += 1;
        }
    });

    writeln!(out, "telemetry-begin version={VERSION} seq={seq}")?;
    let mut w = Counting { out, lines: 0 };
    writeln!(
        w,
        "uptime ns={uptime_ns} jiffies={jiffies} hz={}",
        lapic::TICK_HZ
    )?;
    let tracker_frames = tracker.map_or(0, |t| t.overhead_bytes) / PAGE_SIZE;
    writeln!(
        w,
        "frames total={} free={} used={} kernel={} heap={} heap_meta={} tracker={}",
        frames.total,
        frames.free,
        frames.used(),
        frames.kernel,
        heap.footprint() / PAGE_SIZE,
        heap::frame_meta_bytes() / PAGE_SIZE,
        tracker_frames
    )?;
    writeln!(
        w,
        "heap objects={} bytes={} footprint={} free_bytes={} internal_frag={} external_frag={external} allocs={} frees={} failed={} large_objects={} large_frames={} large_bytes={}",
        heap.live_allocations,
        heap.live_bytes,
        heap.footprint(),
        heap.free_block_bytes(),
        heap.internal_fragmentation(),
        heap.total_allocations,
        heap.total_frees,
        heap.failed_allocations,
        heap.large_allocations,
        heap.large_frames,
        heap.large_requested_bytes
    )?;
    writeln!(w, "classes count={}", heap.classes.len())?;
    for (class, f) in heap.classes.iter().zip(frag) {
        writeln!(
            w,
            "class size={} frames={} live={} free={} requested={} partial_frames={} partial_free={} empty_frames={} full_frames={}",
            class.block_size,
            class.frames,
            class.live_blocks,
            class.free_blocks(),
            class.requested_bytes,
            f.partial_frames,
            f.partial_free_blocks,
            f.empty_frames,
            f.full_frames
        )?;
    }

    match tracker {
        Some(t) => {
            write!(w, "tracker state={}", t.state.name())?;
            if let Some(reason) = t.state.reason() {
                write!(w, " reason={reason}")?;
            }
            writeln!(
                w,
                " objects={} peak={} capacity={} bytes={} sites={} site_capacity={} overhead={} seq={} mark={} scans={} unreferenced={} untracked={} allocs={} frees={}",
                t.objects,
                t.peak,
                leak::OBJECT_CAPACITY,
                t.live_bytes,
                t.sites,
                leak::SITE_LIMIT,
                t.overhead_bytes,
                t.seq,
                t.mark,
                t.scans,
                t.unreferenced,
                t.untracked,
                t.allocs,
                t.frees
            )?;
            if let Some(scan) = t.last_scan {
                writeln!(
                    w,
                    "scan at_ns={} objects={} unreferenced={} new={} root_bytes={} object_bytes={} duration_ns={}",
                    scan.at_ns,
                    scan.objects,
                    scan.unreferenced,
                    scan.new,
                    scan.root_bytes,
                    scan.object_bytes,
                    scan.duration_ns
                )?;
            }
        }
        None => writeln!(
            w,
            "tracker state=off reason=busy objects=0 peak=0 capacity={} bytes=0 sites=0 site_capacity={} overhead=0 seq=0 mark=0 scans=0 unreferenced=0 untracked=0 allocs=0 frees=0",
            leak::OBJECT_CAPACITY,
            leak::SITE_LIMIT
        )?,
    }

    writeln!(w, "sites count={site_count}")?;
    for site in &sites[..site_count] {
        write!(
            w,
            "site id={} objects={} bytes={} allocs={}",
            site.id, site.live_count, site.live_bytes, site.allocs
        )?;
        write_frames(&mut w, site.caller())?;
        writeln!(w)?;
    }

    let total = tracker.map_or(0, |t| t.unreferenced).max(leak_count);
    writeln!(w, "leaks count={leak_count} total={total}")?;
    let now = jiffies as u32;
    for info in &leaks[..leak_count] {
        let age_ms = u64::from(now.wrapping_sub(info.jiffies)) * 1000 / lapic::TICK_HZ;
        write!(
            w,
            "leak addr={:#x} size={} seq={} pid={} comm=\"",
            info.addr, info.size, info.seq, info.pid
        )?;
        Escaped(&mut w).write_str(leak::task_comm(info.pid).as_str())?;
        write!(
            w,
            "\" jiffies={} age_ms={age_ms} site={}",
            info.jiffies, info.site
        )?;
        write_frames(&mut w, info.caller())?;
        writeln!(w)?;
    }

    writeln!(w, "tasks count={task_count} total={task_total}")?;
    for task in tasks[..task_count].iter().flatten() {
        write!(
            w,
            "task pid={} ppid={} state={} comm=\"",
            task.pid,
            task.ppid,
            task.state.letter()
        )?;
        Escaped(&mut w).write_str(task.comm.as_str())?;
        write!(w, "\" cpu_ms={}", task.cpu_ns / 1_000_000)?;
        if let Some(memory) = task.memory {
            let kib = |bytes: u64| bytes / 1024;
            write!(
                w,
                " rss_kib={} vsz_kib={} image_kib={} heap_kib={} stack_kib={} anon_kib={}",
                kib(memory.total().resident),
                kib(memory.total().size),
                // Program text and shared libraries together (the protocol has no file field).
                kib(memory.image.resident + memory.file.resident),
                kib(memory.heap.resident),
                kib(memory.stack.resident),
                kib(memory.anonymous.resident)
            )?;
        }
        writeln!(w)?;
    }
    if let Some(pid) = detail {
        write_detail(&mut w, pid)?;
    }
    let records = w.lines;
    writeln!(out, "telemetry-end seq={seq} records={records}")
}

/// Regions listed in a `detail` answer.
const MAX_MAPS: usize = 64;

/// `detail pid state where maps [ret0 sym0 ...]` then `maps` `map` records: one process's
/// memory map and where it is in the kernel (its saved context's backtrace when it is not the
/// one running). Reads only what it can without waiting for a lock.
fn write_detail(w: &mut dyn Write, pid: Pid) -> fmt::Result {
    let Some(info) = crate::task::info::get(pid) else {
        return writeln!(w, "detail pid={pid} state=gone where=gone maps=0");
    };
    let resources = crate::task::info::resources(pid);
    let space = resources.as_ref().and_then(|r| r.space.try_lock());
    let maps = space
        .as_ref()
        .map_or(0, |s| s.regions().len().min(MAX_MAPS));
    let stack = crate::task::info::kernel_backtrace(pid);
    let place = match (&stack, crate::task::current_pid()) {
        (Some(_), _) => "sleeping",
        (None, Some(current)) if current == pid => "running",
        _ => "unknown",
    };
    write!(
        w,
        "detail pid={pid} state={} where={place} maps={maps}",
        info.state.letter()
    )?;
    if let Some(stack) = &stack {
        write_frames(w, stack.frames())?;
    }
    writeln!(w)?;
    if let Some(space) = &space {
        for region in space.regions().iter().take(MAX_MAPS) {
            write!(
                w,
                "map start={:#x} end={:#x} perms=r{}{}p name=\"",
                region.start,
                region.end,
                if region.protection.write { 'w' } else { '-' },
                if region.protection.execute { 'x' } else { '-' },
            )?;
            Escaped(&mut *w).write_str(region.name(info.comm.as_str()))?;
            writeln!(w, "\"")?;
        }
    }
    Ok(())
}

crate::kernel_test!(telemetry_snapshot_is_well_formed, {
    let mut text = alloc::string::String::new();
    let seq = super::next_sequence();
    write_snapshot(&mut text, seq, Some(1)).map_err(|_| crate::selftest::fail("write"))?;
    let lines: alloc::vec::Vec<&str> = text.lines().collect();
    crate::check_eq!(
        lines.first().copied(),
        Some(alloc::format!("telemetry-begin version=1 seq={seq}").as_str())
    );
    let records = lines.len() - 2;
    crate::check_eq!(
        lines.last().copied(),
        Some(alloc::format!("telemetry-end seq={seq} records={records}").as_str())
    );
    for kind in [
        "uptime ",
        "frames ",
        "heap ",
        "classes count=8",
        "tracker ",
        "sites count=",
        "leaks count=",
        "tasks count=",
        // No processes run during self-tests.
        "detail pid=1 state=gone where=gone maps=0",
    ] {
        crate::check!(
            lines.iter().any(|l| l.starts_with(kind)),
            alloc::format!("a {kind:?} record")
        );
    }
    crate::check_eq!(lines.iter().filter(|l| l.starts_with("class ")).count(), 8);
    crate::check!(super::next_sequence() > seq);
    let mut escaped = alloc::string::String::new();
    Escaped(&mut escaped)
        .write_str("a\"b\\c\n")
        .map_err(|_| crate::selftest::fail("escape"))?;
    crate::check_eq!(escaped.as_str(), "a\\\"b\\\\c\\x0a");
});
