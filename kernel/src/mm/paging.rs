//! Four-level page tables and the kernel's own address space.
//!
//! The boot trampoline maps only the first GiB, with everything writable and executable. `init`
//! replaces that with the real kernel map: the direct map of every region in the memory map
//! (2 MiB pages where alignment allows, never executable), the kernel image with per-section
//! permissions (text RX, rodata R, data RW), unmapped guard pages under every kernel stack, and
//! an uncached MMIO window for device registers.
//!
//! User address spaces are visited with one range walker, `PageTable::walk_user_range`: userspace
//! picks the sizes of the ranges it unmaps, protects or remaps (terabytes, if it likes), and the
//! kernel does that work with interrupts off, so the walk must cost what is mapped, not what the
//! range spans — an absent entry skips its whole 512 GiB, 1 GiB or 2 MiB — and it frees the
//! tables it empties, so a process cannot pile up page tables by mapping and unmapping.

use bitflags::bitflags;

use super::{KERNEL_VIRT_OFFSET, MMIO_BASE, PAGE_SIZE, frame_allocator, layout, phys_to_virt};
use crate::arch::x86_64::cpu;
use crate::boot::MemoryMap;
use crate::sync::IrqSpinLock;

bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PageFlags: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        const WRITE_THROUGH = 1 << 3;
        const NO_CACHE = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        const HUGE = 1 << 7;
        const GLOBAL = 1 << 8;
        /// Software bit: the frame is shared copy-on-write with another address space.
        const COPY_ON_WRITE = 1 << 9;
        /// Software bit: the mapping is writable once it is no longer shared.
        const LOGICALLY_WRITABLE = 1 << 10;
        const NO_EXECUTE = 1 << 63;
    }
}

const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const HUGE_2M: u64 = 2 * 1024 * 1024;

pub const KERNEL_DATA: PageFlags = PageFlags::PRESENT
    .union(PageFlags::WRITABLE)
    .union(PageFlags::GLOBAL)
    .union(PageFlags::NO_EXECUTE);
const KERNEL_TEXT: PageFlags = PageFlags::PRESENT.union(PageFlags::GLOBAL);
const KERNEL_RODATA: PageFlags = PageFlags::PRESENT
    .union(PageFlags::GLOBAL)
    .union(PageFlags::NO_EXECUTE);
const MMIO: PageFlags = KERNEL_DATA
    .union(PageFlags::NO_CACHE)
    .union(PageFlags::WRITE_THROUGH);

#[derive(Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfFrames,
    AlreadyMapped(u64),
    /// The address is covered by a huge page that would have to be split.
    HugePageInTheWay(u64),
    Unaligned,
}

/// A page-table hierarchy, identified by the physical address of its PML4.
pub struct PageTable {
    root: u64,
}

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: page-table frames are owned by their `PageTable`, are 4 KiB aligned and are reached
    // through the direct map; callers hold `KERNEL_SPACE`'s lock or own the table exclusively
    // (during boot), so no other reference to this table exists.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// One past the highest address of the user half (PML4 entries 0..256).
const USER_HALF_END: u64 = 1 << 47;

/// A present 4 KiB page-table entry, as `PageTable::walk_user_range` hands it to its visitor.
pub struct Leaf<'a> {
    entry: &'a mut u64,
}

impl Leaf<'_> {
    /// The frame it maps.
    pub fn phys(&self) -> u64 {
        *self.entry & ADDRESS_MASK
    }

    pub fn flags(&self) -> PageFlags {
        PageFlags::from_bits_truncate(*self.entry)
    }

    /// Keeps the frame, with `flags` (the caller flushes the page's TLB entry).
    pub fn set_flags(&mut self, flags: PageFlags) {
        *self.entry = self.phys() | (flags | PageFlags::PRESENT).bits();
    }

    /// Unmaps the page (the caller flushes its TLB entry and owns the frame now).
    pub fn clear(&mut self) {
        *self.entry = 0;
    }
}

/// The range walk below `table_phys`, a table at `level` (4 = PML4) whose first entry maps
/// `base`: visits the present leaves inside `range`, descends only into present tables and,
/// with `free_empty`, frees the child tables it leaves without a present entry.
fn walk_level(
    table_phys: u64,
    level: u32,
    base: u64,
    range: core::ops::Range<u64>,
    free_empty: bool,
    visit: &mut dyn FnMut(u64, &mut Leaf<'_>) -> Result<(), MapError>,
    freed_tables: &mut bool,
) -> Result<(), MapError> {
    let span = 1u64 << (12 + 9 * (level - 1));
    let first = range.start.saturating_sub(base) / span;
    let last = (range.end - base).div_ceil(span).min(512);
    for slot in first as usize..last as usize {
        let entry = table(table_phys)[slot];
        if entry & PageFlags::PRESENT.bits() == 0 {
            continue;
        }
        let virt = base + slot as u64 * span;
        if level == 1 {
            visit(
                virt,
                &mut Leaf {
                    entry: &mut table(table_phys)[slot],
                },
            )?;
            continue;
        }
        if entry & PageFlags::HUGE.bits() != 0 {
            // User mappings are all 4 KiB pages; a huge page is nothing this walk may touch.
            continue;
        }
        let child = entry & ADDRESS_MASK;
        let result = walk_level(
            child,
            level - 1,
            virt,
            range.clone(),
            free_empty,
            visit,
            freed_tables,
        );
        if free_empty
            && table(child)
                .iter()
                .all(|&e| e & PageFlags::PRESENT.bits() == 0)
        {
            table(table_phys)[slot] = 0;
            frame_allocator::free(child);
            *freed_tables = true;
        }
        result?;
    }
    Ok(())
}

impl PageTable {
    pub fn new() -> Result<Self, MapError> {
        let root = frame_allocator::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        Ok(Self { root })
    }

    pub fn root_phys(&self) -> u64 {
        self.root
    }

    /// A table for a user address space: the user half empty, the kernel half (PML4 entries
    /// 256..512) shared with the kernel's table, so kernel mappings are the same in every
    /// process.
    pub fn new_user() -> Result<Self, MapError> {
        let kernel_root = KERNEL_SPACE
            .lock()
            .as_ref()
            .map(|space| space.table.root)
            .ok_or(MapError::OutOfFrames)?;
        let table_of_user = Self::new()?;
        let kernel_half: [u64; 256] = table(kernel_root)[256..].try_into().expect("half of 512");
        table(table_of_user.root)[256..].copy_from_slice(&kernel_half);
        Ok(table_of_user)
    }

    /// Frees every page table and every mapped frame of the user half (below 128 TiB); calls
    /// `keep` first for each mapped frame and does not free it if `keep` returns true.
    pub fn free_user_half(&mut self, keep: &mut dyn FnMut(u64) -> bool) {
        let _ = self.walk_user_range(0, USER_HALF_END, &mut |_, leaf| {
            let frame = leaf.phys();
            leaf.clear();
            if !keep(frame) {
                frame_allocator::free(frame);
            }
            Ok(())
        });
    }

    /// Calls `f(virt, phys, flags)` for every 4 KiB page mapped in the user half.
    pub fn for_each_user_page(&self, f: &mut dyn FnMut(u64, u64, PageFlags)) {
        let mut freed_tables = false;
        let _ = walk_level(
            self.root,
            4,
            0,
            0..USER_HALF_END,
            false,
            &mut |virt, leaf| {
                f(virt, leaf.phys(), leaf.flags());
                Ok(())
            },
            &mut freed_tables,
        );
    }

    /// Visits the present 4 KiB pages of `[start, end)` (clipped to the user half) in address
    /// order: `visit(virt, leaf)` may read, change or clear the entry (and flushes the TLB for
    /// what it changes). A missing entry at any level skips its whole span (512 GiB, 1 GiB or
    /// 2 MiB), so the walk costs what is mapped, never the size of the range: this is what
    /// `munmap`, `mprotect`, `mremap`, `fork`, the usage counts and address-space teardown use,
    /// on ranges whose size userspace picks. Page tables the walk finds empty afterwards are
    /// freed (Linux's `free_pgtables`), so mapping and unmapping fresh ranges leaks no tables.
    /// Stops at the first error `visit` returns.
    pub fn walk_user_range(
        &mut self,
        start: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &mut Leaf<'_>) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        let end = end.min(USER_HALF_END);
        if start >= end {
            return Ok(());
        }
        let mut freed_tables = false;
        let result = walk_level(self.root, 4, 0, start..end, true, visit, &mut freed_tables);
        // The freed tables may still be cached in the paging-structure caches of this CPU, for
        // the addresses they covered: reloading CR3 drops every non-global translation.
        if freed_tables && cpu::read_cr3() & ADDRESS_MASK == self.root {
            // SAFETY: this table is already the active one; reloading it only flushes the TLB.
            unsafe { cpu::write_cr3(self.root) };
        }
        result
    }

    /// Makes this the active address space.
    ///
    /// # Safety
    /// The table must map the kernel (true for tables from `new_user`), and must stay alive
    /// while active.
    pub unsafe fn activate(&self) {
        // SAFETY: the caller's contract; the kernel half is shared with the kernel's table.
        unsafe { cpu::write_cr3(self.root) };
    }

    /// Drops a stale translation of `virt` from this CPU's TLB.
    pub fn flush(virt: u64) {
        cpu::invlpg(virt as usize);
    }

    /// Walks down to the table at `level` (1 = page table) covering `virt`, creating the
    /// intermediate tables when `create` is set.
    fn walk(&mut self, virt: u64, level: u32, create: bool) -> Result<Option<u64>, MapError> {
        let mut current = self.root;
        for l in (level + 1..=4).rev() {
            let entry = &mut table(current)[index(virt, l)];
            if *entry & PageFlags::PRESENT.bits() == 0 {
                if !create {
                    return Ok(None);
                }
                let frame = frame_allocator::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
                // Intermediate entries are permissive; leaves decide the real rights.
                *entry =
                    frame | (PageFlags::PRESENT | PageFlags::WRITABLE | PageFlags::USER).bits();
            } else if *entry & PageFlags::HUGE.bits() != 0 {
                return Err(MapError::HugePageInTheWay(virt));
            }
            current = *entry & ADDRESS_MASK;
        }
        Ok(Some(current))
    }

    pub fn map_4k(&mut self, virt: u64, phys: u64, flags: PageFlags) -> Result<(), MapError> {
        if !virt.is_multiple_of(PAGE_SIZE as u64) || !phys.is_multiple_of(PAGE_SIZE as u64) {
            return Err(MapError::Unaligned);
        }
        let pt = self.walk(virt, 1, true)?.ok_or(MapError::OutOfFrames)?;
        let entry = &mut table(pt)[index(virt, 1)];
        if *entry & PageFlags::PRESENT.bits() != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *entry = phys | (flags | PageFlags::PRESENT).bits();
        Ok(())
    }

    fn map_2m(&mut self, virt: u64, phys: u64, flags: PageFlags) -> Result<(), MapError> {
        let pd = self.walk(virt, 2, true)?.ok_or(MapError::OutOfFrames)?;
        let entry = &mut table(pd)[index(virt, 2)];
        if *entry & PageFlags::PRESENT.bits() != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *entry = phys | (flags | PageFlags::PRESENT | PageFlags::HUGE).bits();
        Ok(())
    }

    /// Maps `[virt, virt + size)` to `[phys, ...)`, with 2 MiB pages wherever both addresses
    /// are 2 MiB aligned and enough remains.
    pub fn map_range(
        &mut self,
        virt: u64,
        phys: u64,
        size: u64,
        flags: PageFlags,
    ) -> Result<(), MapError> {
        let mut offset = 0;
        while offset < size {
            let (v, p) = (virt + offset, phys + offset);
            if v.is_multiple_of(HUGE_2M) && p.is_multiple_of(HUGE_2M) && size - offset >= HUGE_2M {
                self.map_2m(v, p, flags)?;
                offset += HUGE_2M;
            } else {
                self.map_4k(v, p, flags)?;
                offset += PAGE_SIZE as u64;
            }
        }
        Ok(())
    }

    /// Removes a 4 KiB mapping; returns the physical address it pointed at.
    pub fn unmap_4k(&mut self, virt: u64) -> Result<Option<u64>, MapError> {
        let Some(pt) = self.walk(virt, 1, false)? else {
            return Ok(None);
        };
        let entry = &mut table(pt)[index(virt, 1)];
        if *entry & PageFlags::PRESENT.bits() == 0 {
            return Ok(None);
        }
        let phys = *entry & ADDRESS_MASK;
        *entry = 0;
        cpu::invlpg(virt as usize);
        Ok(Some(phys))
    }

    /// The physical address `virt` maps to, and the leaf's flags.
    pub fn translate(&self, virt: u64) -> Option<(u64, PageFlags)> {
        let mut current = self.root;
        for level in (1..=4).rev() {
            let entry = table(current)[index(virt, level)];
            if entry & PageFlags::PRESENT.bits() == 0 {
                return None;
            }
            let flags = PageFlags::from_bits_truncate(entry);
            if level == 1 || (level <= 3 && flags.contains(PageFlags::HUGE)) {
                let page_mask = (1u64 << (12 + 9 * (level - 1))) - 1;
                return Some((
                    (entry & ADDRESS_MASK & !page_mask) | (virt & page_mask),
                    flags,
                ));
            }
            current = entry & ADDRESS_MASK;
        }
        None
    }
}

struct KernelSpace {
    table: PageTable,
    mmio_next: u64,
}

static KERNEL_SPACE: IrqSpinLock<Option<KernelSpace>> = IrqSpinLock::new(None);

/// Builds the kernel's address space from the memory map and switches to it.
pub fn init(map: &MemoryMap, guard_pages: &[usize]) -> Result<(), MapError> {
    let mut table = PageTable::new()?;

    // Regions are sorted; rounding them out to pages can make neighbours share a page.
    let mut mapped_end = 0;
    for region in map.regions().iter().filter(|r| super::is_direct_mapped(r)) {
        let start = super::align_down(region.start, PAGE_SIZE as u64).max(mapped_end);
        let end = super::align_up(region.end, PAGE_SIZE as u64);
        if start < end {
            table.map_range(phys_to_virt(start), start, end - start, KERNEL_DATA)?;
            mapped_end = end;
        }
    }

    let sections = [
        (layout::text_start(), layout::text_end(), KERNEL_TEXT),
        (layout::rodata_start(), layout::rodata_end(), KERNEL_RODATA),
        (layout::data_start(), layout::bss_end(), KERNEL_DATA),
    ];
    for (start, end, flags) in sections {
        let start = super::align_down(start, PAGE_SIZE as u64);
        let end = super::align_up(end, PAGE_SIZE as u64);
        for virt in (start..end).step_by(PAGE_SIZE) {
            table.map_4k(virt, virt - KERNEL_VIRT_OFFSET, flags)?;
        }
    }
    for &guard in guard_pages {
        table.unmap_4k(guard as u64)?;
    }

    // SAFETY: CR4.PGE only makes global mappings survive CR3 reloads; all kernel mappings are
    // identical in every address space, which is what global means.
    unsafe { cpu::set_cr4_bits(1 << 7) };
    // SAFETY: the new table maps the kernel image (including the running code, this stack and
    // all statics) at the addresses they are linked at, and physical memory at `PHYS_OFFSET`,
    // exactly as the boot tables did for the parts still in use.
    unsafe { cpu::write_cr3(table.root_phys()) };

    *KERNEL_SPACE.lock() = Some(KernelSpace {
        table,
        mmio_next: MMIO_BASE,
    });
    Ok(())
}

/// Maps device registers at `phys` (uncached) and returns their virtual address.
pub fn map_mmio(phys: u64, size: u64) -> Result<u64, MapError> {
    let mut guard = KERNEL_SPACE.lock();
    let space = guard.as_mut().ok_or(MapError::OutOfFrames)?;
    let base = super::align_down(phys, PAGE_SIZE as u64);
    let len = super::align_up(phys + size, PAGE_SIZE as u64) - base;
    let virt = space.mmio_next;
    for offset in (0..len).step_by(PAGE_SIZE) {
        space.table.map_4k(virt + offset, base + offset, MMIO)?;
    }
    // One unmapped page between windows catches overruns.
    space.mmio_next += len + PAGE_SIZE as u64;
    Ok(virt + (phys - base))
}

/// Translates through whatever address space is active (CR3), without taking any lock: for the
/// debugger, which may have stopped the machine while the page-table lock is held. The walk
/// only reads entries, through the direct map.
pub fn translate_active(virt: u64) -> Option<(u64, PageFlags)> {
    let mut current = cpu::read_cr3() & ADDRESS_MASK;
    for level in (1..=4).rev() {
        let slot = phys_to_virt(current) + 8 * index(virt, level) as u64;
        // SAFETY: `current` is a page-table frame reachable from CR3, hence RAM covered by the
        // direct map; the entry is read with a volatile load and no reference is created, so
        // a concurrent holder of the table (the stopped code) is not disturbed.
        let entry = unsafe { core::ptr::read_volatile(slot as *const u64) };
        if entry & PageFlags::PRESENT.bits() == 0 {
            return None;
        }
        let flags = PageFlags::from_bits_truncate(entry);
        if level == 1 || (level <= 3 && flags.contains(PageFlags::HUGE)) {
            let page_mask = (1u64 << (12 + 9 * (level - 1))) - 1;
            return Some((
                (entry & ADDRESS_MASK & !page_mask) | (virt & page_mask),
                flags,
            ));
        }
        current = entry & ADDRESS_MASK;
    }
    None
}

/// Translates a kernel virtual address through the live kernel page tables.
pub fn translate(virt: u64) -> Option<(u64, PageFlags)> {
    KERNEL_SPACE.lock().as_ref()?.table.translate(virt)
}

crate::kernel_test!(paging_kernel_map_permissions, {
    let text = translate(layout::text_start()).ok_or(crate::selftest::fail("text unmapped"))?;
    crate::check!(!text.1.contains(PageFlags::NO_EXECUTE) && !text.1.contains(PageFlags::WRITABLE));
    let rodata =
        translate(layout::rodata_start()).ok_or(crate::selftest::fail("rodata unmapped"))?;
    crate::check!(
        rodata.1.contains(PageFlags::NO_EXECUTE) && !rodata.1.contains(PageFlags::WRITABLE)
    );
    let here = translate(&KERNEL_SPACE as *const _ as u64)
        .ok_or(crate::selftest::fail("data unmapped"))?;
    crate::check!(here.1.contains(PageFlags::WRITABLE | PageFlags::NO_EXECUTE));
    crate::check_eq!(
        here.0,
        &KERNEL_SPACE as *const _ as u64 - KERNEL_VIRT_OFFSET
    );
    crate::check!(translate(0).is_none(), "the boot identity map must be gone");
    let guard = crate::arch::x86_64::stack::BOOT_STACK.guard_page() as u64;
    crate::check!(
        translate(guard).is_none(),
        "the boot stack's guard page must be unmapped"
    );
});

crate::kernel_test!(paging_map_translate_unmap, {
    let frame = frame_allocator::alloc_zeroed().ok_or(crate::selftest::fail("out of frames"))?;
    let virt = map_mmio(frame, 8).map_err(|_| crate::selftest::fail("map_mmio failed"))?;
    crate::check_eq!(translate(virt).map(|t| t.0), Some(frame));
    // Writing through the new mapping shows up through the direct map.
    // SAFETY: `virt` maps the frame we own; both accesses are 8-byte aligned and in bounds.
    unsafe { core::ptr::write_volatile(virt as *mut u64, 0xfeed_f00d) };
    // SAFETY: as above, through the direct map.
    let seen = unsafe { core::ptr::read_volatile(phys_to_virt(frame) as *const u64) };
    crate::check_eq!(seen, 0xfeed_f00d);
    let removed = KERNEL_SPACE
        .lock()
        .as_mut()
        .map(|s| s.table.unmap_4k(virt))
        .transpose()
        .map_err(|_| crate::selftest::fail("unmap failed"))?
        .flatten();
    crate::check_eq!(removed, Some(frame));
    crate::check!(translate(virt).is_none());
    frame_allocator::free(frame);
});

crate::kernel_test!(
    paging_range_walk_visits_what_is_mapped_and_frees_empty_tables,
    {
        // Nothing here allocates from the heap, so the frame counts measure page tables only.
        let fail = || crate::selftest::fail("out of frames");
        let mut space = PageTable::new_user().map_err(|_| fail())?;
        let baseline = frame_allocator::stats().free;
        // Three pages in three different 512 GiB slots, two in the same page table.
        let pages = [0x1000, 0x2000, 0x0000_1000_0000_0000, 0x0000_7000_0020_0000];
        for &page in &pages {
            let frame = frame_allocator::alloc_zeroed().ok_or_else(fail)?;
            space
                .map_4k(page, frame, PageFlags::USER | PageFlags::WRITABLE)
                .map_err(|_| fail())?;
        }
        let mut seen = [0u64; 4];
        let mut count = 0;
        space
            .walk_user_range(0, USER_HALF_END, &mut |virt, _| {
                if let Some(slot) = seen.get_mut(count) {
                    *slot = virt;
                }
                count += 1;
                Ok(())
            })
            .map_err(|_| fail())?;
        crate::check_eq!(count, 4);
        crate::check_eq!(seen, pages);
        // A range that ends inside the first page table sees only its pages.
        count = 0;
        space
            .walk_user_range(0x1000, 0x2000, &mut |_, _| {
                count += 1;
                Ok(())
            })
            .map_err(|_| fail())?;
        crate::check_eq!(count, 1);
        // Unmapping everything frees the frames and every table under the root.
        space
            .walk_user_range(0, u64::MAX, &mut |_, leaf| {
                frame_allocator::free(leaf.phys());
                leaf.clear();
                Ok(())
            })
            .map_err(|_| fail())?;
        crate::check_eq!(frame_allocator::stats().free, baseline);
        crate::check!(table(space.root)[..256].iter().all(|&e| e == 0));
        frame_allocator::free(space.root);
    }
);

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfFrames => f.write_str("out of physical frames for page tables"),
            Self::AlreadyMapped(virt) => write!(f, "{virt:#x} is already mapped"),
            Self::HugePageInTheWay(virt) => write!(f, "{virt:#x} lies inside a huge page"),
            Self::Unaligned => f.write_str("address not page aligned"),
        }
    }
}
