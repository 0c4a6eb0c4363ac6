//! Deliberate crashes, so that tests (and users) can drive every fatal path on demand.
//!
//! Booting with `panic_test` panics (`panic_test=oom`: after exhausting the kernel heap, so the
//! panic report is shown to work without memory); `fault_test=<kind>` raises a CPU exception. The same
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

/// Takes every frame the heap can get (large blocks, then smaller, down to 16 bytes), keeps
/// them, then makes one ordinary infallible allocation: the allocation-failure panic that
/// follows must still print its report (the panic path does not allocate).
pub fn exhaust_heap_then_allocate() -> ! {
    let mut size = 1 << 20;
    let mut taken = 0usize;
    while size >= 16 {
        let Ok(layout) = core::alloc::Layout::from_size_align(size, 16) else {
            break;
        };
        // `black_box`: a block nobody uses may be elided by LLVM and its null test folded to
        // "succeeded", which turned this loop into an endless one.
        // SAFETY: a non-zero-size layout; the block is deliberately never freed.
        let block = core::hint::black_box(unsafe { alloc::alloc::alloc(layout) });
        if block.is_null() {
            size /= 2;
        } else {
            taken += size;
        }
    }
    crate::kprintln!("panic_test=oom: the heap gave {taken} bytes and has no more");
    let last = alloc::boxed::Box::new(core::hint::black_box([0u8; 64]));
    core::hint::black_box(&last);
    panic!("panic_test=oom: an allocation succeeded after the heap was exhausted")
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
