//! Deliberate crashes, so that tests (and users) can drive every fatal path on demand.
//!
//! Booting with `panic_test` panics; `fault_test=<kind>` raises a CPU exception. The same
//! triggers will back `echo c > /proc/sysrq-trigger` once userspace exists.

use crate::arch::x86_64::fault;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuFault {
    PageFault,
    InvalidOpcode,
    DivideError,
    GeneralProtection,
    StackOverflow,
}

impl CpuFault {
    pub const ALL: [(&'static str, CpuFault); 5] = [
        ("page_fault", CpuFault::PageFault),
        ("invalid_opcode", CpuFault::InvalidOpcode),
        ("divide_error", CpuFault::DivideError),
        ("general_protection", CpuFault::GeneralProtection),
        ("stack_overflow", CpuFault::StackOverflow),
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }
}

/// Panics on purpose, a few calls deep so the backtrace has something to show.
#[inline(never)]
pub fn panic_test() -> ! {
    crash_inner(core::hint::black_box(1))
}

#[inline(never)]
fn crash_inner(depth: u32) -> ! {
    refuse_to_continue(depth)
}

/// Always inlined, so that symbolizers have an inlined frame to show (the host annotator must
/// report it as inlined into `crash_inner`).
#[inline(always)]
fn refuse_to_continue(depth: u32) -> ! {
    panic!("panic_test requested on the kernel command line (depth {depth})")
}

pub fn trigger(kind: CpuFault) -> ! {
    match kind {
        CpuFault::PageFault => fault::read_unmapped(),
        CpuFault::InvalidOpcode => fault::invalid_opcode(),
        CpuFault::DivideError => fault::divide_by_zero(),
        CpuFault::GeneralProtection => fault::non_canonical_access(),
        CpuFault::StackOverflow => {
            recurse(0);
        }
    }
    panic!("fault_test: the CPU did not fault")
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buffer = core::hint::black_box([depth; 64]);
    recurse(depth + 1).wrapping_add(buffer[(depth % 64) as usize])
}
