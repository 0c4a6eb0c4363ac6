//! What the boot protocol hands the kernel, decoded once into plain data.
//!
//! `hvm_start_info` lives in memory the kernel will later reuse, so everything needed afterwards
//! (command line, memory map, initrd location) is copied into `BootInfo` before the frame
//! allocator takes over physical memory.

pub mod cmdline;
pub mod memory_map;
pub mod pvh;

pub use cmdline::Cmdline;
pub use memory_map::{MemoryMap, MemoryRegion, RegionKind};

/// The initial ramdisk as the boot protocol described it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Initrd {
    pub phys_start: u64,
    pub size: u64,
}

pub struct BootInfo {
    pub cmdline: Cmdline,
    pub memory_map: MemoryMap,
    pub initrd: Option<Initrd>,
    pub rsdp_phys: Option<u64>,
}
