//! Decoding Xen's `hvm_start_info`, the structure QEMU's PVH boot passes in EBX.
//!
//! Layout from xen/include/public/arch-x86/hvm/start_info.h. Version 1 added the memory map; with
//! version 0 we fall back to "everything below the initrd is RAM", which never happens with QEMU
//! but keeps a malformed structure from crashing the boot.

use super::{BootInfo, Cmdline, Initrd, MemoryMap, MemoryRegion, RegionKind};
use crate::mm::phys_to_virt;

pub const START_INFO_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

#[derive(Debug)]
pub enum PvhError {
    BadMagic(u32),
    NullPointer,
}

/// Everything the boot trampoline can reach is in the first GiB (the boot page tables map no
/// more), and QEMU puts `hvm_start_info`, the command line and the memory map below 1 MiB.
const BOOT_MAPPED_LIMIT: u64 = 1 << 30;

fn read_phys<T: Copy>(phys: u64) -> Option<T> {
    let end = phys.checked_add(core::mem::size_of::<T>() as u64)?;
    if phys == 0 || end > BOOT_MAPPED_LIMIT {
        return None;
    }
    // SAFETY: the range lies in the first GiB, which the boot page tables map at `PHYS_OFFSET`;
    // `read_unaligned` copes with any alignment and T is plain data.
    Some(unsafe { core::ptr::read_unaligned(phys_to_virt(phys) as *const T) })
}

/// Decodes the start info at `phys`.
pub fn parse(phys: u64) -> Result<BootInfo, PvhError> {
    let info: StartInfo = read_phys(phys).ok_or(PvhError::NullPointer)?;
    if info.magic != START_INFO_MAGIC {
        return Err(PvhError::BadMagic(info.magic));
    }

    let mut cmdline = Cmdline::empty();
    if info.cmdline_paddr != 0 {
        let mut bytes = [0u8; Cmdline::CAPACITY];
        let mut len = 0;
        while len < bytes.len() {
            match read_phys::<u8>(info.cmdline_paddr + len as u64) {
                Some(0) | None => break,
                Some(b) => bytes[len] = b,
            }
            len += 1;
        }
        cmdline = Cmdline::from_bytes(&bytes[..len]);
    }

    let initrd = if info.nr_modules > 0 {
        read_phys::<ModlistEntry>(info.modlist_paddr)
            .filter(|m| m.size > 0)
            .map(|m| Initrd {
                phys_start: m.paddr,
                size: m.size,
            })
    } else {
        None
    };

    let mut memory_map = MemoryMap::new();
    if info.version >= 1 {
        for i in 0..u64::from(info.memmap_entries) {
            let entry_phys = info.memmap_paddr + i * core::mem::size_of::<MemmapEntry>() as u64;
            let Some(entry) = read_phys::<MemmapEntry>(entry_phys) else {
                break;
            };
            memory_map.add(MemoryRegion {
                start: entry.addr,
                end: entry.addr.saturating_add(entry.size),
                kind: RegionKind::from_e820(entry.kind),
            });
        }
    }
    memory_map.normalize();

    Ok(BootInfo {
        cmdline,
        memory_map,
        initrd,
        rsdp_phys: (info.rsdp_paddr != 0).then_some(info.rsdp_paddr),
    })
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(magic) => write!(
                f,
                "hvm_start_info magic is {magic:#x}, expected {START_INFO_MAGIC:#x}"
            ),
            Self::NullPointer => {
                f.write_str("hvm_start_info pointer is null or beyond the first GiB")
            }
        }
    }
}
