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

impl Initrd {
    /// The initrd's bytes, if the boot loader left a non-empty one in RAM the direct map
    /// covers. `kernel_main` reserves that range before the frame allocator starts, and nothing
    /// writes it, which is what makes a `'static` shared view sound.
    pub fn bytes(&self) -> Option<&'static [u8]> {
        if self.size == 0 || !crate::mm::is_phys_described(self.phys_start, self.size) {
            return None;
        }
        let length = usize::try_from(self.size).ok()?;
        let start = crate::mm::phys_to_virt(self.phys_start) as *const u8;
        // SAFETY: reserved, never-written RAM (see above), all of it inside the direct map as
        // the check confirms.
        Some(unsafe { core::slice::from_raw_parts(start, length) })
    }
}

pub struct BootInfo {
    pub cmdline: Cmdline,
    pub memory_map: MemoryMap,
    pub initrd: Option<Initrd>,
    pub rsdp_phys: Option<u64>,
}
