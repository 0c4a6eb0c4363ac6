//! Power-of-two size classes carved from 4 KiB frames, plus whole-frame runs for large blocks.
//!
//! Kernel allocations are mostly small and of a handful of sizes, so segregated free lists give
//! O(1) allocation, no per-block header, and per-class statistics for free (the TUI's size-class
//! view and fragmentation numbers come straight from `ClassStats`). A block of class `n` is
//! `n`-aligned because frames are 4 KiB aligned and `n` divides 4096, which satisfies any layout
//! whose alignment is at most its class. Larger blocks come straight from the frame allocator.
//!
//! Besides the free lists the heap keeps one 16-bit descriptor per physical frame (`FrameMeta`,
//! Linux's `struct page` reduced to what the heap needs): which class a frame was carved into and
//! how many of its blocks are live, or whether it belongs to a large run. That is what answers
//! "which heap block contains this address?" without a lock — the leak scanner asks it for every
//! word it reads — and what measures external fragmentation (free blocks stranded in frames that
//! cannot be given back because another block in them is live).

use core::alloc::Layout;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU16, AtomicUsize, Ordering};

use super::InterruptsOff;
use crate::mm::frame_allocator::Urgency;
use crate::mm::{PAGE_SIZE, PHYS_OFFSET, frame_allocator, phys_to_virt, virt_to_phys};

pub const CLASS_SIZES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
pub const CLASSES: usize = CLASS_SIZES.len();

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub block_size: usize,
    /// Blocks handed out and not yet freed.
    pub live_blocks: usize,
    /// Frames carved into blocks of this class.
    pub frames: usize,
    /// Bytes the live blocks' owners asked for (`live_blocks * block_size - requested_bytes` is
    /// this class's internal fragmentation).
    pub requested_bytes: usize,
}

impl ClassStats {
    /// Blocks carved and currently free.
    pub fn free_blocks(&self) -> usize {
        self.frames * (PAGE_SIZE / self.block_size) - self.live_blocks
    }

    /// Bytes lost to rounding requests up to the class size.
    pub fn internal_fragmentation(&self) -> usize {
        self.live_blocks * self.block_size - self.requested_bytes
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub live_allocations: usize,
    /// Bytes requested by live allocations (what callers asked for).
    pub live_bytes: usize,
    pub classes: [ClassStats; CLASSES],
    pub large_frames: usize,
    /// Live large blocks (frame runs) and the bytes their owners asked for.
    pub large_allocations: usize,
    pub large_requested_bytes: usize,
    pub total_allocations: u64,
    pub total_frees: u64,
    pub failed_allocations: u64,
}

impl HeapStats {
    /// Bytes the heap holds from the frame allocator.
    pub fn footprint(&self) -> usize {
        (self.classes.iter().map(|c| c.frames).sum::<usize>() + self.large_frames) * PAGE_SIZE
    }

    /// Bytes lost to rounding: requests up to their class, large blocks up to whole frames.
    pub fn internal_fragmentation(&self) -> usize {
        self.classes
            .iter()
            .map(ClassStats::internal_fragmentation)
            .sum::<usize>()
            + (self.large_frames * PAGE_SIZE - self.large_requested_bytes)
    }

    /// Bytes carved into blocks and currently free.
    pub fn free_block_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.free_blocks() * c.block_size)
            .sum()
    }
}

/// Per-class occupancy of the frames carved for it, from the frame descriptors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassFragmentation {
    /// Frames with at least one live and at least one free block.
    pub partial_frames: usize,
    /// Free blocks inside those frames: external fragmentation, in blocks.
    pub partial_free_blocks: usize,
    /// Frames whose blocks are all free (reusable by this class only; the heap keeps them).
    pub empty_frames: usize,
    pub full_frames: usize,
}

/// One frame descriptor: kind in the top 4 bits, a count in the low 12.
///
/// Kinds: 0 not a heap frame; `1..=CLASSES` carved into class `kind - 1` (count = live blocks,
/// at most 256); `LARGE_HEAD` the first frame of a large block (count = run length, saturated);
/// `LARGE_TAIL` a later frame of one (count = distance back to the head, saturated at 4095, so a
/// longer run is walked back in 4095-frame steps).
struct FrameMeta;

impl FrameMeta {
    const NONE: u16 = 0;
    const LARGE_HEAD: u16 = 0xe;
    const LARGE_TAIL: u16 = 0xf;
    const COUNT_MASK: u16 = 0x0fff;

    const fn pack(kind: u16, count: usize) -> u16 {
        let count = if count > Self::COUNT_MASK as usize {
            Self::COUNT_MASK
        } else {
            count as u16
        };
        (kind << 12) | count
    }

    const fn kind(value: u16) -> u16 {
        value >> 12
    }

    const fn count(value: u16) -> usize {
        (value & Self::COUNT_MASK) as usize
    }
}

/// The descriptor table: one `AtomicU16` per frame below `META_FRAMES`, in frames taken from the
/// frame allocator by `init_frame_meta`. Written under the heap lock, read without it.
static META: AtomicPtr<AtomicU16> = AtomicPtr::new(null_mut());
static META_FRAMES: AtomicUsize = AtomicUsize::new(0);

fn meta_table() -> &'static [AtomicU16] {
    let ptr = META.load(Ordering::Acquire);
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: `init_frame_meta` published `META_FRAMES` zeroed descriptors at `ptr` (in frames
    // it owns for the rest of the kernel's life) before storing `ptr` with Release ordering.
    unsafe { core::slice::from_raw_parts(ptr, META_FRAMES.load(Ordering::Relaxed)) }
}

fn frame_index(virt: u64) -> Option<usize> {
    let index = (virt.checked_sub(PHYS_OFFSET)? / PAGE_SIZE as u64) as usize;
    (index < META_FRAMES.load(Ordering::Relaxed)).then_some(index)
}

fn meta_get(index: usize) -> u16 {
    meta_table()
        .get(index)
        .map_or(FrameMeta::NONE, |m| m.load(Ordering::Relaxed))
}

fn meta_set(index: usize, value: u16) {
    if let Some(m) = meta_table().get(index) {
        m.store(value, Ordering::Relaxed);
    }
}

/// Adjusts the live count of the small-class frame holding `block` (under the heap lock).
fn meta_adjust_live(block: u64, up: bool) {
    let Some(index) = frame_index(block) else {
        return;
    };
    let value = meta_get(index);
    let kind = FrameMeta::kind(value);
    if kind == FrameMeta::NONE || kind > CLASSES as u16 {
        return;
    }
    let count = FrameMeta::count(value);
    let count = if up {
        count + 1
    } else {
        count.saturating_sub(1)
    };
    meta_set(index, FrameMeta::pack(kind, count));
}

/// Bytes of descriptor table for physical memory up to `phys_end`.
fn frame_meta_bytes(phys_end: u64) -> usize {
    (phys_end as usize).div_ceil(PAGE_SIZE) * core::mem::size_of::<u16>()
}

/// Bytes of frames the installed descriptor table takes (0 before `init_frame_meta`).
pub fn meta_table_bytes() -> usize {
    if META.load(Ordering::Acquire).is_null() {
        return 0;
    }
    (META_FRAMES.load(Ordering::Relaxed) * core::mem::size_of::<u16>()).next_multiple_of(PAGE_SIZE)
}

/// Sets up the frame descriptors for physical memory below `phys_end`; returns the frames used,
/// or `None` if the frame allocator cannot provide them (the heap then works without
/// descriptors: no pointer lookup, no fragmentation figures). Only the first call has an effect.
pub fn init_frame_meta(phys_end: u64) -> Option<usize> {
    if !META.load(Ordering::Acquire).is_null() {
        return Some(0);
    }
    let frames = (phys_end as usize).div_ceil(PAGE_SIZE);
    let table_frames = frame_meta_bytes(phys_end).div_ceil(PAGE_SIZE);
    let phys = frame_allocator::alloc_contiguous(table_frames, 1)?;
    let ptr = phys_to_virt(phys) as *mut AtomicU16;
    // SAFETY: the run was just allocated for this table and is RAM under the direct map; zero is
    // a valid `AtomicU16`, and nothing else references these frames.
    unsafe { core::ptr::write_bytes(ptr.cast::<u8>(), 0, table_frames * PAGE_SIZE) };
    META_FRAMES.store(frames, Ordering::Relaxed);
    META.store(ptr, Ordering::Release);
    Some(table_frames)
}

/// A heap block found by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockAt {
    pub start: u64,
    /// The size class, or `None` for a large block (a frame run).
    pub class: Option<usize>,
}

/// The heap block (live or free) whose memory contains `addr`, from the frame descriptors and
/// without any lock: safe to call from the leak scanner, the debugger and interrupt handlers.
pub fn block_containing(addr: u64) -> Option<BlockAt> {
    let mut index = frame_index(addr)?;
    let value = meta_get(index);
    match FrameMeta::kind(value) {
        FrameMeta::NONE => None,
        kind if kind <= CLASSES as u16 => {
            let class = kind as usize - 1;
            Some(BlockAt {
                start: addr & !(CLASS_SIZES[class] as u64 - 1),
                class: Some(class),
            })
        }
        FrameMeta::LARGE_HEAD => Some(BlockAt {
            start: addr & !(PAGE_SIZE as u64 - 1),
            class: None,
        }),
        _ => loop {
            let value = meta_get(index);
            match FrameMeta::kind(value) {
                FrameMeta::LARGE_HEAD => {
                    break Some(BlockAt {
                        start: PHYS_OFFSET + (index * PAGE_SIZE) as u64,
                        class: None,
                    });
                }
                FrameMeta::LARGE_TAIL if FrameMeta::count(value) > 0 => {
                    index = index.checked_sub(FrameMeta::count(value))?;
                }
                _ => break None,
            }
        },
    }
}

/// Occupancy of every class's frames, from the descriptors (O(frames of RAM), no lock).
pub fn fragmentation() -> [ClassFragmentation; CLASSES] {
    let mut out = [ClassFragmentation::default(); CLASSES];
    for meta in meta_table() {
        let value = meta.load(Ordering::Relaxed);
        let kind = FrameMeta::kind(value);
        if kind == FrameMeta::NONE || kind > CLASSES as u16 {
            continue;
        }
        let class = kind as usize - 1;
        let per_frame = PAGE_SIZE / CLASS_SIZES[class];
        let live = FrameMeta::count(value).min(per_frame);
        let entry = &mut out[class];
        if live == 0 {
            entry.empty_frames += 1;
        } else if live == per_frame {
            entry.full_frames += 1;
        } else {
            entry.partial_frames += 1;
            entry.partial_free_blocks += per_frame - live;
        }
    }
    out
}

struct FreeBlock {
    next: *mut FreeBlock,
}

struct Inner {
    free_lists: [*mut FreeBlock; CLASSES],
    stats: HeapStats,
}

// SAFETY: the raw pointers are free-list links into heap frames owned by this heap; they are only
// touched under the lock.
unsafe impl Send for Inner {}

/// The heap's lock is a plain spinlock: allocation and free expect interrupts masked (by
/// `KernelHeap`, so that the heap and its observer share one interrupts-off section), and the
/// statistics calls mask them themselves.
pub struct SizeClassHeap {
    inner: spin::Mutex<Inner>,
}

/// The class serving `layout`: the smallest power of two of at least 16 bytes holding its size
/// and alignment, or `None` above 2048 bytes.
#[inline]
pub fn class_of(layout: &Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(CLASS_SIZES[0]);
    (need <= CLASS_SIZES[CLASSES - 1]).then(|| {
        (need.next_power_of_two().trailing_zeros() - CLASS_SIZES[0].trailing_zeros()) as usize
    })
}

/// Bytes the heap actually reserves for `layout` (its class size, or whole frames).
#[inline]
pub fn block_size(layout: &Layout) -> usize {
    match class_of(layout) {
        Some(class) => CLASS_SIZES[0] << class,
        None => layout.size().div_ceil(PAGE_SIZE) * PAGE_SIZE,
    }
}

impl SizeClassHeap {
    pub const fn new() -> Self {
        let mut classes = [ClassStats {
            block_size: 0,
            live_blocks: 0,
            frames: 0,
            requested_bytes: 0,
        }; CLASSES];
        let mut i = 0;
        while i < CLASSES {
            classes[i].block_size = CLASS_SIZES[i];
            i += 1;
        }
        Self {
            inner: spin::Mutex::new(Inner {
                free_lists: [null_mut(); CLASSES],
                stats: HeapStats {
                    live_allocations: 0,
                    live_bytes: 0,
                    classes,
                    large_frames: 0,
                    large_allocations: 0,
                    large_requested_bytes: 0,
                    total_allocations: 0,
                    total_frees: 0,
                    failed_allocations: 0,
                },
            }),
        }
    }

    /// Counts an allocation refused before it reached the backend (fault injection).
    pub fn count_failure(&self) {
        self.inner.lock().stats.failed_allocations += 1;
    }

    /// Allocates a block for `layout`, growing with frames of `urgency`; the caller must have
    /// masked interrupts.
    pub fn alloc_masked(&self, layout: Layout, urgency: Urgency) -> *mut u8 {
        let mut inner = self.inner.lock();
        let ptr = match class_of(&layout) {
            Some(class) => {
                let ptr = inner.alloc_small(class, urgency);
                if !ptr.is_null() {
                    inner.stats.classes[class].requested_bytes += layout.size();
                }
                ptr
            }
            None => alloc_large(&layout, urgency).map_or(null_mut(), |(ptr, frames)| {
                inner.stats.large_frames += frames;
                inner.stats.large_allocations += 1;
                inner.stats.large_requested_bytes += layout.size();
                ptr
            }),
        };
        if ptr.is_null() {
            inner.stats.failed_allocations += 1;
        } else {
            inner.stats.live_allocations += 1;
            inner.stats.live_bytes += layout.size();
            inner.stats.total_allocations += 1;
        }
        ptr
    }

    /// Frees a block; the caller must have masked interrupts.
    ///
    /// # Safety
    /// `ptr` must have been returned by `alloc_masked` with the same `layout` and not freed
    /// since.
    pub unsafe fn dealloc_masked(&self, ptr: *mut u8, layout: Layout) {
        let mut inner = self.inner.lock();
        match class_of(&layout) {
            Some(class) => {
                let block = ptr.cast::<FreeBlock>();
                // SAFETY: the block is at least 16 bytes, aligned, and ours again.
                unsafe {
                    block.write(FreeBlock {
                        next: inner.free_lists[class],
                    })
                };
                inner.free_lists[class] = block;
                let stats = &mut inner.stats.classes[class];
                stats.live_blocks -= 1;
                stats.requested_bytes -= layout.size();
                meta_adjust_live(ptr as u64, false);
            }
            None => {
                let frames = layout.size().div_ceil(PAGE_SIZE);
                let phys =
                    virt_to_phys(ptr as u64).expect("large heap blocks live in the direct map");
                if let Some(first) = frame_index(ptr as u64) {
                    for index in first..first + frames {
                        meta_set(index, FrameMeta::NONE);
                    }
                }
                frame_allocator::free_contiguous(phys, frames);
                inner.stats.large_frames -= frames;
                inner.stats.large_allocations -= 1;
                inner.stats.large_requested_bytes -= layout.size();
            }
        }
        inner.stats.live_allocations -= 1;
        inner.stats.live_bytes -= layout.size();
        inner.stats.total_frees += 1;
    }

    pub fn stats(&self) -> HeapStats {
        let _masked = InterruptsOff::new();
        self.inner.lock().stats
    }

    /// Like `stats`, but gives up instead of waiting (the debugger may have stopped the machine
    /// inside the heap).
    pub fn try_stats(&self) -> Option<HeapStats> {
        let _masked = InterruptsOff::new();
        self.inner.try_lock().map(|inner| inner.stats)
    }
}

impl Default for SizeClassHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn alloc_small(&mut self, class: usize, urgency: Urgency) -> *mut u8 {
        if self.free_lists[class].is_null() && !self.refill(class, urgency) {
            return null_mut();
        }
        let block = self.free_lists[class];
        // SAFETY: non-null free-list entries point at free blocks inside frames this heap owns.
        self.free_lists[class] = unsafe { (*block).next };
        self.stats.classes[class].live_blocks += 1;
        meta_adjust_live(block as u64, true);
        block.cast()
    }

    /// Carves one fresh frame into blocks of `class`.
    fn refill(&mut self, class: usize, urgency: Urgency) -> bool {
        let Some(frame) = frame_allocator::alloc_for(1, 1, urgency) else {
            return false;
        };
        let size = CLASS_SIZES[class];
        let base = phys_to_virt(frame) as usize;
        for offset in (0..PAGE_SIZE).step_by(size).rev() {
            let block = (base + offset) as *mut FreeBlock;
            // SAFETY: the frame was just allocated for this heap and is mapped in the direct map;
            // each block is `size`-aligned and inside it.
            unsafe {
                block.write(FreeBlock {
                    next: self.free_lists[class],
                })
            };
            self.free_lists[class] = block;
        }
        if let Some(index) = frame_index(base as u64) {
            meta_set(index, FrameMeta::pack(class as u16 + 1, 0));
        }
        self.stats.classes[class].frames += 1;
        true
    }
}

fn alloc_large(layout: &Layout, urgency: Urgency) -> Option<(*mut u8, usize)> {
    let frames = layout.size().div_ceil(PAGE_SIZE);
    let align_frames = layout.align().div_ceil(PAGE_SIZE);
    let phys = frame_allocator::alloc_for(frames, align_frames, urgency)?;
    let virt = phys_to_virt(phys);
    if let Some(first) = frame_index(virt) {
        meta_set(first, FrameMeta::pack(FrameMeta::LARGE_HEAD, frames));
        for distance in 1..frames {
            meta_set(
                first + distance,
                FrameMeta::pack(FrameMeta::LARGE_TAIL, distance),
            );
        }
    }
    Some((virt as *mut u8, frames))
}

crate::kernel_test!(heap_frame_descriptors_find_blocks, {
    use alloc::boxed::Box;
    if meta_table().is_empty() {
        return Err(crate::selftest::fail("no frame descriptors"));
    }
    let small = Box::new([7u64; 5]); // 40 bytes: class 64
    let base = small.as_ptr() as u64;
    for inside in [base, base + 8, base + 39, base + 63] {
        crate::check_eq!(
            block_containing(inside),
            Some(BlockAt {
                start: base,
                class: Some(2)
            })
        );
    }
    let big = alloc::vec![0u8; 5 * PAGE_SIZE + 1];
    let head = big.as_ptr() as u64;
    for inside in [head, head + PAGE_SIZE as u64, head + 5 * PAGE_SIZE as u64] {
        crate::check_eq!(
            block_containing(inside),
            Some(BlockAt {
                start: head,
                class: None
            })
        );
    }
    // Kernel statics, stacks and unmapped addresses are not heap.
    static NOT_HEAP: u64 = 0;
    let stack_local = 0u64;
    for addr in [
        &raw const NOT_HEAP as u64,
        &raw const stack_local as u64,
        0,
        u64::MAX,
    ] {
        crate::check_eq!(block_containing(addr), None);
    }
    let frag = fragmentation();
    crate::check!(
        frag[2].partial_frames + frag[2].full_frames >= 1,
        "the 64-byte class has a frame with a live block"
    );
    drop(big);
    crate::check_eq!(block_containing(head), None);
});
