//! The tracker's fixed-size tables, taken from the frame allocator once at boot.
//!
//! The tracker watches the kernel heap, so it must never allocate from it: a table that grew
//! through `alloc` would recurse into the tracker and could not be scanned consistently. Every
//! table is therefore a run of frames sized by the constants below, reached through the direct
//! map (outside `.data`/`.bss`, so the leak scanner never mistakes the tracker's own records for
//! references). The memory cost is fixed and documented in docs/leak-tracking.md:
//!
//! | table | entries | bytes each |
//! |---|---|---|
//! | objects (the live-allocation pool) | `OBJECT_CAPACITY` | 40 |
//! | object index (open addressing, linear probing, backward-shift deletion) | `2 * OBJECT_CAPACITY` | 4 |
//! | call sites (deduplicated stacks, never deleted) | `SITE_CAPACITY` | 112 |
//! | grey list (the scan's work stack) | `OBJECT_CAPACITY` | 4 |
//! | free history (for double-free reports) | `HISTORY` | 64 |

use core::mem::size_of;

use crate::mm::{PAGE_SIZE, frame_allocator, phys_to_virt};

pub const OBJECT_CAPACITY: usize = 32 * 1024;
const INDEX_SLOTS: usize = 2 * OBJECT_CAPACITY;
const INDEX_BITS: u32 = INDEX_SLOTS.trailing_zeros();
pub const SITE_CAPACITY: usize = 4096;
/// Sites stop being added at 3/4 load; later new stacks are charged to the overflow site.
pub const SITE_LIMIT: usize = SITE_CAPACITY * 3 / 4;
/// Raw return addresses kept per call site (allocator frames included; reports skip those).
pub const SITE_DEPTH: usize = 10;
pub const HISTORY: usize = 256;
/// Raw return addresses kept per free in the history.
pub const FREE_DEPTH: usize = 4;
/// The site id that collects allocations whose stack did not fit in the site table.
pub const OVERFLOW_SITE: u32 = 0;

const _: () = assert!(
    INDEX_SLOTS.is_power_of_two() && SITE_CAPACITY.is_power_of_two() && HISTORY.is_power_of_two()
);
const _: () = assert!(size_of::<Object>() == 40 && size_of::<Site>() == 32 + 8 * SITE_DEPTH);

/// Object flags.
pub const GREY: u8 = 1 << 0;
/// Found unreferenced by the last scan.
pub const UNREFERENCED: u8 = 1 << 1;
/// Already counted as a new leak by a scan (kmemleak's OBJECT_REPORTED).
pub const REPORTED: u8 = 1 << 2;
/// Never reported, still scanned (kmemleak_not_leak): set by `clear` and `ignore=`.
pub const IGNORED: u8 = 1 << 3;

/// One live allocation. A free pool entry has `addr == 0` and links to the next in `seq`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Object {
    pub addr: u64,
    pub seq: u64,
    pub size: u64,
    /// `time::ticks()` at allocation, truncated (wraps after 497 days at 100 Hz).
    pub jiffies: u32,
    pub site: u32,
    pub pid: u32,
    pub flags: u8,
    pub align_shift: u8,
    pub pad: u16,
}

/// A deduplicated allocation stack and what is currently live from it.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Site {
    /// 0: empty slot.
    pub hash: u64,
    pub frames: [u64; SITE_DEPTH],
    pub depth: u32,
    pub live_count: u32,
    pub live_bytes: u64,
    pub allocs: u64,
}

impl Site {
    pub fn frames(&self) -> &[u64] {
        &self.frames[..(self.depth as usize).min(SITE_DEPTH)]
    }
}

/// A recent free: enough to name the allocation and the first free when a block is freed again.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Freed {
    pub addr: u64,
    pub size: u64,
    pub seq: u64,
    pub site: u32,
    pub depth: u32,
    pub frames: [u64; FREE_DEPTH],
}

/// Plain-integer types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implementors must be valid when zeroed and contain no pointers or references.
unsafe trait Zeroable {}
// SAFETY: integers and `repr(C)` structs of integers.
unsafe impl Zeroable for u32 {}
// SAFETY: as above.
unsafe impl Zeroable for Object {}
// SAFETY: as above.
unsafe impl Zeroable for Site {}
// SAFETY: as above.
unsafe impl Zeroable for Freed {}

/// Takes zeroed frames for `count` values of `T`; adds the frames used to `frames`.
fn take<T: Zeroable>(count: usize, frames: &mut usize) -> Option<&'static mut [T]> {
    let run = (count * size_of::<T>()).div_ceil(PAGE_SIZE);
    let phys = frame_allocator::alloc_contiguous(run, 1)?;
    let ptr = phys_to_virt(phys) as *mut T;
    // SAFETY: the run was just allocated for this table, is RAM under the direct map, large and
    // aligned enough for `count` values of `T`; zeroed bytes are valid `T`s (`Zeroable`), and the
    // frames are never freed, so the slice may live forever.
    let table = unsafe {
        core::ptr::write_bytes(ptr.cast::<u8>(), 0, run * PAGE_SIZE);
        core::slice::from_raw_parts_mut(ptr, count)
    };
    *frames += run;
    Some(table)
}

/// Bytes of frames the tables take (what `Tables::new` asks the frame allocator for).
pub const fn overhead_bytes() -> usize {
    const fn frames(bytes: usize) -> usize {
        bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE
    }
    frames(OBJECT_CAPACITY * size_of::<Object>())
        + frames(INDEX_SLOTS * size_of::<u32>())
        + frames(SITE_CAPACITY * size_of::<Site>())
        + frames(OBJECT_CAPACITY * size_of::<u32>())
        + frames(HISTORY * size_of::<Freed>())
}

pub struct Tables {
    pub objects: &'static mut [Object],
    /// `pool index + 1` of the object whose address hashes here, 0 for an empty slot.
    index: &'static mut [u32],
    pub sites: &'static mut [Site],
    pub grey: &'static mut [u32],
    history: &'static mut [Freed],
    free_head: u32,
    history_next: usize,
    pub frames: usize,
    pub live: usize,
    pub peak: usize,
    pub sites_used: usize,
}

const NO_OBJECT: u32 = u32::MAX;

pub enum InsertError {
    Full,
    /// An object already lives at the address.
    Live,
}

#[inline(always)]
fn addr_slot(addr: u64) -> usize {
    // Fibonacci hashing of the block address (blocks are at least 16-byte aligned).
    ((addr >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - INDEX_BITS)) as usize
}

/// Hashes a stack as it is walked. Call sites are deduplicated by this 64-bit hash alone: with
/// at most `SITE_LIMIT` sites, two different stacks collide with a probability around 1e-13,
/// and comparing hashes instead of whole stacks keeps the allocation path short.
pub struct FrameHash(u64);

impl FrameHash {
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    #[inline(always)]
    pub fn push(&mut self, frame: u64) {
        self.0 = (self.0.rotate_left(5) ^ frame).wrapping_mul(0x0100_0000_01b3);
    }

    /// The hash; never 0 (an empty slot) or `u64::MAX` (the overflow site).
    #[inline(always)]
    pub fn finish(self) -> u64 {
        match self.0 {
            0 | u64::MAX => 1,
            hash => hash,
        }
    }
}

pub fn frames_hash(frames: &[u64]) -> u64 {
    let mut hash = FrameHash::new();
    frames.iter().for_each(|&f| hash.push(f));
    hash.finish()
}

impl Tables {
    pub fn new() -> Option<Self> {
        let mut frames = 0;
        let objects = take::<Object>(OBJECT_CAPACITY, &mut frames)?;
        let index = take::<u32>(INDEX_SLOTS, &mut frames)?;
        let sites = take::<Site>(SITE_CAPACITY, &mut frames)?;
        let grey = take::<u32>(OBJECT_CAPACITY, &mut frames)?;
        let history = take::<Freed>(HISTORY, &mut frames)?;
        for (i, object) in objects.iter_mut().enumerate() {
            object.seq = if i + 1 < OBJECT_CAPACITY {
                (i + 1) as u64
            } else {
                u64::from(NO_OBJECT)
            };
        }
        sites[OVERFLOW_SITE as usize].hash = u64::MAX;
        Some(Self {
            objects,
            index,
            sites,
            grey,
            history,
            free_head: 0,
            history_next: 0,
            frames,
            live: 0,
            peak: 0,
            sites_used: 1,
        })
    }

    /// Returns the tables' frames to the frame allocator (for test instances; the tracker's own
    /// tables live as long as the kernel).
    pub fn free(self) {
        fn give_back<T>(table: &'static mut [T]) {
            let run = core::mem::size_of_val(table).div_ceil(PAGE_SIZE);
            if let Some(phys) = crate::mm::virt_to_phys(table.as_ptr() as u64) {
                frame_allocator::free_contiguous(phys, run);
            }
        }
        give_back(self.objects);
        give_back(self.index);
        give_back(self.sites);
        give_back(self.grey);
        give_back(self.history);
    }

    /// The index slot and pool index of the live object starting at `addr`.
    #[inline(always)]
    pub fn lookup(&self, addr: u64) -> Option<(usize, usize)> {
        let mask = self.index.len() - 1;
        let mut slot = addr_slot(addr);
        loop {
            let entry = self.index[slot];
            if entry == 0 {
                return None;
            }
            let object = (entry - 1) as usize;
            if self.objects[object].addr == addr {
                return Some((slot, object));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Adds a live object at `addr` and returns its entry for the caller to fill in (every
    /// field but `addr` and `size` is stale). `Err(Full)` when the pool is full, `Err(Live)` if
    /// an object already lives at that address (the heap handed the same block out twice).
    #[inline(always)]
    pub fn insert(&mut self, addr: u64, size: u64) -> Result<&mut Object, InsertError> {
        let mask = self.index.len() - 1;
        let mut slot = addr_slot(addr);
        loop {
            let entry = self.index[slot];
            if entry == 0 {
                break;
            }
            if self.objects[(entry - 1) as usize].addr == addr {
                return Err(InsertError::Live);
            }
            slot = (slot + 1) & mask;
        }
        if self.free_head == NO_OBJECT {
            return Err(InsertError::Full);
        }
        let at = self.free_head as usize;
        self.free_head = self.objects[at].seq as u32;
        self.index[slot] = at as u32 + 1;
        self.live += 1;
        if self.live > self.peak {
            self.peak = self.live;
        }
        let object = &mut self.objects[at];
        object.addr = addr;
        object.size = size;
        Ok(object)
    }

    /// Removes the object found by `lookup` at (`slot`, `object`).
    #[inline(always)]
    pub fn remove(&mut self, slot: usize, object: usize) {
        let mask = self.index.len() - 1;
        // Backward-shift deletion: move later entries of the probe run into the hole unless
        // their home slot lies cyclically after the hole, so no tombstones ever accumulate.
        let mut hole = slot;
        let mut next = slot;
        loop {
            next = (next + 1) & mask;
            let entry = self.index[next];
            if entry == 0 {
                break;
            }
            let home = addr_slot(self.objects[(entry - 1) as usize].addr);
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.index[hole] = entry;
                hole = next;
            }
        }
        self.index[hole] = 0;
        let entry = &mut self.objects[object];
        self.live -= 1;
        entry.addr = 0;
        entry.flags = 0;
        entry.seq = u64::from(self.free_head);
        self.free_head = object as u32;
    }

    /// The site id for the stack with `hash`, adding it if there is room (else the overflow
    /// site); `fill` writes a new site's frames and returns how many.
    #[inline(always)]
    pub fn site_for_hash(
        &mut self,
        hash: u64,
        fill: impl FnOnce(&mut [u64; SITE_DEPTH]) -> usize,
    ) -> u32 {
        let mask = self.sites.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            let site = &mut self.sites[slot];
            if site.hash == hash {
                return slot as u32;
            }
            if site.hash == 0 {
                if self.sites_used >= SITE_LIMIT {
                    return OVERFLOW_SITE;
                }
                site.hash = hash;
                site.depth = fill(&mut site.frames) as u32;
                self.sites_used += 1;
                return slot as u32;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// `site_for_hash` for a stack at hand.
    pub fn site_for(&mut self, frames: &[u64]) -> u32 {
        self.site_for_hash(frames_hash(frames), |out| {
            let n = frames.len().min(SITE_DEPTH);
            out[..n].copy_from_slice(&frames[..n]);
            n
        })
    }

    pub fn site(&self, id: u32) -> &Site {
        &self.sites[id as usize & (self.sites.len() - 1)]
    }

    #[inline(always)]
    pub fn site_mut(&mut self, id: u32) -> &mut Site {
        let mask = self.sites.len() - 1;
        &mut self.sites[id as usize & mask]
    }

    /// The next free-history entry to overwrite.
    #[inline(always)]
    pub fn next_free_record(&mut self) -> &mut Freed {
        let at = self.history_next & (HISTORY - 1);
        self.history_next = self.history_next.wrapping_add(1);
        &mut self.history[at]
    }

    /// The most recent free of `addr` still in the history.
    pub fn last_free_of(&self, addr: u64) -> Option<Freed> {
        (1..=HISTORY.min(self.history_next))
            .map(|back| self.history[(self.history_next - back) & (HISTORY - 1)])
            .find(|f| f.addr == addr)
    }

    /// Live objects, by pool index.
    pub fn live_objects(&self) -> impl Iterator<Item = (usize, &Object)> {
        self.objects.iter().enumerate().filter(|(_, o)| o.addr != 0)
    }
}

crate::kernel_test!(leak_tables_insert_lookup_remove, {
    // A throwaway table set exercises probing and deletion without touching the live tracker.
    let Some(mut t) = Tables::new() else {
        return Err(crate::selftest::fail("no frames for test tables"));
    };
    let base = crate::mm::PHYS_OFFSET + 0x4000_0000;
    let n = 5000u64;
    for i in 0..n {
        crate::check!(t.insert(base + i * 16, i).is_ok());
    }
    crate::check_eq!(t.live, n as usize);
    crate::check!(matches!(t.insert(base + 32, 0), Err(InsertError::Live)));
    // Remove every third object, then check every address is found exactly when it should be.
    for i in (0..n).step_by(3) {
        let Some((slot, object)) = t.lookup(base + i * 16) else {
            return Err(crate::selftest::fail("inserted object not found"));
        };
        crate::check_eq!(t.objects[object].size, i);
        t.remove(slot, object);
    }
    for i in 0..n {
        let found = t.lookup(base + i * 16).map(|(_, o)| t.objects[o].size);
        crate::check_eq!(found, (i % 3 != 0).then_some(i));
    }
    crate::check_eq!(t.lookup(base + n * 16), None);
    let a = t.site_for(&[1, 2, 3]);
    let b = t.site_for(&[1, 2, 4]);
    crate::check!(a != b && a != OVERFLOW_SITE);
    crate::check_eq!(t.site_for(&[1, 2, 3]), a);
    crate::check_eq!(t.site(a).frames(), &[1, 2, 3]);
    let before = frame_allocator::stats().free;
    t.free();
    crate::check_eq!(
        frame_allocator::stats().free,
        before + (overhead_bytes() / PAGE_SIZE) as u64
    );
});
