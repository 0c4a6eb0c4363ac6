//! Where every interrupt and exception lands: decode the vector, run its handler.
//!
//! CPU exceptions are fatal in kernel mode unless a handler claims them (breakpoints today; page
//! faults of user processes and the gdb stub later). Device interrupts go to handlers registered by
//! vector, and are acknowledged at the local APIC here, once, instead of in every driver.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::idt::TrapFrame;
use super::{cpu, lapic};
use crate::debug::panic_report;

pub const FIRST_IRQ_VECTOR: u8 = 32;
pub const SPURIOUS_VECTOR: u8 = 0xff;

const EXCEPTION_NAMES: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("#CSO", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection fault"),
    ("#PF", "page fault"),
    ("#15", "reserved"),
    ("#MF", "x87 floating-point exception"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point exception"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection exception"),
    ("#22", "reserved"),
    ("#23", "reserved"),
    ("#24", "reserved"),
    ("#25", "reserved"),
    ("#26", "reserved"),
    ("#27", "reserved"),
    ("#HV", "hypervisor injection exception"),
    ("#VC", "VMM communication exception"),
    ("#SX", "security exception"),
    ("#31", "reserved"),
];

/// Short mnemonic and description of a CPU exception vector.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    usize::try_from(vector)
        .ok()
        .and_then(|v| EXCEPTION_NAMES.get(v).copied())
        .unwrap_or(("IRQ", "interrupt"))
}

pub type IrqHandler = fn(vector: u8);

const NO_HANDLER: usize = 0;
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(NO_HANDLER) }; 256];
static BREAKPOINTS: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler for a device interrupt vector (≥ 32).
pub fn register_irq_handler(vector: u8, handler: IrqHandler) {
    assert!(
        vector >= FIRST_IRQ_VECTOR,
        "vectors below 32 are CPU exceptions"
    );
    HANDLERS[usize::from(vector)].store(handler as usize, Ordering::Release);
}

/// How many #BP traps the kernel has taken (and returned from).
pub fn breakpoints_taken() -> usize {
    BREAKPOINTS.load(Ordering::Relaxed)
}

/// Called by `trap_common` with interrupts masked (all gates are interrupt gates).
pub extern "C" fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        3 => {
            // A breakpoint with no debugger attached: count it and carry on after the int3.
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        }
        v if v < u64::from(FIRST_IRQ_VECTOR) => panic_report::exception(frame),
        v if v == u64::from(SPURIOUS_VECTOR) => {}
        // Spurious IRQ 7/15 from the masked 8259s: nothing to acknowledge.
        v if (u64::from(super::pic::SPURIOUS_BASE)..u64::from(super::pic::SPURIOUS_BASE) + 16)
            .contains(&v) => {}
        v => {
            let vector = v as u8;
            let handler = HANDLERS[usize::from(vector)].load(Ordering::Acquire);
            if handler != NO_HANDLER {
                // SAFETY: only `register_irq_handler` stores non-zero values, and it stores
                // `IrqHandler` function pointers.
                let handler: IrqHandler =
                    unsafe { core::mem::transmute::<usize, IrqHandler>(handler) };
                handler(vector);
            }
            lapic::end_of_interrupt();
        }
    }
}

crate::kernel_test!(breakpoint_trap_returns, {
    let before = breakpoints_taken();
    cpu::breakpoint();
    cpu::breakpoint();
    crate::check_eq!(breakpoints_taken(), before + 2);
});
