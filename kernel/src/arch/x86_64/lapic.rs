//! The local APIC: interrupt acknowledgement and the periodic scheduler tick.
//!
//! The APIC timer counts at an unspecified bus frequency, so it is calibrated once against the
//! PIT (a fixed 1.193182 MHz) together with the TSC; the TSC then serves as the fine-grained
//! monotonic clock and the APIC timer as the tick.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{cpu, pit, trap};
use crate::mm::paging;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: u64 = 0x20;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const TIMER_PERIODIC: u32 = 1 << 17;
const TIMER_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0x3;

pub const TIMER_VECTOR: u8 = trap::FIRST_IRQ_VECTOR;
pub const TICK_HZ: u64 = 100;

static BASE: AtomicU64 = AtomicU64::new(0);

fn read(reg: u64) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` maps the APIC's 4 KiB register page (uncached) once `init` ran; registers
    // are 32-bit, 16-byte aligned offsets below 0x400.
    unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
}

fn write(reg: u64, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as for `read`.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, value) };
}

#[derive(Debug)]
pub enum ApicError {
    Missing,
    Map(paging::MapError),
}

impl core::fmt::Display for ApicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Missing => f.write_str("CPUID reports no local APIC"),
            Self::Map(error) => write!(f, "cannot map its registers: {error}"),
        }
    }
}

/// Maps and enables this CPU's local APIC.
pub fn init(madt_address: Option<u64>) -> Result<u32, ApicError> {
    if cpu::cpuid(1, 0).edx & (1 << 9) == 0 {
        return Err(ApicError::Missing);
    }
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked above).
    let msr = unsafe { cpu::rdmsr(IA32_APIC_BASE) };
    let phys = madt_address.unwrap_or(msr & 0xf_ffff_f000);
    let virt = paging::map_mmio(phys, 0x1000).map_err(ApicError::Map)?;
    BASE.store(virt, Ordering::Relaxed);
    // SAFETY: setting the global-enable bit of IA32_APIC_BASE keeps the base address unchanged.
    unsafe { cpu::wrmsr(IA32_APIC_BASE, msr | (1 << 11)) };
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | u32::from(trap::SPURIOUS_VECTOR));
    write(REG_LVT_TIMER, TIMER_MASKED);
    Ok(id())
}

pub fn id() -> u32 {
    read(REG_ID) >> 24
}

pub fn end_of_interrupt() {
    if BASE.load(Ordering::Relaxed) != 0 {
        write(REG_EOI, 0);
    }
}

/// Measured rates, from one 10 ms PIT interval.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    pub tsc_hz: u64,
    pub apic_timer_hz: u64,
}

pub fn calibrate() -> Calibration {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, TIMER_MASKED);
    let interval = pit::OneShot::start(10_000);
    write(REG_TIMER_INITIAL, u32::MAX);
    let tsc_start = cpu::rdtsc();
    interval.wait();
    let tsc_end = cpu::rdtsc();
    let apic_elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INITIAL, 0);
    Calibration {
        tsc_hz: (tsc_end - tsc_start) * 100,
        apic_timer_hz: u64::from(apic_elapsed) * 100,
    }
}

/// Starts the periodic tick at `TICK_HZ` on `TIMER_VECTOR`.
pub fn start_periodic_timer(calibration: &Calibration) {
    let initial = (calibration.apic_timer_hz / TICK_HZ).clamp(1, u64::from(u32::MAX)) as u32;
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR) | TIMER_PERIODIC);
    write(REG_TIMER_INITIAL, initial);
}
