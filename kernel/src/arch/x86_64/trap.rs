//! Where every interrupt and exception lands: decode the vector, run its handler.
//!
//! CPU exceptions are fatal in kernel mode unless a handler claims them (breakpoints today; page
//! faults of user processes and the gdb stub later). Device interrupts go to handlers registered by
//! vector, and are acknowledged at the local APIC here, once, instead of in every driver.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

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

/// The innermost trap being handled (null when none): the context a debugger stops in.
static CURRENT_FRAME: AtomicPtr<TrapFrame> = AtomicPtr::new(core::ptr::null_mut());

/// Runs `f` on the trap frame of the innermost trap being handled, if any — e.g. the
/// interrupted context when called from an IRQ handler.
pub fn with_current_frame<R>(f: impl FnOnce(&mut TrapFrame) -> R) -> Option<R> {
    let frame = CURRENT_FRAME.load(Ordering::Acquire);
    // SAFETY: `dispatch` publishes its frame for exactly as long as it runs, on this (only) CPU,
    // with interrupts masked; callers run inside that dispatch, below it on the same stack, so
    // the frame is live and nothing else accesses it concurrently.
    (!frame.is_null()).then(|| f(unsafe { &mut *frame }))
}

/// Handler for the debug exceptions (#DB, #BP) when a debugger is active: it gets the vector
/// (the frame through `with_current_frame`) and returns true if it handled the trap.
pub type DebugTrapHandler = fn(vector: u64) -> bool;
static DEBUG_HANDLER: AtomicUsize = AtomicUsize::new(NO_HANDLER);

/// Routes #DB and #BP to the kernel debugger.
pub fn set_debug_trap_handler(handler: DebugTrapHandler) {
    DEBUG_HANDLER.store(handler as usize, Ordering::Release);
}

fn debug_trap(vector: u64) -> bool {
    let handler = DEBUG_HANDLER.load(Ordering::Acquire);
    if handler == NO_HANDLER {
        return false;
    }
    // SAFETY: only `set_debug_trap_handler` stores non-zero values, and it stores
    // `DebugTrapHandler` function pointers.
    let handler: DebugTrapHandler =
        unsafe { core::mem::transmute::<usize, DebugTrapHandler>(handler) };
    handler(vector)
}

/// Called by `trap_common` with interrupts masked (all gates are interrupt gates).
///
/// The frame is published through `CURRENT_FRAME` and otherwise handled through a raw pointer,
/// with references to it created only for the duration of one call, so that a handler that
/// reaches it through `with_current_frame` (an IRQ handler stopping the machine for gdb) never
/// overlaps with another live reference.
pub extern "C" fn dispatch(frame: *mut TrapFrame) {
    super::usermode::check_alignment_flag_cleared("trap");
    let outer = CURRENT_FRAME.swap(frame, Ordering::AcqRel);
    handle(frame);
    CURRENT_FRAME.store(outer, Ordering::Release);
    // SAFETY: as in `handle`; a plain read.
    if unsafe { (*frame).cs } & 3 == 3 {
        // SAFETY: the dispatch is over: no other reference to the frame is live, and it stays
        // valid (on this task's kernel stack) until `trap_common` restores it.
        run_user_return_hook(unsafe { &mut *frame });
    }
}

/// Runs on every return to user mode (after traps and system calls) with the user context
/// about to be resumed: where the scheduler switches tasks and signals are delivered.
pub type UserReturnHook = fn(&mut TrapFrame);
static USER_RETURN_HOOK: AtomicUsize = AtomicUsize::new(NO_HANDLER);

pub fn set_user_return_hook(hook: UserReturnHook) {
    USER_RETURN_HOOK.store(hook as usize, Ordering::Release);
}

pub fn run_user_return_hook(frame: &mut TrapFrame) {
    let hook = USER_RETURN_HOOK.load(Ordering::Acquire);
    if hook != NO_HANDLER {
        // SAFETY: only `set_user_return_hook` stores non-zero values, and it stores
        // `UserReturnHook` function pointers.
        let hook: UserReturnHook = unsafe { core::mem::transmute::<usize, UserReturnHook>(hook) };
        hook(frame);
    }
    check_user_rip(frame.rip);
}

static BAD_RIP_REPORTED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Warns (once) if the kernel is about to return to user mode at a non-canonical RIP, which the
/// return hook must have turned into SIGSEGV: on Intel CPUs `iretq` would fault in kernel mode
/// with the user's GS base loaded (QEMU's TCG does not, so this check is what tests rely on).
pub fn check_user_rip(rip: u64) {
    if !cpu::is_canonical(rip) && !BAD_RIP_REPORTED.swap(true, Ordering::Relaxed) {
        crate::kprintln!("trap: returning to user mode at non-canonical rip {rip:#x}");
    }
}

fn handle(frame: *mut TrapFrame) {
    // SAFETY: `trap_common` passes its stack frame, valid for the whole dispatch; this read ends
    // before any reference to the frame is created.
    let vector = unsafe { (*frame).vector };
    // SAFETY: as above, plain reads.
    let (cs, from_user_exception) = unsafe { ((*frame).cs, (*frame).vector < 32) };
    if cs & 3 == 3 && from_user_exception {
        // A user program's fault (or int3): a signal for it, not a kernel matter.
        // SAFETY: as above; a plain copy.
        let copy = unsafe { *frame };
        crate::task::user_exception(&copy);
        return;
    }
    match vector {
        1 | 3 if debug_trap(vector) => {}
        3 => {
            // A breakpoint with no debugger attached: count it and carry on after the int3.
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        }
        v if v < u64::from(FIRST_IRQ_VECTOR) => {
            // The report works on a copy, so that the debugger (break-on-oops) can still reach
            // the live frame through `with_current_frame`.
            // SAFETY: as above; a plain copy, no reference is kept.
            let copy = unsafe { *frame };
            panic_report::exception(&copy)
        }
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
