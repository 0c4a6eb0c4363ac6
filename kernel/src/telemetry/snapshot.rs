//! The snapshot writer: gathers the kernel's figures and hands them to the format's encoder.
//!
//! The format itself — record kinds, field names and order, quoting, the markers and the record
//! count — is `cadenza_abi::telemetry` (docs/telemetry.md), the same code the host decodes with
//! and round-trip tests check. This file only says where each figure comes from. Every figure is
//! gathered before the first byte is written (the writer may be slow or may allocate), and
//! nothing here allocates.

use core::fmt::{self, Display, Write};

use cadenza_abi::telemetry::{
    DetailRecord, FrameWriter, Frames, Heap, LeakRecord, MapRecord, Place, Scan, SiteRecord,
    SizeClass, SnapshotWriter, StackFrames, TaskMemory, TaskRecord, TrackerRecord, Uptime,
};

use crate::arch::x86_64::lapic;
use crate::debug::kallsyms::{self, Symbolic};
use crate::mm::heap::{self, CLASS_SIZES};
use crate::mm::leak::{self, Filter, ObjectInfo, SiteInfo};
use crate::mm::{PAGE_SIZE, frame_allocator};
use crate::task::Pid;
use crate::task::info::ProcessInfo;

/// Call sites listed, by live bytes.
const TOP_SITES: usize = 10;
/// Unreferenced objects listed (the `leaks` record's `total` says how many there are).
const MAX_LEAKS: usize = 16;
/// Processes listed (the `tasks` record's `total` says how many there are).
const MAX_TASKS: usize = 64;

/// A stack of raw return addresses, named from kallsyms as the encoder writes them
/// (`?` without a symbol).
struct KernelStack<'a>(&'a [u64]);

impl StackFrames for KernelStack<'_> {
    fn write_frames(&self, out: &mut FrameWriter<'_>) -> fmt::Result {
        for &address in self.0 {
            let symbol = Symbolic {
                address,
                return_address: true,
            };
            let known = kallsyms::lookup(address.wrapping_sub(1)).is_some();
            out.frame(address, known.then_some(&symbol as &dyn Display))?;
        }
        Ok(())
    }
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

    let mut w = SnapshotWriter::begin(out, seq)?;
    w.uptime(&Uptime {
        ns: uptime_ns,
        jiffies,
        hz: lapic::TICK_HZ,
    })?;
    let page = PAGE_SIZE as u64;
    let tracker_frames = tracker.map_or(0, |t| t.overhead_bytes as u64) / page;
    w.frames(&Frames {
        total: frames.total,
        free: frames.free,
        used: frames.used(),
        kernel: frames.kernel,
        heap: heap.footprint() as u64 / page,
        heap_meta: heap::frame_meta_bytes() as u64 / page,
        tracker: tracker_frames,
    })?;
    w.heap(&Heap {
        objects: heap.live_allocations as u64,
        bytes: heap.live_bytes as u64,
        footprint: heap.footprint() as u64,
        free_bytes: heap.free_block_bytes() as u64,
        internal_frag: heap.internal_fragmentation() as u64,
        external_frag: external as u64,
        allocs: heap.total_allocations,
        frees: heap.total_frees,
        failed: heap.failed_allocations,
        large_objects: heap.large_allocations as u64,
        large_frames: heap.large_frames as u64,
        large_bytes: heap.large_requested_bytes as u64,
    })?;
    w.classes(heap.classes.len())?;
    for (class, f) in heap.classes.iter().zip(frag) {
        w.class(&SizeClass {
            size: class.block_size as u64,
            frames: class.frames as u64,
            live: class.live_blocks as u64,
            free: class.free_blocks() as u64,
            requested: class.requested_bytes as u64,
            partial_frames: f.partial_frames as u64,
            partial_free: f.partial_free_blocks as u64,
            empty_frames: f.empty_frames as u64,
            full_frames: f.full_frames as u64,
        })?;
    }

    let capacity = leak::OBJECT_CAPACITY as u64;
    let site_capacity = leak::SITE_LIMIT as u64;
    match tracker {
        Some(t) => {
            w.tracker(&TrackerRecord {
                state: t.state.name(),
                reason: t.state.reason(),
                objects: t.objects as u64,
                peak: t.peak as u64,
                capacity,
                bytes: t.live_bytes,
                sites: t.sites as u64,
                site_capacity,
                overhead: t.overhead_bytes as u64,
                seq: t.seq,
                mark: t.mark,
                scans: t.scans,
                unreferenced: t.unreferenced as u64,
                untracked: t.untracked as u64,
                allocs: t.allocs,
                frees: t.frees,
            })?;
            if let Some(scan) = t.last_scan {
                w.scan(&Scan {
                    at_ns: scan.at_ns,
                    objects: scan.objects as u64,
                    unreferenced: scan.unreferenced as u64,
                    new: scan.new as u64,
                    root_bytes: scan.root_bytes,
                    object_bytes: scan.object_bytes,
                    duration_ns: scan.duration_ns,
                })?;
            }
        }
        None => w.tracker(&TrackerRecord {
            state: "off",
            reason: Some("busy"),
            capacity,
            site_capacity,
            ..TrackerRecord::default()
        })?,
    }

    w.sites(site_count)?;
    for site in &sites[..site_count] {
        w.site(&SiteRecord {
            id: site.id,
            objects: site.live_count as u64,
            bytes: site.live_bytes,
            allocs: site.allocs,
            frames: &KernelStack(site.caller()),
        })?;
    }

    let total = tracker.map_or(0, |t| t.unreferenced).max(leak_count);
    w.leaks(leak_count, total as u64)?;
    let now = jiffies as u32;
    for info in &leaks[..leak_count] {
        let age_ms = u64::from(now.wrapping_sub(info.jiffies)) * 1000 / lapic::TICK_HZ;
        w.leak(&LeakRecord {
            address: info.addr,
            size: info.size,
            seq: info.seq,
            pid: info.pid,
            comm: leak::task_comm(info.pid).as_str(),
            jiffies: u64::from(info.jiffies),
            age_ms,
            site: info.site,
            frames: &KernelStack(info.caller()),
        })?;
    }

    w.tasks(task_count, task_total)?;
    for task in tasks[..task_count].iter().flatten() {
        let mut letter = [0u8; 4];
        let kib = |bytes: u64| bytes / 1024;
        w.task(&TaskRecord {
            pid: task.pid,
            ppid: task.ppid,
            state: task.state.letter().encode_utf8(&mut letter),
            comm: task.comm.as_str(),
            cpu_ms: Some(task.cpu_ns / 1_000_000),
            rss_kib: task.memory.map(|m| kib(m.total().resident)),
            memory: task.memory.map(|m| TaskMemory {
                vsz_kib: kib(m.total().size),
                // Program text and shared libraries together (the protocol has no file field).
                image_kib: kib(m.image.resident + m.file.resident),
                heap_kib: kib(m.heap.resident),
                stack_kib: kib(m.stack.resident),
                anon_kib: kib(m.anonymous.resident),
            }),
            extra: &[],
        })?;
    }
    if let Some(pid) = detail {
        write_detail(&mut w, pid)?;
    }
    w.end()
}

/// Regions listed in a `detail` answer.
const MAX_MAPS: usize = 64;

/// `detail pid state where maps [ret0 sym0 ...]` then `maps` `map` records: one process's
/// memory map and where it is in the kernel (its saved context's backtrace when it is not the
/// one running). Reads only what it can without waiting for a lock.
fn write_detail(w: &mut SnapshotWriter<'_>, pid: Pid) -> fmt::Result {
    let Some(info) = crate::task::info::get(pid) else {
        return w.detail(&DetailRecord {
            pid,
            state: "gone",
            place: Place::Gone,
            maps: 0,
            frames: &(),
        });
    };
    let resources = crate::task::info::resources(pid);
    let space = resources.as_ref().and_then(|r| r.space.try_lock());
    let maps = space
        .as_ref()
        .map_or(0, |s| s.regions().len().min(MAX_MAPS));
    let stack = crate::task::info::kernel_backtrace(pid);
    let place = match (&stack, crate::task::current_pid()) {
        (Some(_), _) => Place::Sleeping,
        (None, Some(current)) if current == pid => Place::Running,
        _ => Place::Unknown,
    };
    let mut letter = [0u8; 4];
    w.detail(&DetailRecord {
        pid,
        state: info.state.letter().encode_utf8(&mut letter),
        place,
        maps,
        frames: &KernelStack(stack.as_ref().map_or(&[], |s| s.frames())),
    })?;
    if let Some(space) = &space {
        for region in space.regions().iter().take(MAX_MAPS) {
            let perms = [
                b'r',
                if region.protection.write { b'w' } else { b'-' },
                if region.protection.execute {
                    b'x'
                } else {
                    b'-'
                },
                b'p',
            ];
            w.map(&MapRecord {
                start: region.start,
                end: region.end,
                perms: core::str::from_utf8(&perms).unwrap_or("----"),
                name: region.name(info.comm.as_str()),
            })?;
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
    // The host's decoder reads it back (the format's own tests live in `cadenza-abi`).
    let parsed = cadenza_abi::telemetry::Snapshot::parse(&text)
        .map_err(|_| crate::selftest::fail("the snapshot does not parse"))?;
    crate::check_eq!(parsed.seq, seq);
    crate::check_eq!(parsed.classes.len(), 8);
});
