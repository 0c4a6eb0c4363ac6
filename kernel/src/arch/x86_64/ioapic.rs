//! The I/O APIC: routes device interrupt lines (GSIs) to vectors on the boot CPU.
//!
//! Vector `IRQ_VECTOR_BASE + gsi` is used for each routed line, so the vector alone identifies
//! the line in traces.

use core::sync::atomic::{AtomicU64, Ordering};

use super::acpi::{IoApicInfo, Platform};
use super::trap;
use crate::mm::paging;

pub const IRQ_VECTOR_BASE: u8 = 0x30;

static BASE: AtomicU64 = AtomicU64::new(0);
static GSI_BASE: AtomicU64 = AtomicU64::new(0);

fn write(reg: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` maps the IOAPIC's register window (IOREGSEL at 0, IOWIN at 0x10) once
    // `init` ran; callers serialise through `trap` registration at boot.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::write_volatile((base + 0x10) as *mut u32, value);
    }
}

fn read(reg: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as for `write`.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::read_volatile((base + 0x10) as *const u32)
    }
}

/// Maps the I/O APIC and masks all its inputs; returns how many inputs it has.
pub fn init(info: &IoApicInfo) -> Result<u32, paging::MapError> {
    let virt = paging::map_mmio(info.address, 0x20)?;
    BASE.store(virt, Ordering::Relaxed);
    GSI_BASE.store(u64::from(info.gsi_base), Ordering::Relaxed);
    let inputs = ((read(1) >> 16) & 0xff) + 1;
    for i in 0..inputs {
        write(0x10 + 2 * i, 1 << 16);
    }
    Ok(inputs)
}

/// Routes ISA IRQ `irq` (as rewired by the MADT) to `handler`; returns the vector used.
pub fn route_isa_irq(
    platform: &Platform,
    irq: u8,
    apic_id: u32,
    handler: trap::IrqHandler,
) -> Option<u8> {
    if BASE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let (gsi, level, active_low) = platform.isa_irq(irq);
    let input = gsi.checked_sub(GSI_BASE.load(Ordering::Relaxed) as u32)?;
    let vector = IRQ_VECTOR_BASE.checked_add(u8::try_from(gsi).ok()?)?;
    trap::register_irq_handler(vector, handler);
    let low = u32::from(vector) | (u32::from(active_low) << 13) | (u32::from(level) << 15);
    write(0x10 + 2 * input + 1, apic_id << 24);
    write(0x10 + 2 * input, low);
    Some(vector)
}
