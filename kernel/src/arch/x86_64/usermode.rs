//! The user/kernel boundary: `SYSCALL` entry, the per-CPU area behind GS, and the first jump to
//! user mode.
//!
//! `SYSCALL` switches neither stack nor anything else but CS/SS, so the entry stub uses the
//! per-CPU area (GS, after `swapgs`) to stash the user RSP and load the task's kernel stack,
//! then saves a `TrapFrame` of exactly the layout interrupts save (with the same
//! `idt::trap_frame_save!`/`trap_frame_restore!` sequences). One frame layout means one
//! way to read a user context (signals, `fork`, ptrace-style debugging, gdb threads) whether the
//! task entered by a system call or an interrupt. Returning always goes through `iretq`, which is
//! correct for any frame the kernel may have rewritten (signal delivery, `execve`), at a small
//! cost compared to `sysretq`.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::cpu::{self, MSR_EFER, MSR_FMASK, MSR_KERNEL_GS_BASE, MSR_LSTAR, MSR_STAR};
use super::gdt::{KERNEL_CODE, USER_CODE, USER_DATA};
use super::idt::{TrapFrame, trap_frame_restore, trap_frame_save};

/// Marks a `TrapFrame` built by the system-call entry (not an IDT vector).
pub const SYSCALL_FRAME_VECTOR: u64 = 0x1_0000;

/// Per-CPU data reached through GS while in the kernel. Field offsets are used by the entry stub.
#[repr(C)]
pub struct PerCpu {
    /// Offset 0: the user RSP, saved by the entry stub.
    user_rsp: AtomicU64,
    /// Offset 8: top of the running task's kernel stack.
    kernel_rsp: AtomicU64,
}

static PER_CPU: PerCpu = PerCpu {
    user_rsp: AtomicU64::new(0),
    kernel_rsp: AtomicU64::new(0),
};

const MSR_GS_BASE: u32 = 0xc000_0101;
const EFER_SCE: u64 = 1;
/// RFLAGS bits cleared on `SYSCALL`: TF, IF, DF, NT, AC.
const SYSCALL_RFLAGS_MASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 14) | (1 << 18);
/// RFLAGS for a fresh user context: IF and the always-one bit 1.
const USER_RFLAGS: u64 = (1 << 9) | (1 << 1);

core::arch::global_asm!(
    concat!(
    r#"
    .section .text.syscall, "ax"
    .global syscall_entry
    .type syscall_entry, @function
syscall_entry:
    swapgs
    mov gs:[0], rsp
    mov rsp, gs:[8]
    push {user_data}
    push qword ptr gs:[0]
    push r11
    push {user_code}
    push rcx
    push 0
    push {syscall_vector}
"#,
    trap_frame_save!(),
    r#"
    mov rdi, rsp
    push qword ptr [rsp + {rip_offset}]
    push rbp
    mov rbp, rsp
    cld
    sti
    call {dispatch}
    cli
    add rsp, 16
"#,
    trap_frame_restore!(),
    r#"
    swapgs
    iretq
    .size syscall_entry, . - syscall_entry
"#
    ),
    user_data = const USER_DATA as u64,
    user_code = const USER_CODE as u64,
    syscall_vector = const SYSCALL_FRAME_VECTOR,
    rip_offset = const core::mem::offset_of!(TrapFrame, rip),
    dispatch = sym syscall_dispatch,
);

unsafe extern "C" {
    fn syscall_entry();
}

/// The handler the entry stub calls, with interrupts enabled.
pub type SyscallHandler = fn(frame: &mut TrapFrame);
static HANDLER: AtomicU64 = AtomicU64::new(0);

extern "C" fn syscall_dispatch(frame: *mut TrapFrame) {
    let handler = HANDLER.load(Ordering::Acquire);
    if handler == 0 {
        // SAFETY: the stub passes its own frame, valid and unaliased for this call.
        unsafe { (*frame).rax = (-38i64) as u64 };
        return;
    }
    // SAFETY: only `init` stores non-zero values, and it stores `SyscallHandler` pointers.
    let handler: SyscallHandler =
        unsafe { core::mem::transmute::<usize, SyscallHandler>(handler as usize) };
    check_alignment_flag_cleared("syscall");
    // SAFETY: the frame is the stub's own, valid and unaliased for this call.
    let frame = unsafe { &mut *frame };
    handler(frame);
    super::trap::run_user_return_hook(frame);
}

/// Programs `SYSCALL` and the GS bases on this CPU.
pub fn init(handler: SyscallHandler) {
    HANDLER.store(handler as usize as u64, Ordering::Release);
    // SAFETY: these MSRs exist on every x86_64 CPU. STAR's selectors match the GDT layout that
    // SYSCALL/SYSRET require (gdt.rs); LSTAR points at the entry stub above; GS_BASE points at
    // this CPU's area while in the kernel and KERNEL_GS_BASE holds user mode's (0) until swapgs.
    unsafe {
        let efer = cpu::read_msr(MSR_EFER);
        cpu::write_msr(MSR_EFER, efer | EFER_SCE);
        let user_base = u64::from(USER_DATA & !3) - 8;
        cpu::write_msr(MSR_STAR, (user_base << 48) | (u64::from(KERNEL_CODE) << 32));
        cpu::write_msr(MSR_LSTAR, syscall_entry as *const () as u64);
        cpu::write_msr(MSR_FMASK, SYSCALL_RFLAGS_MASK);
        cpu::write_msr(MSR_GS_BASE, &PER_CPU as *const PerCpu as u64);
        cpu::write_msr(MSR_KERNEL_GS_BASE, 0);
    }
    // User programs use SSE (every x86_64 ABI assumes it): no x87 emulation (EM), FPU present
    // (MP), FXSAVE-format state and SIMD exceptions on (OSFXSR, OSXMMEXCPT). The kernel itself is
    // built soft-float and never touches these registers, so user state survives system calls
    // untouched; task switches will save it with FXSAVE.
    // SAFETY: only FPU/SSE enable bits change; paging and protection bits are untouched.
    unsafe {
        cpu::update_cr0(CR0_MP, CR0_EM);
        cpu::set_cr4_bits(CR4_OSFXSR | CR4_OSXMMEXCPT);
    }
    // SMEP: the kernel never executes user pages; SMAP: it never reads or writes them through
    // user addresses either (user memory is copied through the direct map, see mm::user), so
    // both can be on from the start, turning any such bug into a fault instead of an exploit.
    let features = cpu::cpuid(7, 0).ebx;
    let mut protections = 0;
    if features & CPUID7_EBX_SMEP != 0 {
        protections |= CR4_SMEP;
    }
    if features & CPUID7_EBX_SMAP != 0 {
        protections |= CR4_SMAP;
    }
    // SAFETY: enabling SMEP/SMAP only restricts the kernel's access to user pages, which it
    // never uses (see above).
    unsafe { cpu::set_cr4_bits(protections) };
    PROTECTIONS.store(protections, Ordering::Relaxed);
    SMAP_ACTIVE.store(u8::from(protections & CR4_SMAP != 0), Ordering::Release);
}

/// 1 once SMAP is on: the interrupt entry (`idt::trap_common`) then runs `clac`, an instruction
/// only CPUs with SMAP have. (SYSCALL needs none: `SYSCALL_RFLAGS_MASK` clears AC.)
pub static SMAP_ACTIVE: AtomicU8 = AtomicU8::new(0);

const RFLAGS_AC: u64 = 1 << 18;
static AC_REPORTED: AtomicBool = AtomicBool::new(false);

/// Warns (once) if a kernel entry left EFLAGS.AC set — SMAP would be off in the handler. Both
/// entries (interrupts, `SYSCALL`) call it; the warning is what tests look for.
pub fn check_alignment_flag_cleared(entry: &str) {
    if cpu::read_rflags() & RFLAGS_AC != 0 && !AC_REPORTED.swap(true, Ordering::Relaxed) {
        crate::kprintln!("{entry}: entered the kernel with EFLAGS.AC set (SMAP off)");
    }
}

static PROTECTIONS: AtomicU64 = AtomicU64::new(0);

/// Whether SMEP and SMAP are on (for the boot log and tests).
pub fn smep_smap() -> (bool, bool) {
    let bits = PROTECTIONS.load(Ordering::Relaxed);
    (bits & CR4_SMEP != 0, bits & CR4_SMAP != 0)
}

const CPUID7_EBX_SMEP: u32 = 1 << 7;
const CPUID7_EBX_SMAP: u32 = 1 << 20;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;

/// Sets the kernel stack used on entry from user mode (system calls and interrupts).
pub fn set_kernel_stack(top: u64) {
    PER_CPU.kernel_rsp.store(top, Ordering::Release);
    super::gdt::set_kernel_stack(top);
}

/// Sets the user FS base (thread-local storage, `arch_prctl(ARCH_SET_FS)`).
pub fn set_user_fs_base(base: u64) {
    // SAFETY: FS_BASE only affects FS-relative addressing, which the kernel does not use.
    unsafe { cpu::write_msr(cpu::MSR_FS_BASE, base) };
}

/// A user context as a fresh `TrapFrame`: `entry` with stack `rsp`, every register zero.
pub fn initial_user_frame(entry: u64, rsp: u64) -> TrapFrame {
    TrapFrame {
        rip: entry,
        cs: u64::from(USER_CODE),
        rflags: USER_RFLAGS,
        rsp,
        ss: u64::from(USER_DATA),
        ..TrapFrame::default()
    }
}

/// Leaves the kernel for the user context `frame` (on the current kernel stack, which is
/// abandoned). Interrupts come back on with the user RFLAGS.
pub fn return_to_user(frame: &TrapFrame) -> ! {
    super::trap::check_user_rip(frame.rip);
    cpu::disable_interrupts();
    // SAFETY: `frame` describes a user-mode context (CS/SS are the user selectors, checked by the
    // CPU's IRET rules); the active page tables map its code and stack. swapgs restores the user
    // GS base, matching the swapgs of the next kernel entry.
    unsafe {
        core::arch::asm!(
            "mov rsp, {frame}",
            trap_frame_restore!(),
            "swapgs",
            "iretq",
            frame = in(reg) frame as *const TrapFrame,
            options(noreturn)
        )
    }
}
