//! Thin wrappers over privileged x86_64 instructions.
//!
//! This is one of the few modules allowed to use `unsafe`: each wrapper states the condition
//! under which the instruction is harmless, so the rest of the kernel calls safe functions.

use core::arch::asm;

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port I/O has no memory effects; device side effects are the caller's intent.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit value to an I/O port.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `inb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (reading an absent MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must keep the system in a state the kernel expects.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

pub use core::arch::x86_64::CpuidResult;

pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

macro_rules! read_reg {
    ($name:ident, $reg:literal) => {
        pub fn $name() -> u64 {
            let value: u64;
            // SAFETY: reading a control/flags register has no side effects.
            unsafe { asm!(concat!("mov {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags)) };
            value
        }
    };
}

read_reg!(read_cr0, "cr0");
read_reg!(read_cr2, "cr2");
read_reg!(read_cr3, "cr3");
read_reg!(read_cr4, "cr4");
read_reg!(read_rsp, "rsp");
read_reg!(read_rbp, "rbp");

/// Loads a new top-level page table.
///
/// # Safety
/// `pml4_phys` must be a valid PML4 that maps the currently executing code, stack and data.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: the caller's contract.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) };
}

/// Sets and clears bits in CR0.
///
/// # Safety
/// The resulting CR0 must keep the kernel running (paging, protection, write-protect stay on).
pub unsafe fn update_cr0(set: u64, clear: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("mov {tmp}, cr0", "and {tmp}, {keep}", "or {tmp}, {set}", "mov cr0, {tmp}",
             keep = in(reg) !clear, set = in(reg) set, tmp = out(reg) _, options(nostack, preserves_flags))
    };
}

/// Sets bits in CR4.
///
/// # Safety
/// The features enabled must be supported and consistent with the kernel's state.
pub unsafe fn set_cr4_bits(bits: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("mov {tmp}, cr4", "or {tmp}, {bits}", "mov cr4, {tmp}", bits = in(reg) bits, tmp = out(reg) _, options(nostack, preserves_flags))
    };
}

pub fn read_rflags() -> u64 {
    let value: u64;
    // SAFETY: pushfq/pop only touch the stack slot they use.
    unsafe { asm!("pushfq", "pop {}", out(reg) value, options(nomem, preserves_flags)) };
    value
}

/// Invalidates the TLB entry for one page.
pub fn invlpg(addr: usize) {
    // SAFETY: dropping a TLB entry is always safe; it is refilled from the page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

pub const RFLAGS_IF: u64 = 1 << 9;

pub fn interrupts_enabled() -> bool {
    read_rflags() & RFLAGS_IF != 0
}

pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before anyone calls this (see `arch::init`).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Enables interrupts and halts until the next one, atomically (no lost wake-up).
pub fn enable_interrupts_and_halt() {
    // SAFETY: as for `enable_interrupts`; `sti; hlt` is the documented idle idiom.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

pub fn halt() {
    // SAFETY: HLT only waits for the next interrupt.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        halt();
    }
}

pub fn pause() {
    core::hint::spin_loop();
}

/// Loads the breakpoint addresses DR0–DR3 and the control register DR7.
pub fn write_debug_registers(addresses: &[u64; 4], dr7: u64) {
    // SAFETY: debug registers only arm breakpoints and watchpoints, whose #DB traps the kernel
    // handles (or reports); DR7 reserved bits are kept at their required values by the caller's
    // encoding (bit 10 reads as 1 and is ignored on write).
    unsafe {
        asm!(
            "mov dr7, {zero}",
            "mov dr0, {a0}", "mov dr1, {a1}", "mov dr2, {a2}", "mov dr3, {a3}",
            "mov dr7, {dr7}",
            zero = in(reg) 0u64,
            a0 = in(reg) addresses[0], a1 = in(reg) addresses[1],
            a2 = in(reg) addresses[2], a3 = in(reg) addresses[3],
            dr7 = in(reg) dr7,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Reads DR6 (which breakpoint or step caused the last #DB) and resets it for the next one.
pub fn take_dr6() -> u64 {
    let value: u64;
    // SAFETY: DR6 is a status register; writing its architectural reset value has no effect but
    // clearing the sticky status bits.
    unsafe {
        asm!("mov {v}, dr6", "mov dr6, {reset}", v = out(reg) value, reset = in(reg) 0xffff_0ff0u64,
             options(nomem, nostack, preserves_flags))
    };
    value
}

read_reg!(read_dr7, "dr7");

/// The data segment selectors DS, ES, FS, GS (a trap frame only saves CS and SS).
pub fn read_data_segments() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        asm!("mov {0:x}, ds", "mov {1:x}, es", "mov {2:x}, fs", "mov {3:x}, gs",
             out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs, options(nomem, nostack, preserves_flags))
    };
    [ds, es, fs, gs]
}

/// Reads a model-specific register.
pub fn read_msr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: only called with architectural MSRs that exist on every x86_64 CPU (FS/GS base).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags))
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it; MSRs change how the CPU behaves (system
/// call entry, segment bases), so the caller must keep the kernel's invariants.
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nomem, nostack, preserves_flags))
    };
}

pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_FMASK: u32 = 0xc000_0084;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;

/// Raises a breakpoint exception (#BP) on purpose.
pub fn breakpoint() {
    // SAFETY: #BP is a trap; the handler returns to the next instruction.
    unsafe { asm!("int3", options(nomem, nostack)) };
}

/// Whether the CPU has RDRAND (CPUID leaf 1, ECX bit 30); asked once, then cached.
pub fn has_rdrand() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    /// 0: not asked yet, 1: absent, 2: present.
    static RDRAND: AtomicU8 = AtomicU8::new(0);
    match RDRAND.load(Ordering::Relaxed) {
        0 => {
            let present = cpuid(1, 0).ecx & (1 << 30) != 0;
            RDRAND.store(if present { 2 } else { 1 }, Ordering::Relaxed);
            present
        }
        state => state == 2,
    }
}

/// One hardware random number; `None` without RDRAND or when the generator stays exhausted
/// for ten tries (Intel's recommended retry count).
pub fn rdrand64() -> Option<u64> {
    if !has_rdrand() {
        return None;
    }
    for _ in 0..10 {
        let mut value = 0u64;
        // SAFETY: `has_rdrand` saw the CPUID bit, so the instruction exists; it writes only
        // `value`.
        if unsafe { core::arch::x86_64::_rdrand64_step(&mut value) } == 1 {
            return Some(value);
        }
    }
    None
}

/// Whether `address` is canonical (bits 63..47 all equal): the only addresses a CPU with 48-bit
/// virtual addresses can run or reach.
pub fn is_canonical(address: u64) -> bool {
    ((address as i64) << 16 >> 16) as u64 == address
}
