//! The physical frame allocator: one bit per 4 KiB frame.
//!
//! A bitmap costs 32 KiB per GiB, answers "is this frame free?" in O(1) (which catches double
//! frees), and makes contiguous runs easy for large heap blocks. A rotating hint keeps single-frame
//! allocation fast. Statistics are exact counters because /proc/meminfo, the gdb `monitor meminfo`
//! command and the TUI all read them.
//!
//! # Watermarks: the kernel's reserve
//!
//! User pages and the kernel heap come from this one allocator, so without a reserve a process
//! that touches all of memory leaves the kernel nothing for the next page table or system-call
//! buffer. As Linux's zone watermarks, every request says how urgent it is (`Urgency`):
//!
//! - `User` (user pages: anonymous faults, copy-on-write copies, file pages copied in, `brk` and
//!   `mmap` population; and heap growth for *fallible* heap allocations) is served only while
//!   more than the `low` watermark stays free. When it fails, the caller runs the OOM killer
//!   (`mm::oom`) and retries, or returns `ENOMEM` from a system call.
//! - `Kernel` (page tables, kernel stacks, the leak tracker's tables: callers that handle
//!   failure) may dip below `low`, down to the `min` watermark.
//! - `Reserve` (heap growth for the kernel's infallible allocations: an `Arc<Task>`, an inode,
//!   a descriptor — small objects whose number the resource limits bound) may take the last
//!   frames. It is what the reserve exists for.
//!
//! `min` follows Linux's `min_free_kbytes` (`sqrt(16 * RAM in KiB)`, 128 KiB to 64 MiB), `low`
//! is `min * 5 / 4` as Linux's. Both are in `/proc/meminfo`'s spirit readable through `stats`.
//!
//! Fault injection (`fail_page_alloc=`, `mm::fault_inject`) makes `User` and `Kernel` requests
//! fail on purpose; `Reserve` requests are exempt, as Linux exempts `__GFP_NOFAIL`.

use crate::boot::{MemoryMap, RegionKind};
use crate::mm::{PAGE_SIZE, align_down, align_up, phys_to_virt};
use crate::sync::IrqSpinLock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames of usable RAM handed to the allocator.
    pub total: u64,
    pub free: u64,
    /// Frames of RAM the kernel claimed at boot (image, initrd, bitmap).
    pub kernel: u64,
    /// Free frames below which `Kernel` requests fail (only `Reserve` ones go on).
    pub min_watermark: u64,
    /// Free frames below which `User` requests fail (the OOM killer's trigger).
    pub low_watermark: u64,
}

/// How far into the reserve a frame request may go (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// User pages and fallible heap growth: leave `low_watermark` frames free.
    User,
    /// Kernel structures whose callers handle failure: leave `min_watermark` free.
    Kernel,
    /// Infallible kernel heap growth: may take the last frame; never fails on purpose.
    Reserve,
}

/// Linux's `min_free_kbytes` rule: `sqrt(16 * KiB of RAM)`, clamped to 128 KiB..64 MiB; in
/// frames.
fn min_watermark_for(total_frames: u64) -> u64 {
    let kib = total_frames * (PAGE_SIZE as u64 / 1024);
    let min_kib = (kib * 16).isqrt().clamp(128, 65536);
    min_kib / (PAGE_SIZE as u64 / 1024)
}

impl FrameStats {
    pub fn used(&self) -> u64 {
        self.total - self.free
    }
}

struct FrameAllocator {
    /// Bit set = frame in use (or not RAM).
    bitmap: &'static mut [u64],
    frames: usize,
    hint: usize,
    stats: FrameStats,
}

static ALLOCATOR: IrqSpinLock<Option<FrameAllocator>> = IrqSpinLock::new(None);

/// Where the frame allocator could not start.
#[derive(Debug)]
pub enum InitError {
    NoRoomForBitmap { bytes: u64 },
}

/// Takes over all usable RAM in `map`. The bitmap itself is carved from the map (marked
/// `Kernel`), and must land below `reachable_limit` — the part of physical memory the boot page
/// tables map.
pub fn init(map: &mut MemoryMap, reachable_limit: u64) -> Result<FrameStats, InitError> {
    let top = map.usable().map(|r| r.end).max().unwrap_or(0);
    let frames = (top / PAGE_SIZE as u64) as usize;
    let words = frames.div_ceil(64);
    let bytes = align_up((words * 8) as u64, PAGE_SIZE as u64);
    let place = map
        .usable()
        .map(|r| (align_up(r.start.max(0x100000), PAGE_SIZE as u64), r.end))
        .find(|&(start, end)| start + bytes <= end && start + bytes <= reachable_limit)
        .map(|(start, _)| start)
        .ok_or(InitError::NoRoomForBitmap { bytes })?;
    map.reserve(place, place + bytes, RegionKind::Kernel);

    // SAFETY: `[place, place + bytes)` is usable RAM below `reachable_limit`, so it is mapped
    // through the direct map, and it was just removed from the usable map so nothing else owns it.
    let bitmap = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(place) as *mut u64, words) };
    bitmap.fill(u64::MAX);

    let mut allocator = FrameAllocator {
        bitmap,
        frames,
        hint: 0,
        stats: FrameStats::default(),
    };
    for region in map.regions() {
        let first = align_up(region.start, PAGE_SIZE as u64) / PAGE_SIZE as u64;
        let last = align_down(region.end, PAGE_SIZE as u64) / PAGE_SIZE as u64;
        let count = last.saturating_sub(first);
        match region.kind {
            RegionKind::Usable => {
                for frame in first..last {
                    allocator.set_free(frame as usize);
                }
                allocator.stats.total += count;
                allocator.stats.free += count;
            }
            RegionKind::Kernel | RegionKind::Initrd => {
                allocator.stats.total += count;
                allocator.stats.kernel += count;
            }
            _ => {}
        }
    }
    // Frame 0 stays reserved so that a physical address of 0 can never be a valid allocation.
    if allocator.is_free(0) {
        allocator.set_used(0);
        allocator.stats.free -= 1;
        allocator.stats.kernel += 1;
    }
    allocator.stats.min_watermark = min_watermark_for(allocator.stats.total);
    allocator.stats.low_watermark = allocator.stats.min_watermark * 5 / 4;
    let stats = allocator.stats;
    *ALLOCATOR.lock() = Some(allocator);
    Ok(stats)
}

impl FrameAllocator {
    fn is_free(&self, frame: usize) -> bool {
        frame < self.frames && self.bitmap[frame / 64] & (1 << (frame % 64)) == 0
    }

    fn set_free(&mut self, frame: usize) {
        self.bitmap[frame / 64] &= !(1 << (frame % 64));
    }

    fn set_used(&mut self, frame: usize) {
        self.bitmap[frame / 64] |= 1 << (frame % 64);
    }

    fn alloc_run(&mut self, count: usize, align: usize, urgency: Urgency) -> Option<usize> {
        let keep = match urgency {
            Urgency::User => self.stats.low_watermark,
            Urgency::Kernel => self.stats.min_watermark,
            Urgency::Reserve => 0,
        };
        if count == 0 || self.stats.free < count as u64 + keep {
            return None;
        }
        let search = |from: usize, to: usize, this: &Self| -> Option<usize> {
            let mut start = from.next_multiple_of(align);
            while start + count <= to {
                match (start..start + count).find(|&f| !this.is_free(f)) {
                    None => return Some(start),
                    Some(busy) => start = (busy + 1).next_multiple_of(align),
                }
            }
            None
        };
        let found =
            search(self.hint, self.frames, self).or_else(|| search(0, self.frames, self))?;
        for frame in found..found + count {
            self.set_used(frame);
        }
        self.stats.free -= count as u64;
        self.hint = found + count;
        Some(found)
    }

    fn free_run(&mut self, first: usize, count: usize) {
        for frame in first..first + count {
            assert!(
                frame < self.frames && !self.is_free(frame),
                "frame allocator: double free or foreign frame {:#x}",
                frame * PAGE_SIZE
            );
            self.set_free(frame);
        }
        self.stats.free += count as u64;
    }
}

/// Allocates one frame for a kernel structure (`Urgency::Kernel`); returns its physical address.
pub fn alloc() -> Option<u64> {
    alloc_contiguous(1, 1)
}

/// Allocates one frame filled with zeroes (`Urgency::Kernel`).
pub fn alloc_zeroed() -> Option<u64> {
    alloc_zeroed_for(Urgency::Kernel)
}

/// Allocates one frame for a user page (`Urgency::User`): `None` once only the reserve is left.
pub fn alloc_user() -> Option<u64> {
    alloc_for(1, 1, Urgency::User)
}

/// `alloc_user`, zeroed.
pub fn alloc_user_zeroed() -> Option<u64> {
    alloc_zeroed_for(Urgency::User)
}

fn alloc_zeroed_for(urgency: Urgency) -> Option<u64> {
    let frame = alloc_for(1, 1, urgency)?;
    // SAFETY: the frame was just allocated, so we own it, and it is RAM under the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, PAGE_SIZE) };
    Some(frame)
}

/// Allocates `count` physically contiguous frames whose first frame number is a multiple of
/// `align_frames` (`Urgency::Kernel`).
pub fn alloc_contiguous(count: usize, align_frames: usize) -> Option<u64> {
    alloc_for(count, align_frames, Urgency::Kernel)
}

/// `alloc_contiguous` with an explicit urgency. `fail_page_alloc` may refuse `User` and
/// `Kernel` requests on purpose.
pub fn alloc_for(count: usize, align_frames: usize, urgency: Urgency) -> Option<u64> {
    if urgency != Urgency::Reserve
        && crate::mm::fault_inject::FAIL_PAGE_ALLOC.should_fail(count * PAGE_SIZE)
    {
        return None;
    }
    let mut guard = ALLOCATOR.lock();
    let allocator = guard.as_mut()?;
    allocator
        .alloc_run(count, align_frames.max(1), urgency)
        .map(|frame| (frame * PAGE_SIZE) as u64)
}

/// Returns frames to the allocator. Panics on a double free: that is a kernel bug.
pub fn free_contiguous(phys: u64, count: usize) {
    let mut guard = ALLOCATOR.lock();
    if let Some(allocator) = guard.as_mut() {
        allocator.free_run(phys as usize / PAGE_SIZE, count);
    }
}

pub fn free(phys: u64) {
    free_contiguous(phys, 1);
}

pub fn stats() -> FrameStats {
    ALLOCATOR
        .lock()
        .as_ref()
        .map(|a| a.stats)
        .unwrap_or_default()
}

crate::kernel_test!(frame_allocator_counts_and_reuses, {
    // Nothing in here may allocate from the heap between the measurements: the heap takes its
    // frames from this allocator (hence `ok_or_else`, not an eagerly built failure message).
    let before = stats();
    let a = alloc().ok_or_else(|| crate::selftest::fail("out of frames"))?;
    let b = alloc_zeroed().ok_or_else(|| crate::selftest::fail("out of frames"))?;
    crate::check!(
        a != b && a.is_multiple_of(PAGE_SIZE as u64) && b.is_multiple_of(PAGE_SIZE as u64)
    );
    crate::check_eq!(stats().free, before.free - 2);
    // SAFETY: `b` is ours and mapped through the direct map.
    let first_word = unsafe { core::ptr::read_volatile(phys_to_virt(b) as *const u64) };
    crate::check_eq!(first_word, 0);
    free(a);
    free(b);
    crate::check_eq!(stats(), before);
    let run = alloc_contiguous(8, 8).ok_or_else(|| crate::selftest::fail("no 8-frame run"))?;
    crate::check_eq!(run % (8 * PAGE_SIZE as u64), 0);
    free_contiguous(run, 8);
    crate::check_eq!(stats(), before);
});

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRoomForBitmap { bytes } => write!(
                f,
                "no usable region below 1 GiB can hold the {bytes}-byte frame bitmap"
            ),
        }
    }
}
