//! The IDT and the assembly entry stubs for all 256 vectors.
//!
//! Every vector goes through one common path that saves all general-purpose registers into a
//! `TrapFrame` and calls `trap::dispatch`. The stub also pushes a synthetic frame-pointer record
//! (interrupted RBP, interrupted RIP) so that a backtrace taken inside a handler walks straight on
//! into the interrupted code — the unwinder never needs to know about exception frames.
//!
//! The register half of that frame is pushed and popped by `trap_frame_save!` and
//! `trap_frame_restore!`, which the `SYSCALL` entry (`usermode`) uses too: the order of the
//! registers is spelled once, next to `TrapFrame`, and checked against it at compile time.

use core::arch::asm;
use core::mem::size_of;

use spin::Once;

use super::gdt;

/// Saved machine state at a trap, in the order the stubs push it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The assembly that completes a `TrapFrame` on the stack: the CPU (or the `SYSCALL` stub) has
/// pushed SS, RSP, RFLAGS, CS and RIP, the entry has pushed the error code and the vector, and
/// these pushes add the general-purpose registers in reverse field order, so RSP ends up
/// pointing at `TrapFrame::rax`. Both kernel entries (these interrupt stubs and
/// `usermode::syscall_entry`) use it, so the layout is written once, next to the struct.
macro_rules! trap_frame_save {
    () => {
        "
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
"
    };
}

/// The reverse of `trap_frame_save!`, for RSP pointing at a `TrapFrame`: reloads the
/// general-purpose registers and drops the vector and error code, leaving the `iretq` frame.
/// The interrupt stubs, `usermode::syscall_entry` and `usermode::return_to_user` use it.
macro_rules! trap_frame_restore {
    () => {
        "
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
"
    };
}

pub(super) use {trap_frame_restore, trap_frame_save};

// The macros above push and pop 15 registers and then step over 2 words: that is where the
// struct has `vector`, and the `iretq` frame follows it.
const _: () = {
    assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(core::mem::offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(size_of::<TrapFrame>() == 22 * 8);
};

const STUB_SIZE: usize = 16;

core::arch::global_asm!(
    concat!(
    r#"
    .section .text.trap, "ax"
    .p2align 4
    .global trap_stubs
    .type trap_stubs, @function
trap_stubs:
    .set trap_vector, 0
    .rept 256
    .p2align 4
    .if (trap_vector == 8) || (trap_vector == 10) || (trap_vector == 11) || (trap_vector == 12) || (trap_vector == 13) || (trap_vector == 14) || (trap_vector == 17) || (trap_vector == 21) || (trap_vector == 29) || (trap_vector == 30)
    .else
    push 0
    .endif
    push trap_vector
    jmp trap_common
    .set trap_vector, trap_vector + 1
    .endr
    .size trap_stubs, . - trap_stubs

    .type trap_common, @function
trap_common:
    /* EFLAGS.AC off, whatever the interrupted code had (user mode may set it with popf): with
       AC set, SMAP would not stop this handler's accesses to user pages (Linux's ASM_CLAC).
       CLAC exists only where SMAP does, hence the flag. */
    test byte ptr [rip + {smap_active}], 1
    jz 3f
    clac
3:
    /* From user mode (CS.RPL = 3, CS at [rsp + 24] here): switch to the kernel's GS base. */
    test byte ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
"#,
    trap_frame_save!(),
    r#"
    mov rdi, rsp
    push qword ptr [rsp + {rip_offset}]
    push rbp
    mov rbp, rsp
    cld
    call {dispatch}
    add rsp, 16
"#,
    trap_frame_restore!(),
    r#"
    /* Back to user mode: give it its GS base again (CS at [rsp + 8] here). */
    test byte ptr [rsp + 8], 3
    jz 2f
    swapgs
2:
    iretq
    .size trap_common, . - trap_common
"#
    ),
    rip_offset = const core::mem::offset_of!(TrapFrame, rip),
    dispatch = sym super::trap::dispatch,
    smap_active = sym super::usermode::SMAP_ACTIVE,
);

unsafe extern "C" {
    static trap_stubs: u8;
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, ist: u8, dpl: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CODE,
            ist,
            type_attr: 0x80 | (dpl << 5) | 0xE, // present, interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, packed(2))]
struct IdtPointer {
    limit: u16,
    base: u64,
}

static IDT: Once<[Gate; 256]> = Once::new();

pub fn init() {
    let idt = IDT.call_once(|| {
        let stubs = core::ptr::addr_of!(trap_stubs) as u64;
        let mut gates = [Gate::default(); 256];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let ist = match vector {
                2 => gdt::IST_NMI,
                8 => gdt::IST_DOUBLE_FAULT,
                18 => gdt::IST_MACHINE_CHECK,
                _ => 0,
            };
            // Breakpoints may later be raised from user mode (int3 in a debugged process).
            let dpl = if vector == 3 { 3 } else { 0 };
            *gate = Gate::interrupt(stubs + (vector * STUB_SIZE) as u64, ist, dpl);
        }
        gates
    });
    let pointer = IdtPointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is 'static and every gate points at a stub in `trap_stubs`.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}
