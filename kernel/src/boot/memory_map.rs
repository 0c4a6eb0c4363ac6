//! The physical memory map, normalised.
//!
//! Firmware maps are not tidy: QEMU's qboot and microvm hand over unsorted entries, some
//! overlapping and some empty, and no map marks the kernel image or the initrd as used. Here the
//! map is rebuilt as sorted, non-overlapping, merged regions where, for any byte described twice,
//! the more restrictive kind wins; the kernel then carves its own image and the initrd out of RAM.

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    AcpiReclaimable,
    /// Memory the kernel claimed at boot: its image, the initrd, the frame bitmap.
    Kernel,
    Initrd,
    Reserved,
    AcpiNvs,
    Unusable,
}

impl RegionKind {
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Usable,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            _ => Self::Reserved,
        }
    }

    /// Which kind wins where two regions overlap.
    fn priority(self) -> u8 {
        match self {
            Self::Usable => 0,
            Self::AcpiReclaimable => 1,
            Self::Kernel | Self::Initrd => 2,
            Self::Reserved | Self::AcpiNvs | Self::Unusable => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Usable => "usable",
            Self::AcpiReclaimable => "ACPI data",
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::Reserved => "reserved",
            Self::AcpiNvs => "ACPI NVS",
            Self::Unusable => "unusable",
        }
    }
}

/// `[start, end)` in physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

impl MemoryRegion {
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

impl fmt::Display for MemoryRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[mem {:#018x}-{:#018x}] {}",
            self.start,
            self.end.saturating_sub(1),
            self.kind.name()
        )
    }
}

pub struct MemoryMap {
    regions: [MemoryRegion; Self::CAPACITY],
    len: usize,
    /// Entries dropped because the table was full.
    pub dropped: usize,
}

const EMPTY: MemoryRegion = MemoryRegion {
    start: 0,
    end: 0,
    kind: RegionKind::Reserved,
};

impl MemoryMap {
    pub const CAPACITY: usize = 128;

    pub const fn new() -> Self {
        Self {
            regions: [EMPTY; Self::CAPACITY],
            len: 0,
            dropped: 0,
        }
    }

    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.len]
    }

    /// Appends a raw entry; call `normalize` afterwards.
    pub fn add(&mut self, region: MemoryRegion) {
        if region.end <= region.start {
            return;
        }
        if self.len == Self::CAPACITY {
            self.dropped += 1;
            return;
        }
        self.regions[self.len] = region;
        self.len += 1;
    }

    /// Marks `[start, end)` as `kind`, splitting whatever it overlaps.
    pub fn reserve(&mut self, start: u64, end: u64, kind: RegionKind) {
        self.add(MemoryRegion { start, end, kind });
        self.normalize();
    }

    /// Sorts, resolves overlaps (most restrictive kind wins) and merges neighbours.
    pub fn normalize(&mut self) {
        let input = *self;
        let input = input.regions();
        // Every region boundary is a candidate cut point.
        let mut cuts = [0u64; 2 * Self::CAPACITY];
        let mut ncuts = 0;
        for r in input {
            cuts[ncuts] = r.start;
            cuts[ncuts + 1] = r.end;
            ncuts += 2;
        }
        let cuts = &mut cuts[..ncuts];
        cuts.sort_unstable();

        self.len = 0;
        for pair in cuts.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            if start == end {
                continue;
            }
            let winner = input
                .iter()
                .filter(|r| r.start <= start && end <= r.end)
                .map(|r| r.kind)
                .max_by_key(|k| k.priority());
            let Some(kind) = winner else { continue };
            match self.len.checked_sub(1).map(|i| &mut self.regions[i]) {
                Some(last) if last.end == start && last.kind == kind => last.end = end,
                _ if self.len == Self::CAPACITY => self.dropped += 1,
                _ => {
                    self.regions[self.len] = MemoryRegion { start, end, kind };
                    self.len += 1;
                }
            }
        }
    }

    pub fn usable(&self) -> impl Iterator<Item = &MemoryRegion> {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
    }

    pub fn total_of(&self, kind: RegionKind) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == kind)
            .map(MemoryRegion::size)
            .sum()
    }

    /// One past the highest address described, of any kind.
    pub fn end(&self) -> u64 {
        self.regions().iter().map(|r| r.end).max().unwrap_or(0)
    }
}

impl Clone for MemoryMap {
    fn clone(&self) -> Self {
        *self
    }
}
impl Copy for MemoryMap {}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

crate::kernel_test!(memory_map_normalises_messy_firmware_maps, {
    let mut map = MemoryMap::new();
    let r = |start, end, kind| MemoryRegion { start, end, kind };
    // Unsorted, overlapping, with an empty trailing entry (qboot and microvm do this).
    map.add(r(0x100000, 0x8000000, RegionKind::Usable));
    map.add(r(0, 0x9fc00, RegionKind::Usable));
    map.add(r(0x9fc00, 0xa0000, RegionKind::Reserved));
    map.add(r(0xf0000, 0x100000, RegionKind::Reserved));
    map.add(r(0x7000000, 0x7100000, RegionKind::Reserved));
    map.add(r(0x8000000, 0x8000000, RegionKind::Usable));
    map.normalize();
    map.reserve(0x200000, 0x400000, RegionKind::Kernel);
    let regions = map.regions();
    crate::check_eq!(regions.len(), 8);
    crate::check_eq!(regions[0], r(0, 0x9fc00, RegionKind::Usable));
    crate::check_eq!(regions[3], r(0x100000, 0x200000, RegionKind::Usable));
    crate::check_eq!(regions[4], r(0x200000, 0x400000, RegionKind::Kernel));
    crate::check_eq!(regions[6], r(0x7000000, 0x7100000, RegionKind::Reserved));
    crate::check_eq!(regions[7], r(0x7100000, 0x8000000, RegionKind::Usable));
    crate::check!(
        regions.windows(2).all(|w| w[0].end <= w[1].start),
        "sorted and disjoint"
    );
    crate::check_eq!(map.end(), 0x8000000);
});
