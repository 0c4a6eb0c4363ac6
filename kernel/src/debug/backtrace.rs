//! Frame-pointer backtraces that cannot fault.
//!
//! The kernel is built with `-C force-frame-pointers=yes`, so each frame starts with the saved
//! RBP followed by the return address. The walker follows that chain only while it stays inside a
//! registered kernel stack (see `arch::x86_64::stack`), moving strictly upwards within a stack;
//! anything else — a null or misaligned RBP, a pointer into the heap, a loop — ends the walk.
//! Trap entry pushes a synthetic record, so walks continue across exception frames.

use crate::arch::x86_64::stack;

pub const MAX_FRAMES: usize = 32;

#[derive(Clone, Copy)]
pub struct Backtrace {
    frames: [u64; MAX_FRAMES],
    len: usize,
}

impl Backtrace {
    /// The return addresses reachable from `rbp`, preceded by `pc` if given.
    pub fn from_frame_pointer(pc: Option<u64>, rbp: u64) -> Self {
        let mut bt = Self {
            frames: [0; MAX_FRAMES],
            len: 0,
        };
        if let Some(pc) = pc {
            bt.push(pc);
        }
        let mut rbp = rbp as usize;
        while bt.len < MAX_FRAMES {
            if rbp == 0 || !rbp.is_multiple_of(8) {
                break;
            }
            let Some(stack) = stack::find(rbp, 16) else {
                break;
            };
            // SAFETY: `[rbp, rbp + 16)` lies inside a registered, mapped kernel stack.
            let (next, ret) = unsafe { (*(rbp as *const usize), *((rbp + 8) as *const usize)) };
            if ret == 0 {
                break;
            }
            bt.push(ret as u64);
            // Within one stack frames only move towards the top; moving to another registered
            // stack (a trap taken on an IST stack) is allowed and checked on the next round.
            if stack.contains(next, 16) && next <= rbp {
                break;
            }
            rbp = next;
        }
        bt
    }

    /// A backtrace of the caller.
    #[inline(always)]
    pub fn capture() -> Self {
        Self::from_frame_pointer(None, crate::arch::x86_64::cpu::read_rbp())
    }

    fn push(&mut self, addr: u64) {
        if self.len < MAX_FRAMES {
            self.frames[self.len] = addr;
            self.len += 1;
        }
    }

    pub fn frames(&self) -> &[u64] {
        &self.frames[..self.len]
    }
}

#[inline(never)]
fn nested_b() -> Backtrace {
    core::hint::black_box(Backtrace::capture())
}

#[inline(never)]
fn nested_a() -> Backtrace {
    core::hint::black_box(nested_b())
}

crate::kernel_test!(backtrace_walks_kernel_frames_and_stops, {
    let bt = nested_a();
    let frames = bt.frames();
    crate::check!(
        frames.len() >= 3,
        "expected at least nested_b <- nested_a <- test"
    );
    crate::check!(
        frames.iter().all(|&f| crate::mm::layout::is_kernel_text(f)),
        "every return address must be kernel text"
    );
    crate::check!(
        frames.len() < MAX_FRAMES,
        "the walk must end at the bottom of the boot stack"
    );
    // Garbage frame pointers end the walk instead of faulting.
    for bogus in [0u64, 1, 0xdead_beef, 0xffff_8000_0000_0000, u64::MAX - 7] {
        crate::check_eq!(
            Backtrace::from_frame_pointer(Some(42), bogus).frames(),
            &[42]
        );
    }
});
