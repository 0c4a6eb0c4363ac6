//! Switching the CPU between kernel stacks (tasks), and the FPU/SSE state that goes with them.
//!
//! A task that is not running is a kernel stack whose top holds the callee-saved registers
//! pushed by `context_switch`; switching saves ours the same way and pops the other's. A new task
//! gets a stack prepared so that the first switch to it "returns" into its entry function.
//! User FPU/SSE state is saved with FXSAVE on every switch: the kernel itself never touches
//! those registers (soft-float build), so they hold the user's state the whole time it is in
//! the kernel.

use core::arch::asm;

core::arch::global_asm!(
    r#"
    .section .text.context, "ax"
    .global context_switch
    .type context_switch, @function
context_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    .size context_switch, . - context_switch
"#
);

unsafe extern "C" {
    fn context_switch(save_rsp: *mut u64, load_rsp: u64);
}

/// Saves the current kernel context into `*save_rsp` and resumes the one saved at `load_rsp`;
/// returns when something switches back to us.
///
/// # Safety
/// Interrupts must be masked; `load_rsp` must come from a previous `switch` or from
/// `prepare_stack` on a live kernel stack; `save_rsp` must stay valid until we are resumed.
pub unsafe fn switch(save_rsp: *mut u64, load_rsp: u64) {
    // SAFETY: the caller's contract; `context_switch` follows the C ABI.
    unsafe { context_switch(save_rsp, load_rsp) };
}

/// Lays out a fresh kernel stack (`top` 16-byte aligned) so that switching to the returned RSP
/// enters `entry` with a clean frame-pointer chain.
///
/// # Safety
/// `[top - 64, top)` must be writable memory owned by the new task.
pub unsafe fn prepare_stack(top: u64, entry: extern "C" fn() -> !) -> u64 {
    let words: [u64; 8] = [0, 0, 0, 0, 0, 0, entry as usize as u64, 0];
    let rsp = top - 8 * words.len() as u64;
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), rsp as *mut u64, words.len()) };
    rsp
}

/// FXSAVE area: x87, MMX and SSE registers.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state after `FNINIT` with SSE defaults: x87 control word 0x37f, MXCSR 0x1f80.
    pub fn initial() -> Self {
        let mut bytes = [0u8; 512];
        bytes[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        bytes[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        bytes[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        Self(bytes)
    }

    /// Saves the CPU's current FPU/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: FXSAVE writes exactly 512 bytes to a 16-byte aligned buffer, which this is.
        unsafe { asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// The raw FXSAVE image (for signal frames).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Replaces the image with one a user program handed back (`rt_sigreturn`); MXCSR reserved
    /// bits are cleared so that FXRSTOR cannot fault on it.
    pub fn load_bytes(&mut self, bytes: &[u8; 512]) {
        self.0.copy_from_slice(bytes);
        let mxcsr = u32::from_le_bytes(self.0[24..28].try_into().expect("4 bytes")) & 0xffff;
        self.0[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    }

    /// Loads these registers into the CPU.
    pub fn restore(&self) {
        // SAFETY: the buffer holds a state produced by FXSAVE or `initial` (valid MXCSR).
        unsafe { asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }
}
