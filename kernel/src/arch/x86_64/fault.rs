//! Instructions that fault on purpose, for the crash triggers in `debug::crash`.

use core::arch::asm;

/// An address in the user half that the kernel never maps.
const UNMAPPED: u64 = 0x0000_0000_dead_b000;

pub fn read_unmapped() {
    // SAFETY: the read faults (nothing is mapped there); the #PF handler reports and stops the
    // machine, so no value is ever produced.
    unsafe {
        asm!("mov {tmp}, qword ptr [{addr}]", addr = in(reg) UNMAPPED, tmp = out(reg) _, options(nostack, readonly))
    };
}

pub fn invalid_opcode() {
    // SAFETY: UD2 raises #UD, which is fatal in kernel mode.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

pub fn divide_by_zero() {
    // SAFETY: DIV by zero raises #DE, which is fatal in kernel mode; RAX/RDX are declared clobbered.
    unsafe {
        asm!("xor edx, edx", "div {zero}", zero = in(reg) 0u64, inout("rax") 1u64 => _, out("rdx") _, options(nomem, nostack))
    };
}

pub fn non_canonical_access() {
    // SAFETY: a non-canonical address raises #GP before any memory is touched.
    unsafe {
        asm!("mov {tmp}, qword ptr [{addr}]", addr = in(reg) 0x8000_0000_0000_0000u64, tmp = out(reg) _, options(nostack, readonly))
    };
}
