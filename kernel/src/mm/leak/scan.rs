//! The conservative scan: which live heap objects can no longer be reached from anything.
//!
//! This is kmemleak's algorithm. Every tracked object starts white. The roots — the kernel's
//! `.data`/`.bss`, every registered kernel stack, and the objects marked "not a leak" — are read
//! word by word; a word that points to the start of, or anywhere inside, a white object's
//! requested bytes turns that object grey and queues it. Grey objects are then read the same
//! way until the queue is empty. Whatever is still white is unreferenced: nothing the kernel can
//! reach holds its address, so nothing can ever free it.
//!
//! Conservative means any word that looks like a pointer counts: an integer that happens to
//! equal a heap address hides a leak (a false negative), never the reverse. Two details keep the
//! reverse from happening: the callee-saved registers are spilled onto the stack before it is
//! read (a pointer held only in a register by a caller up the chain still counts), and the
//! running stack is read only from the current stack pointer up, so dead frames below it —
//! stale copies of pointers that have since been dropped — do not keep leaks alive. Stacks
//! embedded in `.bss` (the boot and IST stacks) are read as stacks, not as `.bss`, and unmapped
//! guard pages are skipped.

use crate::arch::x86_64::stack::{self, StackRange};
use crate::mm::leak::capture;
use crate::mm::leak::tables::{GREY, IGNORED, REPORTED, Tables, UNREFERENCED};
use crate::mm::{PAGE_SIZE, heap, layout, paging};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Objects tracked when the scan ran.
    pub objects: usize,
    /// Objects nothing refers to.
    pub unreferenced: usize,
    /// Unreferenced objects this scan found for the first time.
    pub new: usize,
    /// Bytes read from roots (`.data`/`.bss` and stacks) and from referenced objects.
    pub root_bytes: u64,
    pub object_bytes: u64,
    pub duration_ns: u64,
    /// `time::now_ns()` when the scan finished.
    pub at_ns: u64,
}

struct Scanner<'a> {
    t: &'a mut Tables,
    grey_len: usize,
}

impl Scanner<'_> {
    fn word(&mut self, value: u64) {
        let Some(block) = heap::block_containing(value) else {
            return;
        };
        let Some((_, index)) = self.t.lookup(block.start) else {
            return;
        };
        let object = &mut self.t.objects[index];
        if object.flags & GREY != 0 || value >= object.addr + object.size.max(1) {
            return;
        }
        object.flags |= GREY;
        self.t.grey[self.grey_len] = index as u32;
        self.grey_len += 1;
    }

    /// Reads every aligned word of `[start, end)`; the caller guarantees it is mapped memory.
    fn range(&mut self, start: u64, end: u64) -> u64 {
        let mut at = start.next_multiple_of(8);
        let mut bytes = 0;
        while at + 8 <= end {
            // SAFETY: the caller guarantees `[start, end)` is mapped, readable kernel memory
            // (a mapped `.data`/`.bss` page, a registered stack or a live heap object); an
            // aligned volatile read creates no reference that could alias its owner's data.
            let value = unsafe { core::ptr::read_volatile(at as *const u64) };
            self.word(value);
            at += 8;
            bytes += 8;
        }
        bytes
    }
}

fn in_any(stacks: &[Option<StackRange>], addr: u64) -> bool {
    stacks
        .iter()
        .flatten()
        .any(|s| s.contains(addr as usize, 8))
}

fn overlaps_any(stacks: &[Option<StackRange>], start: u64, end: u64) -> bool {
    stacks
        .iter()
        .flatten()
        .any(|s| (s.bottom as u64) < end && start < s.top as u64)
}

/// Scans with the caller's stack read from `rsp` up; see the module documentation.
fn scan(t: &mut Tables, rsp: u64) -> ScanStats {
    let started = crate::time::now_ns();
    let stacks = stack::registered().unwrap_or_else(|| {
        let mut only_boot = [None; 64];
        only_boot[0] = Some(stack::BOOT_STACK.range());
        only_boot
    });
    let mut scanner = Scanner { t, grey_len: 0 };
    let mut objects = 0;
    for index in 0..scanner.t.objects.len() {
        let object = &mut scanner.t.objects[index];
        if object.addr == 0 {
            continue;
        }
        objects += 1;
        object.flags &= !GREY;
        if object.flags & IGNORED != 0 {
            object.flags |= GREY;
            scanner.t.grey[scanner.grey_len] = index as u32;
            scanner.grey_len += 1;
        }
    }

    let mut root_bytes = 0;
    let (data, end) = (layout::data_start(), layout::bss_end());
    let mut page = data & !(PAGE_SIZE as u64 - 1);
    while page < end {
        let (lo, hi) = (page.max(data), (page + PAGE_SIZE as u64).min(end));
        if paging::translate_active(page).is_some() {
            if !overlaps_any(&stacks, lo, hi) {
                root_bytes += scanner.range(lo, hi);
            } else {
                for word in (lo..hi).step_by(8) {
                    if !in_any(&stacks, word) {
                        root_bytes += scanner.range(word, word + 8);
                    }
                }
            }
        }
        page += PAGE_SIZE as u64;
    }
    // A stack is live only above its stack pointer: the running context's is `rsp`, a
    // switched-out task's the one it saved. What lies below is dead frames, whose stale
    // pointers would hide real leaks (a stack no task owns, such as an IST stack, is read whole).
    let mut saved = [0u64; 256];
    let mut saved_count = 0;
    crate::task::for_each_saved_stack_pointer(|sp| {
        if saved_count < saved.len() {
            saved[saved_count] = sp;
            saved_count += 1;
        }
    });
    for range in stacks.iter().flatten() {
        let (bottom, top) = (range.bottom as u64, range.top as u64);
        let from = if range.contains(rsp as usize, 8) {
            rsp
        } else {
            saved[..saved_count]
                .iter()
                .copied()
                .find(|&sp| range.contains(sp as usize, 8))
                .unwrap_or(bottom)
        };
        root_bytes += scanner.range(from, top);
    }

    let mut object_bytes = 0;
    while scanner.grey_len > 0 {
        scanner.grey_len -= 1;
        let object = scanner.t.objects[scanner.t.grey[scanner.grey_len] as usize];
        object_bytes += scanner.range(object.addr, object.addr + object.size);
    }

    let (mut unreferenced, mut new) = (0, 0);
    for object in scanner.t.objects.iter_mut().filter(|o| o.addr != 0) {
        if object.flags & (GREY | IGNORED) == 0 {
            object.flags |= UNREFERENCED;
            unreferenced += 1;
            if object.flags & REPORTED == 0 {
                object.flags |= REPORTED;
                new += 1;
            }
        } else {
            object.flags &= !(UNREFERENCED | GREY);
        }
    }
    let at_ns = crate::time::now_ns();
    ScanStats {
        objects,
        unreferenced,
        new,
        root_bytes,
        object_bytes,
        duration_ns: at_ns - started,
        at_ns,
    }
}

/// Spills the callee-saved registers into this frame, then scans from this frame's stack
/// pointer up (so the spilled values are read as part of the stack).
#[inline(never)]
pub fn scan_with_registers_spilled(t: &mut Tables) -> ScanStats {
    let mut saved = [0u64; 6];
    // SAFETY: stores six registers into `saved`, a local array of exactly six words; nothing
    // else is touched.
    unsafe {
        core::arch::asm!(
            "mov [{0}], rbx",
            "mov [{0} + 8], rbp",
            "mov [{0} + 16], r12",
            "mov [{0} + 24], r13",
            "mov [{0} + 32], r14",
            "mov [{0} + 40], r15",
            in(reg) saved.as_mut_ptr(),
            options(nostack, preserves_flags)
        )
    };
    core::hint::black_box(&mut saved);
    let stats = scan(t, capture::stack_pointer());
    core::hint::black_box(&mut saved);
    stats
}
