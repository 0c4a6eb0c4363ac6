//! Memory management: physical frames, page tables and the kernel heap.
//!
//! Virtual layout (see docs/architecture.md):
//!
//! | range                                   | what                                        |
//! |-----------------------------------------|---------------------------------------------|
//! | `0x0000_0000_0000_0000..0x0000_8000_0000_0000` | user space (per process, later)      |
//! | `0xffff_8000_0000_0000..`               | direct map of all physical memory (`PHYS_OFFSET`) |
//! | `0xffff_c000_0000_0000..`               | MMIO window, uncached (`MMIO_BASE`)          |
//! | `0xffff_ffff_8000_0000..`               | kernel image (`KERNEL_VIRT_OFFSET` + physical) |
//!
//! The direct map means the kernel never maps a page just to touch physical memory: page tables,
//! frames and the heap are all reached through `phys_to_virt`.

pub mod fallible;
pub mod fault_inject;
pub mod frame_allocator;
pub mod heap;
pub mod inspect;
pub mod leak;
pub mod oom;
pub mod paging;
pub mod user;

pub const PAGE_SIZE: usize = 4096;
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
pub const MMIO_BASE: u64 = 0xffff_c000_0000_0000;
pub const KERNEL_VIRT_OFFSET: u64 = 0xffff_ffff_8000_0000;

/// The address through which the kernel reaches physical address `phys`.
pub const fn phys_to_virt(phys: u64) -> u64 {
    phys + PHYS_OFFSET
}

/// The physical address behind a direct-map or kernel-image virtual address.
pub fn virt_to_phys(virt: u64) -> Option<u64> {
    if virt >= KERNEL_VIRT_OFFSET {
        Some(virt - KERNEL_VIRT_OFFSET)
    } else if (PHYS_OFFSET..MMIO_BASE).contains(&virt) {
        Some(virt - PHYS_OFFSET)
    } else {
        None
    }
}

pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

/// Bounds of the kernel image's sections, from the linker script.
pub mod layout {
    unsafe extern "C" {
        static __boot_start: u8;
        static __text_start: u8;
        static __text_end: u8;
        static __rodata_start: u8;
        static __rodata_end: u8;
        static __data_start: u8;
        static __bss_end: u8;
        static __kernel_end: u8;
    }

    macro_rules! symbol_addr {
        ($($name:ident => $sym:ident),* $(,)?) => {
            $(pub fn $name() -> u64 {
                core::ptr::addr_of!($sym) as u64
            })*
        };
    }

    symbol_addr! {
        boot_start => __boot_start,
        text_start => __text_start,
        text_end => __text_end,
        rodata_start => __rodata_start,
        rodata_end => __rodata_end,
        data_start => __data_start,
        bss_end => __bss_end,
        kernel_end => __kernel_end,
    }

    /// Physical range occupied by the kernel image, including the boot trampoline.
    pub fn image_phys() -> (u64, u64) {
        (boot_start(), kernel_end() - super::KERNEL_VIRT_OFFSET)
    }

    pub fn is_kernel_text(addr: u64) -> bool {
        (text_start()..text_end()).contains(&addr)
    }
}

static MEMORY_MAP: spin::Once<crate::boot::MemoryMap> = spin::Once::new();

/// Publishes the final memory map (after the kernel's own reservations).
pub fn set_memory_map(map: crate::boot::MemoryMap) {
    MEMORY_MAP.call_once(|| map);
}

/// One past the highest address the frame allocator can hand out (the end of the last usable
/// region), once the memory map is published.
pub fn usable_end() -> Option<u64> {
    MEMORY_MAP
        .get()
        .map(|map| map.usable().map(|r| r.end).max().unwrap_or(0))
}

/// Whether the direct map covers `region`. RAM and ACPI memory always; other firmware-reserved
/// ranges only below 4 GiB, where firmware tables live — above it they are holes such as the
/// 12 GiB HyperTransport window QEMU reports at 1 TiB, which would only cost page tables.
pub fn is_direct_mapped(region: &crate::boot::MemoryRegion) -> bool {
    use crate::boot::RegionKind;
    match region.kind {
        RegionKind::Reserved | RegionKind::Unusable => region.end <= 1 << 32,
        _ => true,
    }
}

/// Whether every byte of `[phys, phys + len)` is RAM (or ACPI memory) — never device memory,
/// where a read can have side effects.
pub fn is_ram(phys: u64, len: u64) -> bool {
    use crate::boot::RegionKind;
    let Some(map) = MEMORY_MAP.get() else {
        return false;
    };
    let Some(end) = phys.checked_add(len) else {
        return false;
    };
    map.regions().iter().any(|r| {
        !matches!(r.kind, RegionKind::Reserved | RegionKind::Unusable)
            && r.start <= phys
            && end <= r.end
    })
}

/// Whether every byte of `[phys, phys + len)` is in the direct map.
pub fn is_phys_described(phys: u64, len: u64) -> bool {
    let Some(map) = MEMORY_MAP.get() else {
        return false;
    };
    let Some(end) = phys.checked_add(len) else {
        return false;
    };
    let mut cursor = phys;
    while cursor < end {
        match map
            .regions()
            .iter()
            .find(|r| is_direct_mapped(r) && r.start <= cursor && cursor < r.end)
        {
            Some(region) => cursor = region.end,
            None => return false,
        }
    }
    true
}
