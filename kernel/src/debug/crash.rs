//! Deliberate crashes, so that tests (and users) can drive every fatal path on demand.
//!
//! Booting with `panic_test` panics; `fault_test=<kind>` raises a CPU exception. The same
//! triggers will back `echo c > /proc/sysrq-trigger` once userspace exists.

use crate::arch::x86_64::fault;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    PageFault,
    InvalidOpcode,
    DivideError,
    GeneralProtection,
    StackOverflow,
}

impl Fault {
    pub const ALL: [(&'static str, Fault); 5] = [
        ("page_fault", Fault::PageFault),
        ("invalid_opcode", Fault::InvalidOpcode),
        ("divide_error", Fault::DivideError),
        ("general_protection", Fault::GeneralProtection),
        ("stack_overflow", Fault::StackOverflow),
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
    panic!("panic_test requested on the kernel command line (depth {depth})")
}

pub fn trigger(kind: Fault) -> ! {
    match kind {
        Fault::PageFault => fault::read_unmapped(),
        Fault::InvalidOpcode => fault::invalid_opcode(),
        Fault::DivideError => fault::divide_by_zero(),
        Fault::GeneralProtection => fault::non_canonical_access(),
        Fault::StackOverflow => {
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
