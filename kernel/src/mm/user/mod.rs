//! User address spaces and the only way the kernel touches user memory.
//!
//! Subsystems never see raw user addresses: a system call turns its pointer arguments into
//! `UserSlice<Read>` / `UserSlice<Write>` (Redox style: the capability is in the type) and
//! `AddressSpace` copies through them after checking every page — in the user half, mapped,
//! user-accessible, writable when written. A bad pointer is `EFAULT`, never a kernel fault, and
//! the copy goes through the direct map, so SMAP never needs to be relaxed.
//!
//! Regions are filled lazily: anonymous memory with zeroed frames, private file mappings
//! (`RegionKind::File`, what ld.so maps libraries with) with a copy of the file's page, read at
//! the first touch. The region holds the open file, so the mapping outlives the descriptor.
//!
//! Every user page comes from the frame allocator with `Urgency::User`, so user memory stops at
//! the low watermark and leaves the kernel its reserve. A page fault that finds no frame reports
//! `Resolution::OutOfMemory` and the trap handler runs the OOM killer (`mm::oom`) and retries; a
//! system call that finds none returns `ENOMEM`. The region list and other vectors whose length
//! a process chooses grow through `mm::fallible` (`ENOMEM`, never a panic).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;

use super::fallible::{try_push, try_reserve, try_vec_with_capacity};
use super::paging::{MapError, PageFlags, PageTable};
use super::{PAGE_SIZE, frame_allocator, is_ram, phys_to_virt};
use crate::errno::{EResult, Errno};

/// Frames shared copy-on-write between address spaces, with how many spaces map each. A frame
/// absent from the table belongs to exactly one address space.
static SHARED_FRAMES: crate::sync::IrqSpinLock<alloc::collections::BTreeMap<u64, u32>> =
    crate::sync::IrqSpinLock::new(alloc::collections::BTreeMap::new());

/// One address space stops using `frame`: frees it unless another one still maps it.
fn release_frame(frame: u64) {
    let mut shared = SHARED_FRAMES.lock();
    match shared.get_mut(&frame) {
        Some(owners) if *owners > 2 => *owners -= 1,
        Some(_) => {
            shared.remove(&frame);
        }
        None => {
            drop(shared);
            frame_allocator::free(frame);
        }
    }
}

fn share_frame(frame: u64) {
    *SHARED_FRAMES.lock().entry(frame).or_insert(1) += 1;
}

/// Whether `frame` is mapped by more than one address space.
fn is_shared(frame: u64) -> bool {
    SHARED_FRAMES.lock().contains_key(&frame)
}

/// One past the highest user address (the canonical lower half, less a guard page).
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
const PAGE: u64 = PAGE_SIZE as u64;

/// Access rights of a user mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    pub write: bool,
    pub execute: bool,
}

impl Protection {
    fn page_flags(self) -> PageFlags {
        let mut flags = PageFlags::PRESENT | PageFlags::USER;
        if self.write {
            flags |= PageFlags::WRITABLE;
        }
        if !self.execute {
            flags |= PageFlags::NO_EXECUTE;
        }
        flags
    }
}

/// What handling a user page fault came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The page is there now: retry the access.
    Resolved,
    /// Not a fault this address space can resolve (no region, no copy-on-write page): a signal.
    Genuine,
    /// It would be resolved, but no frame is left for user pages: the OOM killer's case.
    OutOfMemory,
}

/// Where `AddressSpace::remap` may put a mapping that grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemapTo {
    /// Only where it is (no `MREMAP_MAYMOVE`).
    InPlace,
    /// Where it is if the following range is free, else anywhere (`MREMAP_MAYMOVE`).
    Anywhere,
    /// At exactly this address, replacing what is there (`MREMAP_FIXED`).
    Fixed(u64),
}

/// What a region of an address space holds (for `/proc/<pid>/maps` and the TUI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A segment of the executable.
    Image,
    /// `brk`'s heap.
    Heap,
    Stack,
    /// `mmap(MAP_ANONYMOUS)`.
    Anonymous,
    /// A private mapping of a file (`mmap` with a file descriptor): shared libraries, mostly.
    File,
}

/// Where a file mapping's pages come from: the open file (kept open as long as the mapping
/// exists, as Linux's `vm_file`) and the file offset of the region's first byte.
#[derive(Clone)]
pub struct FileMapping {
    pub file: Arc<crate::fs::file::OpenFile>,
    pub offset: u64,
}

impl FileMapping {
    /// The same file, `by` bytes further on (the part of a region after a split).
    fn advanced(&self, by: u64) -> Self {
        Self {
            file: Arc::clone(&self.file),
            offset: self.offset + by,
        }
    }

    /// Whether `next` continues this mapping `len` bytes on (same file, contiguous offsets).
    fn continues_into(&self, len: u64, next: &Self) -> bool {
        Arc::ptr_eq(&self.file, &next.file) && self.offset + len == next.offset
    }
}

impl PartialEq for FileMapping {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset
    }
}

impl Eq for FileMapping {}

impl core::fmt::Debug for FileMapping {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileMapping")
            .field("path", &self.file.opened_path())
            .field("offset", &self.offset)
            .finish()
    }
}

/// A range of user addresses the process may touch; its pages are allocated on first use
/// (zeroed, or read from the file of a file mapping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub protection: Protection,
    pub kind: RegionKind,
    /// The file behind a `RegionKind::File` region; `None` for every other kind.
    pub file: Option<FileMapping>,
}

impl Region {
    /// The piece `[start, end)` of this region (which must lie inside it), with its file
    /// offset moved along.
    fn slice(&self, start: u64, end: u64) -> Self {
        Self {
            start,
            end,
            protection: self.protection,
            kind: self.kind,
            file: self.file.as_ref().map(|f| f.advanced(start - self.start)),
        }
    }

    /// What `/proc/<pid>/maps` names it: the file's path, `[heap]`, `[stack]`, the
    /// executable's name for its segments (`image_name`), nothing for anonymous memory.
    pub fn name<'a>(&'a self, image_name: &'a str) -> &'a str {
        match self.kind {
            RegionKind::Heap => "[heap]",
            RegionKind::Stack => "[stack]",
            RegionKind::Image => image_name,
            RegionKind::Anonymous => "",
            RegionKind::File => self
                .file
                .as_ref()
                .and_then(|f| f.file.opened_path())
                .unwrap_or(""),
        }
    }
}

/// A process's memory: its page table, the regions it may use, and `brk`/`mmap` bookkeeping.
pub struct AddressSpace {
    table: PageTable,
    /// Sorted, non-overlapping.
    regions: Vec<Region>,
    /// Program break: `[brk_start, brk)` is the heap `brk(2)` manages.
    pub brk_start: u64,
    pub brk: u64,
    /// Where the next `mmap` without a hint goes (downwards).
    pub mmap_top: u64,
    /// Frames mapped in the user half (for /proc and the TUI).
    pub resident_pages: usize,
    /// Where `execve` put the argument and environment strings (Linux's `mm->arg_start` and
    /// friends): `/proc/<pid>/cmdline` and `environ` read them back from here.
    pub arguments: core::ops::Range<u64>,
    pub environment: core::ops::Range<u64>,
}

/// Bytes of one kind of region: how much is mapped (`VmSize`) and how much is in RAM (`VmRSS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionUsage {
    pub size: u64,
    pub resident: u64,
}

/// A process's memory by region kind, as `/proc/<pid>/status`, `ps` and the TUI show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub image: RegionUsage,
    pub heap: RegionUsage,
    pub stack: RegionUsage,
    pub anonymous: RegionUsage,
    /// File mappings (shared libraries).
    pub file: RegionUsage,
}

impl MemoryUsage {
    pub fn total(&self) -> RegionUsage {
        let all = [self.image, self.heap, self.stack, self.anonymous, self.file];
        RegionUsage {
            size: all.iter().map(|r| r.size).sum(),
            resident: all.iter().map(|r| r.resident).sum(),
        }
    }

    fn of_kind(&mut self, kind: RegionKind) -> &mut RegionUsage {
        match kind {
            RegionKind::Image => &mut self.image,
            RegionKind::Heap => &mut self.heap,
            RegionKind::Stack => &mut self.stack,
            RegionKind::Anonymous => &mut self.anonymous,
            RegionKind::File => &mut self.file,
        }
    }
}

fn map_error(error: MapError) -> Errno {
    match error {
        MapError::OutOfFrames => Errno::ENOMEM,
        _ => Errno::EINVAL,
    }
}

impl AddressSpace {
    pub fn new() -> EResult<Self> {
        Ok(Self {
            table: PageTable::new_user().map_err(map_error)?,
            regions: Vec::new(),
            brk_start: 0,
            brk: 0,
            mmap_top: 0x0000_7f00_0000_0000,
            resident_pages: 0,
            arguments: 0..0,
            environment: 0..0,
        })
    }

    /// Mapped and resident bytes per region kind (one walk of the page table).
    pub fn usage(&self) -> MemoryUsage {
        let mut usage = MemoryUsage::default();
        for region in &self.regions {
            usage.of_kind(region.kind).size += region.end - region.start;
        }
        self.table.for_each_user_page(&mut |virt, _, _| {
            let index = self.regions.partition_point(|r| r.end <= virt);
            // A page outside every region (none should exist) counts as anonymous memory.
            let kind = self
                .regions
                .get(index)
                .filter(|r| r.start <= virt)
                .map_or(RegionKind::Anonymous, |r| r.kind);
            usage.of_kind(kind).resident += PAGE;
        });
        usage
    }

    /// What the OOM killer reports and weighs: `(total_vm, anon_rss, file_rss, page_tables)`
    /// in bytes. Page tables are counted from the present pages (one per 2 MiB, 1 GiB and
    /// 512 GiB span holding one, plus the root); no allocation.
    pub fn footprint(&self) -> (u64, u64, u64, u64) {
        let usage = self.usage();
        let total = usage.total();
        let mut tables = 1u64;
        let mut last = [u64::MAX; 3];
        self.table.for_each_user_page(&mut |virt, _, _| {
            for (level, shift) in [21u32, 30, 39].into_iter().enumerate() {
                if virt >> shift != last[level] {
                    last[level] = virt >> shift;
                    tables += 1;
                }
            }
        });
        (
            total.size,
            total.resident - usage.file.resident,
            usage.file.resident,
            tables * PAGE,
        )
    }

    /// Makes this address space the CPU's.
    pub fn activate(&self) {
        // SAFETY: the table comes from `PageTable::new_user` (kernel half shared) and lives as
        // long as `self`; callers switch away before dropping it.
        unsafe { self.table.activate() };
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Removes `[start, end)` from the region list, splitting regions that straddle it; in
    /// place, so it allocates only when one region is split in two (`ENOMEM`, and no change,
    /// if the list cannot grow then).
    fn cut_regions(&mut self, start: u64, end: u64) -> EResult<()> {
        if self.regions.iter().any(|r| r.start < start && r.end > end) {
            try_reserve(&mut self.regions, 1)?;
        }
        let mut index = self.regions.partition_point(|r| r.end <= start);
        while let Some(region) = self.regions.get(index) {
            if region.start >= end {
                break;
            }
            if region.start < start && region.end > end {
                let tail = region.slice(end, region.end);
                self.regions[index] = region.slice(region.start, start);
                self.regions.insert(index + 1, tail);
                break;
            } else if region.start < start {
                self.regions[index] = region.slice(region.start, start);
                index += 1;
            } else if region.end > end {
                self.regions[index] = region.slice(end, region.end);
                break;
            } else {
                self.regions.remove(index);
            }
        }
        Ok(())
    }

    /// Makes `[start, start + len)` usable with `protection`; pages are allocated (zeroed) on
    /// first touch. Replaces whatever regions were there (`MAP_FIXED` semantics); pages already
    /// present keep their contents and get the new rights.
    pub fn reserve(
        &mut self,
        start: u64,
        len: u64,
        protection: Protection,
        kind: RegionKind,
    ) -> EResult<()> {
        self.insert_region(start, len, protection, kind, None)
    }

    /// `reserve` for a private file mapping: the pages are read from `file` (from `offset` on)
    /// when first touched; the part of the last page past the end of the file reads as zeroes.
    pub fn map_file(
        &mut self,
        start: u64,
        len: u64,
        protection: Protection,
        file: FileMapping,
    ) -> EResult<()> {
        self.insert_region(start, len, protection, RegionKind::File, Some(file))
    }

    fn insert_region(
        &mut self,
        start: u64,
        len: u64,
        protection: Protection,
        kind: RegionKind,
        file: Option<FileMapping>,
    ) -> EResult<()> {
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !start.is_multiple_of(PAGE) || end > USER_END || start < PAGE {
            return Err(Errno::EINVAL);
        }
        self.cut_regions(start, end)?;
        let at = self.regions.partition_point(|r| r.start < start);
        // Anonymous memory right after or before alike anonymous memory extends it (as Linux
        // merges VMAs): a `brk` or `mmap` loop keeps one region instead of one per call.
        if file.is_none()
            && let Some(previous) = at.checked_sub(1).and_then(|i| self.regions.get_mut(i))
            && previous.end == start
            && previous.kind == kind
            && previous.protection == protection
            && previous.file.is_none()
            && matches!(kind, RegionKind::Heap | RegionKind::Anonymous)
        {
            previous.end = end;
            return self.apply_protection(start, end, protection);
        }
        if file.is_none()
            && let Some(next) = self.regions.get_mut(at)
            && next.start == end
            && next.kind == kind
            && next.protection == protection
            && next.file.is_none()
            && matches!(kind, RegionKind::Heap | RegionKind::Anonymous)
        {
            next.start = start;
            return self.apply_protection(start, end, protection);
        }
        try_reserve(&mut self.regions, 1)?;
        self.regions.insert(
            at,
            Region {
                start,
                end,
                protection,
                kind,
                file,
            },
        );
        self.apply_protection(start, end, protection)
    }

    /// Turns the region that is exactly `[start, end)` into a mapping of `file` (a segment the
    /// ELF loader copied in: every page is present, so this only names it, as Linux's
    /// `/proc/<pid>/maps` names ld.so).
    pub fn attribute_to_file(&mut self, start: u64, end: u64, file: FileMapping) {
        if let Some(region) = self
            .regions
            .iter_mut()
            .find(|r| r.start == start && r.end == end)
        {
            region.kind = RegionKind::File;
            region.file = Some(file);
        }
    }

    /// Whether any region overlaps `[start, start + len)` (`MAP_FIXED_NOREPLACE`).
    pub fn is_range_used(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        self.regions.iter().any(|r| r.start < end && start < r.end)
    }

    /// Like `reserve` (an executable segment), with the pages of its first `present` bytes
    /// allocated now, for the loader to copy the file's bytes into; the rest (the bss past the
    /// file's last page) is allocated zeroed on first touch, like any anonymous memory, so
    /// loading costs what the file holds, not what the segment claims.
    pub fn map_zeroed(
        &mut self,
        start: u64,
        len: u64,
        present: u64,
        protection: Protection,
    ) -> EResult<()> {
        // Two segments can share a page: widen, never narrow, the rights of what is there.
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut merged = protection;
        for region in self
            .regions
            .iter()
            .filter(|r| r.start < end && start < r.end)
        {
            merged.write |= region.protection.write;
            merged.execute |= region.protection.execute;
        }
        self.reserve(start, len, merged, RegionKind::Image)?;
        let mut page = start;
        while page < start.saturating_add(present).min(end) {
            self.populate(page)?;
            page += PAGE;
        }
        Ok(())
    }

    /// The region holding `address`.
    fn region_at(&self, address: u64) -> Option<&Region> {
        let index = self.regions.partition_point(|r| r.end <= address);
        self.regions.get(index).filter(|r| r.start <= address)
    }

    /// Backs the page holding `address` with a zeroed frame if its region allows and it is not
    /// present yet.
    fn populate(&mut self, address: u64) -> EResult<()> {
        let page = address & !(PAGE - 1);
        if self.table.translate(page).is_some() {
            return Ok(());
        }
        let region = self.region_at(page).ok_or(Errno::EFAULT)?;
        let protection = region.protection;
        let file = region
            .file
            .as_ref()
            .map(|f| (Arc::clone(&f.file), f.offset + (page - region.start)));
        let frame = frame_allocator::alloc_user_zeroed().ok_or(Errno::ENOMEM)?;
        if let Some((file, offset)) = file {
            // SAFETY: `frame` is a fresh RAM frame in the direct map that nothing else refers
            // to yet; the slice lives only for this read.
            let contents = unsafe {
                core::slice::from_raw_parts_mut(phys_to_virt(frame) as *mut u8, PAGE_SIZE)
            };
            // Past the end of the file the page stays zero (Linux raises SIGBUS for whole pages
            // beyond the end; a zero page is what the bytes after the end of the last page are
            // anyway). The read happens under this address space's lock: files are in memory
            // (tmpfs), their locks never wait for an address space, so this cannot deadlock.
            if let Err(error) = file.read_for_mapping(offset, contents) {
                frame_allocator::free(frame);
                return Err(error);
            }
        }
        if let Err(error) = self.table.map_4k(page, frame, protection.page_flags()) {
            frame_allocator::free(frame);
            return Err(map_error(error));
        }
        self.resident_pages += 1;
        Ok(())
    }

    /// A user access to a page that is not present: allocate it if a region covers it.
    pub fn resolve_missing_page(&mut self, address: u64) -> Resolution {
        if address >= USER_END {
            return Resolution::Genuine;
        }
        match self.populate(address) {
            Ok(()) => Resolution::Resolved,
            Err(Errno::ENOMEM) => Resolution::OutOfMemory,
            Err(_) => Resolution::Genuine,
        }
    }

    /// Gives the present pages of `[start, end)` the rights `protection` (copy-on-write pages
    /// stay read-only until their fault makes them private).
    fn apply_protection(&mut self, start: u64, end: u64, protection: Protection) -> EResult<()> {
        self.table
            .walk_user_range(start, end, &mut |page, leaf| {
                let mut flags = protection.page_flags();
                if leaf.flags().contains(PageFlags::COPY_ON_WRITE) {
                    flags |= PageFlags::COPY_ON_WRITE;
                    if flags.contains(PageFlags::WRITABLE) {
                        flags.remove(PageFlags::WRITABLE);
                        flags |= PageFlags::LOGICALLY_WRITABLE;
                    }
                }
                leaf.set_flags(flags);
                PageTable::flush(page);
                Ok(())
            })
            .map_err(map_error)
    }

    /// `mprotect`: changes the rights of `[start, start + len)`; `ENOMEM` (and no change) if part
    /// of it is not in any region, as Linux.
    pub fn protect(&mut self, start: u64, len: u64, protection: Protection) -> EResult<()> {
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !start.is_multiple_of(PAGE) || end > USER_END {
            return Err(Errno::EINVAL);
        }
        let mut cursor = start;
        while cursor < end {
            let region = self.region_at(cursor).ok_or(Errno::ENOMEM)?;
            cursor = region.end;
        }
        let mut affected: Vec<Region> = try_vec_with_capacity(4)?;
        for r in self
            .regions
            .iter()
            .filter(|r| r.start < end && start < r.end)
        {
            let piece = Region {
                protection,
                ..r.slice(r.start.max(start), r.end.min(end))
            };
            try_push(&mut affected, piece)?;
        }
        self.cut_regions(start, end)?;
        try_reserve(&mut self.regions, affected.len())?;
        for region in affected {
            let at = self.regions.partition_point(|r| r.start < region.start);
            self.regions.insert(at, region);
        }
        self.apply_protection(start, end, protection)
    }

    /// `munmap`: forgets `[start, start + len)` and frees its pages.
    pub fn unmap(&mut self, start: u64, len: u64) -> EResult<()> {
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        if !start.is_multiple_of(PAGE) || end > USER_END {
            return Err(Errno::EINVAL);
        }
        self.cut_regions(start, end)?;
        let mut released = 0;
        let walked = self.table.walk_user_range(start, end, &mut |page, leaf| {
            let phys = leaf.phys();
            leaf.clear();
            PageTable::flush(page);
            release_frame(phys);
            released += 1;
            Ok(())
        });
        self.resident_pages -= released;
        walked.map_err(map_error)
    }

    /// An address for a new mapping of `len` bytes without a hint: right below the previous one
    /// (as Linux places them, so that alike anonymous mappings merge into one region and an
    /// `mmap` loop does not grow the region list), never into the 1 GiB `brk` may grow into.
    pub fn pick_mmap_address(&mut self, len: u64) -> EResult<u64> {
        let start = self.mmap_top.checked_sub(len).ok_or(Errno::ENOMEM)?;
        if start <= self.brk_start + (1 << 30) {
            return Err(Errno::ENOMEM);
        }
        self.mmap_top = start;
        Ok(start)
    }

    /// The mapping holding `address` as Linux would see it: adjacent regions with the same
    /// rights and kind are one mapping there (Linux merges such VMAs; this list keeps them apart,
    /// for example after a mapping grew in place).
    fn mapping_at(&self, address: u64) -> Option<Region> {
        let index = self.regions.partition_point(|r| r.end <= address);
        let mut mapping = self
            .regions
            .get(index)
            .filter(|r| r.start <= address)?
            .clone();
        // Adjacent and alike: same rights and kind and, for files, the same file at contiguous
        // offsets.
        let joins = |first: &Region, second: &Region| {
            first.end == second.start
                && first.protection == second.protection
                && first.kind == second.kind
                && match (&first.file, &second.file) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.continues_into(first.end - first.start, b),
                    _ => false,
                }
        };
        for region in self.regions[..index].iter().rev() {
            if !joins(region, &mapping) {
                break;
            }
            mapping.start = region.start;
            mapping.file = region.file.clone();
        }
        for region in &self.regions[index + 1..] {
            if !joins(&mapping, region) {
                break;
            }
            mapping.end = region.end;
        }
        Some(mapping)
    }

    /// `mremap`: resizes the mapping at `[old, old + old_len)` to `new_len` bytes (all page
    /// multiples, `new_len` not 0), in place or — as `to` allows — elsewhere; returns where it
    /// is now. Pages move with their page-table entries, so contents (and copy-on-write sharing
    /// with other address spaces) go along without a copy. Errors as Linux: `EFAULT` if `old`
    /// is not mapped or the old range runs past its mapping, `ENOMEM` if it cannot grow where it
    /// is and may not move, `EINVAL` for overlapping or out-of-range fixed targets.
    pub fn remap(&mut self, old: u64, old_len: u64, new_len: u64, to: RemapTo) -> EResult<u64> {
        self.mapping_at(old).ok_or(Errno::EFAULT)?;
        let mut old_len = old_len;
        if let RemapTo::Fixed(new) = to {
            let new_end = new.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if !new.is_multiple_of(PAGE) || new_end > USER_END {
                return Err(Errno::EINVAL);
            }
            if old.saturating_add(old_len) > new && new_end > old {
                return Err(Errno::EINVAL);
            }
            self.unmap(new, new_len)?;
            if old_len > new_len {
                self.unmap(old + new_len, old_len - new_len)?;
                old_len = new_len;
            }
        } else if old_len >= new_len {
            // Shrinking always works: the tail is simply unmapped.
            self.unmap(old + new_len, old_len - new_len)?;
            return Ok(old);
        }
        // Linux: duplicating a private mapping (old length 0) makes no sense.
        if old_len == 0 {
            return Err(Errno::EINVAL);
        }
        let mapping = self.mapping_at(old).ok_or(Errno::EFAULT)?;
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        if old_end > mapping.end {
            return Err(Errno::EFAULT);
        }
        let new = match to {
            RemapTo::Fixed(new) => new,
            RemapTo::InPlace | RemapTo::Anywhere => {
                let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
                let free = grown_end <= USER_END
                    && !self
                        .regions
                        .iter()
                        .any(|r| r.start < grown_end && old_end < r.end);
                if old_end == mapping.end && free {
                    let growth = new_len - old_len;
                    let file = mapping
                        .file
                        .as_ref()
                        .map(|f| f.advanced(old_end - mapping.start));
                    self.insert_region(old_end, growth, mapping.protection, mapping.kind, file)?;
                    return Ok(old);
                }
                if to == RemapTo::InPlace {
                    return Err(Errno::ENOMEM);
                }
                self.pick_mmap_address(new_len)?
            }
        };
        let file = mapping
            .file
            .as_ref()
            .map(|f| f.advanced(old - mapping.start));
        self.insert_region(new, new_len, mapping.protection, mapping.kind, file)?;
        if let Err(error) = self.move_pages(old, new, old_len) {
            let _ = self.cut_regions(new, new + new_len);
            return Err(error);
        }
        self.unmap(old, old_len)?;
        Ok(new)
    }

    /// Moves the present pages of `[from, from + len)` to the same offsets at `to` (where
    /// nothing is mapped), frames and flags unchanged: the frame stays this address space's,
    /// so neither the resident count nor copy-on-write sharing changes. All or nothing: if a
    /// page table for the target cannot be allocated, the pages moved so far go back (their
    /// old tables still exist, so that cannot fail).
    fn move_pages(&mut self, from: u64, to: u64, len: u64) -> EResult<()> {
        // The present pages first (a walk of what is mapped, not of `len`), then the moves:
        // they change the table the walk would be reading.
        let mut present: Vec<(u64, u64, PageFlags)> = Vec::new();
        self.table
            .walk_user_range(from, from.saturating_add(len), &mut |page, leaf| {
                // Out of heap is ENOMEM, as out of frames is (`map_error`).
                present.try_reserve(1).map_err(|_| MapError::OutOfFrames)?;
                present.push((page - from, leaf.phys(), leaf.flags()));
                Ok(())
            })
            .map_err(map_error)?;
        for (done, &(offset, phys, flags)) in present.iter().enumerate() {
            self.table.unmap_4k(from + offset).map_err(map_error)?;
            if let Err(error) = self.table.map_4k(to + offset, phys, flags) {
                let _ = self.table.map_4k(from + offset, phys, flags);
                for &(offset, phys, flags) in &present[..done] {
                    let _ = self.table.unmap_4k(to + offset);
                    let _ = self.table.map_4k(from + offset, phys, flags);
                }
                // Frees the tables made for the target that are empty again.
                let _ = self
                    .table
                    .walk_user_range(to, to.saturating_add(len), &mut |_, _| Ok(()));
                return Err(map_error(error));
            }
            PageTable::flush(from + offset);
        }
        Ok(())
    }

    /// A copy for `fork`, copy-on-write: both address spaces map the same frames read-only,
    /// and the first write to a page (by either side) gives the writer its own copy
    /// (`resolve_write_fault`).
    pub fn duplicate(&mut self) -> EResult<Self> {
        let mut copy = Self::new()?;
        try_reserve(&mut copy.regions, self.regions.len())?;
        copy.regions.extend(self.regions.iter().cloned());
        copy.brk_start = self.brk_start;
        copy.brk = self.brk;
        copy.arguments = self.arguments.clone();
        copy.environment = self.environment.clone();
        copy.mmap_top = self.mmap_top;
        let copy_table = &mut copy.table;
        let mut copied = 0;
        let walked = self.table.walk_user_range(0, USER_END, &mut |virt, leaf| {
            let (phys, mut flags) = (leaf.phys(), leaf.flags());
            if flags.contains(PageFlags::WRITABLE) {
                flags.remove(PageFlags::WRITABLE);
                flags |= PageFlags::LOGICALLY_WRITABLE;
            }
            flags |= PageFlags::COPY_ON_WRITE;
            copy_table.map_4k(virt, phys, flags)?;
            copied += 1;
            share_frame(phys);
            leaf.set_flags(flags);
            PageTable::flush(virt);
            Ok(())
        });
        copy.resident_pages += copied;
        walked.map_err(map_error)?;
        Ok(copy)
    }

    /// A write to a copy-on-write page: give this address space its own writable copy.
    /// `Genuine` if `address` is not such a page.
    pub fn resolve_write_fault(&mut self, address: u64) -> Resolution {
        let page = address & !(PAGE - 1);
        let Some((phys, flags)) = self.table.translate(page) else {
            return Resolution::Genuine;
        };
        if !flags.contains(PageFlags::COPY_ON_WRITE | PageFlags::LOGICALLY_WRITABLE) {
            return Resolution::Genuine;
        }
        let phys = phys & !(PAGE - 1);
        let target = if is_shared(phys) {
            let Some(frame) = frame_allocator::alloc_user() else {
                return Resolution::OutOfMemory;
            };
            // SAFETY: both frames are RAM in the direct map; `frame` is fresh and private.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(phys) as *const u8,
                    phys_to_virt(frame) as *mut u8,
                    PAGE_SIZE,
                )
            };
            release_frame(phys);
            frame
        } else {
            // The other sharers are gone: the frame is ours already.
            phys
        };
        let writable = (flags - PageFlags::COPY_ON_WRITE - PageFlags::LOGICALLY_WRITABLE)
            | PageFlags::WRITABLE;
        // Unmapping a present page and mapping it again needs no new page table.
        if self.table.unmap_4k(page).is_err() || self.table.map_4k(page, target, writable).is_err()
        {
            return Resolution::Genuine;
        }
        PageTable::flush(page);
        Resolution::Resolved
    }

    /// The physical address behind user address `address`, if mapped with at least `need`.
    fn resolve(&self, address: u64, need: PageFlags) -> EResult<u64> {
        if address >= USER_END {
            return Err(Errno::EFAULT);
        }
        let (phys, flags) = self.table.translate(address).ok_or(Errno::EFAULT)?;
        if !flags.contains(need | PageFlags::USER) || !is_ram(phys, 1) {
            return Err(Errno::EFAULT);
        }
        Ok(phys)
    }

    /// Walks `[address, address + len)` page by page: `f(phys, offset_in_buffer, chunk_len)`.
    fn for_each_chunk(
        &self,
        address: u64,
        len: usize,
        need: PageFlags,
        mut f: impl FnMut(u64, usize, usize),
    ) -> EResult<()> {
        let end = address.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if end > USER_END {
            return Err(Errno::EFAULT);
        }
        // Check everything first, so a failed copy has no effect.
        let mut cursor = address;
        while cursor < end {
            self.resolve(cursor, need)?;
            cursor = (cursor | (PAGE - 1)) + 1;
        }
        let mut done = 0usize;
        let mut cursor = address;
        while cursor < end {
            let chunk = (((cursor | (PAGE - 1)) + 1).min(end) - cursor) as usize;
            f(self.resolve(cursor, need)?, done, chunk);
            done += chunk;
            cursor += chunk as u64;
        }
        Ok(())
    }

    /// Copies user memory into `out`.
    pub fn read(&mut self, from: UserSlice<Read>, out: &mut [u8]) -> EResult<()> {
        if out.len() != from.len {
            return Err(Errno::EINVAL);
        }
        self.populate_range(from.address, from.len)?;
        self.for_each_chunk(
            from.address,
            from.len,
            PageFlags::PRESENT,
            |phys, at, len| {
                // SAFETY: `phys..phys + len` is user RAM inside one page (checked), reached through
                // the direct map; `out` is a distinct kernel buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        phys_to_virt(phys) as *const u8,
                        out[at..].as_mut_ptr(),
                        len,
                    )
                }
            },
        )
    }

    /// Copies `data` into user memory (breaking copy-on-write sharing like a user write would).
    pub fn write(&mut self, to: UserSlice<Write>, data: &[u8]) -> EResult<()> {
        if data.len() != to.len {
            return Err(Errno::EINVAL);
        }
        self.unshare(to.address, to.len)?;
        self.for_each_chunk(to.address, to.len, PageFlags::WRITABLE, |phys, at, len| {
            // SAFETY: as in `read`, with the page checked writable by the user.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data[at..].as_ptr(),
                    phys_to_virt(phys) as *mut u8,
                    len,
                )
            }
        })
    }

    /// How many bytes from `address` on (at most `len`) the user could write: the range up to
    /// the first page that is unmapped or read-only. A transfer that consumes its source (a
    /// pipe, a directory position) moves only that much, so what could not be copied stays
    /// where it was, as in Linux, where the copy stops at the fault.
    pub fn writable_prefix(&mut self, address: u64, len: usize) -> usize {
        let end = address.saturating_add(len as u64).min(USER_END);
        let mut cursor = address;
        while cursor < end {
            let page = cursor & !(PAGE - 1);
            let _ = self.populate(page);
            self.resolve_write_fault(page);
            if self.resolve(page, PageFlags::WRITABLE).is_err() {
                break;
            }
            cursor = page + PAGE;
        }
        (cursor.min(end) - address.min(end)) as usize
    }

    /// Makes every copy-on-write page in the range private (before the kernel writes it);
    /// `ENOMEM` if a page cannot be had (a system call does not run the OOM killer).
    fn unshare(&mut self, address: u64, len: usize) -> EResult<()> {
        self.populate_range(address, len)?;
        let end = address.saturating_add(len as u64).min(USER_END);
        let mut page = address & !(PAGE - 1);
        while page < end {
            if self.resolve_write_fault(page) == Resolution::OutOfMemory {
                return Err(Errno::ENOMEM);
            }
            page += PAGE;
        }
        Ok(())
    }

    /// Allocates the not-yet-touched pages of the range that regions allow (the kernel touching
    /// user memory must see what a user access would). `ENOMEM` if memory ran out; pages no
    /// region allows are left for the copy to report (`EFAULT`).
    fn populate_range(&mut self, address: u64, len: usize) -> EResult<()> {
        let end = address.saturating_add(len as u64).min(USER_END);
        let mut page = address & !(PAGE - 1);
        while page < end {
            if self.populate(page) == Err(Errno::ENOMEM) {
                return Err(Errno::ENOMEM);
            }
            page += PAGE;
        }
        Ok(())
    }

    /// Writes `data` at `address` regardless of the page's user rights (loading an executable
    /// into read-only segments, building the initial stack).
    pub fn load(&mut self, address: u64, data: &[u8]) -> EResult<()> {
        self.unshare(address, data.len())?;
        self.for_each_chunk(address, data.len(), PageFlags::PRESENT, |phys, at, len| {
            // SAFETY: as in `read`; the kernel is initialising pages it just mapped.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data[at..].as_ptr(),
                    phys_to_virt(phys) as *mut u8,
                    len,
                )
            }
        })
    }

    /// Reads a NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond).
    pub fn read_c_string(&mut self, address: u64, max: usize) -> EResult<String> {
        let mut bytes = Vec::new();
        let mut cursor = address;
        loop {
            let mut byte = [0u8];
            self.read(UserSlice::new(cursor, 1)?, &mut byte)?;
            if byte[0] == 0 {
                break;
            }
            if bytes.len() == max {
                return Err(Errno::ENAMETOOLONG);
            }
            try_push(&mut bytes, byte[0])?;
            cursor += 1;
        }
        String::from_utf8(bytes).map_err(|_| Errno::EINVAL)
    }

    /// Reads one `u64` (argv/envp pointer arrays).
    pub fn read_u64(&mut self, address: u64) -> EResult<u64> {
        let mut bytes = [0u8; 8];
        self.read(UserSlice::new(address, 8)?, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

/// `/proc/<pid>/maps` (and gdb's `monitor maps`): one line per region in Linux's format. File
/// mappings show their file's offset, device, inode and path; the executable's segments (copied
/// in by `execve`, not mapped) are named `image_name` with offset, device and inode zero.
pub fn write_maps(space: &AddressSpace, image_name: &str, out: &mut dyn core::fmt::Write) {
    for region in space.regions() {
        let name = region.name(image_name);
        let (offset, device, inode) = match &region.file {
            Some(mapping) => {
                let meta = mapping.file.metadata();
                (mapping.offset, meta.dev, meta.ino)
            }
            None => (0, crate::fs::metadata::DeviceId::new(0, 0), 0),
        };
        let line = alloc::format!(
            "{:08x}-{:08x} r{}{}p {offset:08x} {:02x}:{:02x} {inode}",
            region.start,
            region.end,
            if region.protection.write { 'w' } else { '-' },
            if region.protection.execute { 'x' } else { '-' },
            device.major,
            device.minor,
        );
        // Linux pads the name to start in column 74.
        let _ = if name.is_empty() {
            writeln!(out, "{line}")
        } else {
            writeln!(out, "{line:<73}{name}")
        };
    }
}

impl AddressSpace {
    /// Gives back every user page and page table now (Linux's `exit_mm`): an exiting process
    /// frees its memory before its parent reaps it, which is what lets the OOM killer's victim
    /// make room. The address space is empty but usable afterwards; it must be the CPU's or
    /// no CPU's (the TLB is flushed by reloading CR3 if it is active).
    pub fn release_user_memory(&mut self) {
        self.free_user_pages();
        self.regions = Vec::new();
        self.resident_pages = 0;
        self.brk_start = 0;
        self.brk = 0;
        if crate::arch::x86_64::cpu::read_cr3() & !(PAGE - 1) == self.table.root_phys() {
            self.activate();
        }
    }

    fn free_user_pages(&mut self) {
        self.table.free_user_half(&mut |frame| {
            // Frames still shared with another address space stay; the last owner frees them.
            let mut shared = SHARED_FRAMES.lock();
            match shared.get_mut(&frame) {
                Some(owners) if *owners > 2 => {
                    *owners -= 1;
                    true
                }
                Some(_) => {
                    shared.remove(&frame);
                    true
                }
                None => false,
            }
        });
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        self.free_user_pages();
        frame_allocator::free(self.table.root_phys());
    }
}

/// Marker: the kernel may read through this slice.
pub struct Read;
/// Marker: the kernel may write through this slice.
pub struct Write;

/// A range of user memory with the right to read or write it, checked for being in the user
/// half when made; mapping and rights are checked on every copy.
pub struct UserSlice<Access> {
    address: u64,
    len: usize,
    access: PhantomData<Access>,
}

impl<Access> UserSlice<Access> {
    pub fn new(address: u64, len: usize) -> EResult<Self> {
        let end = address.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if end > USER_END {
            return Err(Errno::EFAULT);
        }
        Ok(Self {
            address,
            len,
            access: PhantomData,
        })
    }
}
