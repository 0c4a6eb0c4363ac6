//! Power-of-two size classes carved from 4 KiB frames, plus whole-frame runs for large blocks.
//!
//! Kernel allocations are mostly small and of a handful of sizes, so segregated free lists give
//! O(1) allocation, no per-block header, and per-class statistics for free (the TUI's size-class
//! view and fragmentation numbers come straight from `ClassStats`). A block of class `n` is
//! `n`-aligned because frames are 4 KiB aligned and `n` divides 4096, which satisfies any layout
//! whose alignment is at most its class. Larger blocks come straight from the frame allocator.

use core::alloc::Layout;
use core::ptr::null_mut;

use crate::mm::{PAGE_SIZE, frame_allocator, phys_to_virt, virt_to_phys};
use crate::sync::IrqSpinLock;

pub const CLASS_SIZES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
const CLASSES: usize = CLASS_SIZES.len();

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub block_size: usize,
    /// Blocks handed out and not yet freed.
    pub live_blocks: usize,
    /// Frames carved into blocks of this class.
    pub frames: usize,
}

impl ClassStats {
    /// Blocks carved and currently free.
    pub fn free_blocks(&self) -> usize {
        self.frames * (PAGE_SIZE / self.block_size) - self.live_blocks
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub live_allocations: usize,
    /// Bytes requested by live allocations (what callers asked for).
    pub live_bytes: usize,
    pub classes: [ClassStats; CLASSES],
    pub large_frames: usize,
    pub total_allocations: u64,
    pub total_frees: u64,
    pub failed_allocations: u64,
}

impl HeapStats {
    /// Bytes the heap holds from the frame allocator.
    pub fn footprint(&self) -> usize {
        (self.classes.iter().map(|c| c.frames).sum::<usize>() + self.large_frames) * PAGE_SIZE
    }
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

pub struct SizeClassHeap {
    inner: IrqSpinLock<Inner>,
}

fn class_of(layout: &Layout) -> Option<usize> {
    let need = layout.size().max(layout.align());
    CLASS_SIZES.iter().position(|&size| size >= need)
}

impl SizeClassHeap {
    pub const fn new() -> Self {
        let mut classes = [ClassStats {
            block_size: 0,
            live_blocks: 0,
            frames: 0,
        }; CLASSES];
        let mut i = 0;
        while i < CLASSES {
            classes[i].block_size = CLASS_SIZES[i];
            i += 1;
        }
        Self {
            inner: IrqSpinLock::new(Inner {
                free_lists: [null_mut(); CLASSES],
                stats: HeapStats {
                    live_allocations: 0,
                    live_bytes: 0,
                    classes,
                    large_frames: 0,
                    total_allocations: 0,
                    total_frees: 0,
                    failed_allocations: 0,
                },
            }),
        }
    }

    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut inner = self.inner.lock();
        let ptr = match class_of(&layout) {
            Some(class) => inner.alloc_small(class),
            None => alloc_large(&layout).map_or(null_mut(), |(ptr, frames)| {
                inner.stats.large_frames += frames;
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

    /// # Safety
    /// `ptr` must have been returned by `alloc` with the same `layout` and not freed since.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
                inner.stats.classes[class].live_blocks -= 1;
            }
            None => {
                let frames = layout.size().div_ceil(PAGE_SIZE);
                let phys =
                    virt_to_phys(ptr as u64).expect("large heap blocks live in the direct map");
                frame_allocator::free_contiguous(phys, frames);
                inner.stats.large_frames -= frames;
            }
        }
        inner.stats.live_allocations -= 1;
        inner.stats.live_bytes -= layout.size();
        inner.stats.total_frees += 1;
    }

    pub fn stats(&self) -> HeapStats {
        self.inner.lock().stats
    }
}

impl Default for SizeClassHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn alloc_small(&mut self, class: usize) -> *mut u8 {
        if self.free_lists[class].is_null() && !self.refill(class) {
            return null_mut();
        }
        let block = self.free_lists[class];
        // SAFETY: non-null free-list entries point at free blocks inside frames this heap owns.
        self.free_lists[class] = unsafe { (*block).next };
        self.classes_mut()[class].live_blocks += 1;
        block.cast()
    }

    fn classes_mut(&mut self) -> &mut [ClassStats; CLASSES] {
        &mut self.stats.classes
    }

    /// Carves one fresh frame into blocks of `class`.
    fn refill(&mut self, class: usize) -> bool {
        let Some(frame) = frame_allocator::alloc() else {
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
        self.stats.classes[class].frames += 1;
        true
    }
}

fn alloc_large(layout: &Layout) -> Option<(*mut u8, usize)> {
    let frames = layout.size().div_ceil(PAGE_SIZE);
    let align_frames = layout.align().div_ceil(PAGE_SIZE);
    let phys = frame_allocator::alloc_contiguous(frames, align_frames)?;
    Some((phys_to_virt(phys) as *mut u8, frames))
}
