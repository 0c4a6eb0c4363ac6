//! Kernel stacks for tasks: contiguous frames reached through the direct map, registered with
//! the unwinder so backtraces walk them.

use crate::arch::x86_64::stack::{self, StackRange};
use crate::errno::{EResult, Errno};
use crate::mm::{frame_allocator, phys_to_virt};

/// 32 KiB: system calls run here, and the leak tracker's backtraces walk it.
pub const FRAMES: usize = 8;

pub struct KernelStack {
    phys: u64,
}

impl KernelStack {
    pub fn new() -> EResult<Self> {
        let phys = frame_allocator::alloc_contiguous(FRAMES, 1).ok_or(Errno::ENOMEM)?;
        let stack = Self { phys };
        stack::register(stack.range());
        Ok(stack)
    }

    fn range(&self) -> StackRange {
        let bottom = phys_to_virt(self.phys) as usize;
        StackRange {
            bottom,
            top: bottom + FRAMES * 4096,
        }
    }

    pub fn top(&self) -> u64 {
        self.range().top as u64
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        stack::unregister(self.range());
        frame_allocator::free_contiguous(self.phys, FRAMES);
    }
}
