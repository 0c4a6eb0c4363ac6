//! Memory access that cannot fault, for the kernel debugger.
//!
//! gdb asks for arbitrary addresses — stale pointers, unmapped guard pages, MMIO windows. Every
//! access here is first translated through the active page tables (without locks: the debugger
//! may have stopped the machine inside the page-table code), must land in RAM according to the
//! firmware's memory map (device registers are never touched), and is then performed through
//! the direct map. Going through the direct map also lets the debugger patch read-only kernel
//! text (software breakpoints) without changing any permission.

use super::paging::translate_active;
use super::{PAGE_SIZE, is_ram, phys_to_virt};

/// The physical address behind `virt` if it is mapped and RAM for `len` bytes (within a page).
fn resolve(virt: u64, len: u64) -> Option<u64> {
    let (phys, _) = translate_active(virt)?;
    is_ram(phys, len).then_some(phys)
}

/// Splits `[address, address + len)` at page boundaries: (address, chunk length).
fn chunks(address: u64, len: usize) -> impl Iterator<Item = (u64, usize)> {
    let mut cursor = address;
    let end = address.saturating_add(len as u64);
    core::iter::from_fn(move || {
        if cursor >= end {
            return None;
        }
        let page_end = (cursor | (PAGE_SIZE as u64 - 1)).saturating_add(1);
        let chunk = (page_end.min(end) - cursor) as usize;
        let item = (cursor, chunk);
        cursor += chunk as u64;
        Some(item)
    })
}

/// Copies from `address` until the first byte that is unmapped or not RAM; returns the count.
pub fn read(address: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    for (virt, len) in chunks(address, buf.len()) {
        let Some(phys) = resolve(virt, len as u64) else {
            break;
        };
        let source = phys_to_virt(phys) as *const u8;
        for (i, byte) in buf[done..done + len].iter_mut().enumerate() {
            // SAFETY: `[phys, phys + len)` is RAM inside one page, reached through the direct
            // map; a volatile byte read creates no reference that could alias live data.
            *byte = unsafe { core::ptr::read_volatile(source.add(i)) };
        }
        done += len;
    }
    done
}

/// Writes `data` at `address`; nothing is written unless every byte is mapped RAM. Returns the
/// first bad address on failure.
pub fn write(address: u64, data: &[u8]) -> Result<(), u64> {
    for (virt, len) in chunks(address, data.len()) {
        if resolve(virt, len as u64).is_none() {
            return Err(virt);
        }
    }
    let mut done = 0;
    for (virt, len) in chunks(address, data.len()) {
        let phys = resolve(virt, len as u64).ok_or(virt)?;
        let target = phys_to_virt(phys) as *mut u8;
        for (i, &byte) in data[done..done + len].iter().enumerate() {
            // SAFETY: as in `read`; the debugger writes only while the machine is stopped, so no
            // code is concurrently using the bytes it patches.
            unsafe { core::ptr::write_volatile(target.add(i), byte) };
        }
        done += len;
    }
    Ok(())
}

crate::kernel_test!(inspect_reads_what_is_mapped_and_refuses_the_rest, {
    static PATTERN: [u8; 8] = *b"cadenza!";
    let mut buf = [0u8; 8];
    crate::check_eq!(read(PATTERN.as_ptr() as u64, &mut buf), 8);
    crate::check_eq!(&buf, b"cadenza!");
    // Null page, a non-canonical address, the MMIO window: nothing read, nothing faulted.
    for bad in [0u64, 0x8000_0000_0000_0000, super::MMIO_BASE] {
        crate::check_eq!(read(bad, &mut buf), 0);
        crate::check!(write(bad, b"x").is_err());
    }
    // Kernel text is read-only, but the debugger can patch it (and restores it here).
    let text = crate::mm::layout::text_start();
    let mut original = [0u8; 1];
    crate::check_eq!(read(text, &mut original), 1);
    crate::check!(write(text, &[0xcc]).is_ok());
    let mut patched = [0u8; 1];
    read(text, &mut patched);
    crate::check!(write(text, &original).is_ok());
    crate::check_eq!(patched[0], 0xcc);
});
