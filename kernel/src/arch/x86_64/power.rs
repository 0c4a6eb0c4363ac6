//! Leaving the machine: QEMU's debug-exit device, ACPI power-off, or halting.
//!
//! Under QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`, writing a code makes QEMU
//! exit with status `(code << 1) | 1`. The codes are a contract with the host launcher
//! (`cadenza-qemu`), defined once in `cadenza_abi::exit`: 33 means a clean shutdown, 35 a panic,
//! 37 failed self-tests, 39 killed from gdb. Exit status 0 therefore never means success by
//! accident: it is what a triple fault with `-no-reboot` gives.

use core::sync::atomic::{AtomicU16, Ordering};

use super::cpu;

pub use cadenza_abi::exit::{DEBUG_EXIT_PORT, ExitCode};

static PM1A_CONTROL: AtomicU16 = AtomicU16::new(0);

/// Remembers the ACPI PM1a control port for `power_off`.
pub fn set_acpi_pm1a_control(port: u16) {
    PM1A_CONTROL.store(port, Ordering::Relaxed);
}

/// Ends the machine with `code`. If no debug-exit device is present: ACPI S5 for a clean
/// shutdown, halt otherwise (so a panic report stays on screen on real hardware).
pub fn exit(code: ExitCode) -> ! {
    cpu::disable_interrupts();
    cpu::outl(DEBUG_EXIT_PORT, code.port_value());
    if code == ExitCode::Success {
        let port = PM1A_CONTROL.load(Ordering::Relaxed);
        if port != 0 {
            // SLP_TYPa = 0 (QEMU's \_S5), SLP_EN.
            cpu::outw(port, 1 << 13);
        }
    }
    cpu::halt_forever()
}
