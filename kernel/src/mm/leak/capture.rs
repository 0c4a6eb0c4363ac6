//! Allocation stacks: a cheap frame-pointer walk at allocation time, and the filtering and
//! symbolization that happen only when somebody reads a report.
//!
//! `debug::backtrace::Backtrace` is built for the panic path: it walks up to 32 frames and asks
//! the stack registry (a lock and a 64-entry search) about every frame. On every allocation that
//! would cost more than the allocation itself, so the tracker walks its own way under the same
//! rules — only inside a registered kernel stack, strictly upwards — but looks the stack up once
//! and caches it, and keeps only `SITE_DEPTH` raw return addresses. Which of those belong to the
//! allocator (`__rust_alloc`, `alloc::raw_vec::…`, `Box::new`, `drop_in_place` glue) is decided
//! when a report is printed, from the kallsyms names, so that a report's first frame is the
//! code that asked for memory.

use core::fmt;

use crate::arch::x86_64::stack::{self, StackRange};
use crate::debug::kallsyms::{self, Symbolic};

/// The frame pointer of the calling function.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory access, no side effects.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

/// The stack pointer of the calling function.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}

/// The stack the last walk ran on: almost every walk starts on the same one.
pub struct StackCache(Option<StackRange>);

impl StackCache {
    pub const fn new() -> Self {
        Self(None)
    }

    fn stack_of(&mut self, rbp: u64) -> Option<StackRange> {
        match self.0 {
            Some(range) if range.contains(rbp as usize, 16) => Some(range),
            _ => {
                self.0 = stack::find(rbp as usize, 16);
                self.0
            }
        }
    }
}

/// Calls `f(i, return_address)` for the return addresses of the frame chain starting at `rbp`,
/// after dropping the first `skip`, at most `max` times; returns how many it visited.
#[inline(always)]
pub fn walk_with(
    cache: &mut StackCache,
    rbp: u64,
    skip: usize,
    max: usize,
    mut f: impl FnMut(usize, u64),
) -> usize {
    let Some(range) = cache.stack_of(rbp) else {
        return 0;
    };
    // A frame record is 16 bytes and must lie wholly inside the stack.
    let (bottom, last) = (range.bottom as u64, range.top as u64 - 16);
    let (mut rbp, mut skip, mut n) = (rbp, skip, 0);
    while n < max && rbp >= bottom && rbp <= last && rbp.is_multiple_of(8) {
        // SAFETY: `[rbp, rbp + 16)` lies inside a registered, mapped kernel stack.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        if skip > 0 {
            skip -= 1;
        } else {
            f(n, ret);
            n += 1;
        }
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    n
}

/// `walk_with` into a slice: returns how many return addresses were written to `out`.
#[inline]
pub fn walk(cache: &mut StackCache, rbp: u64, skip: usize, out: &mut [u64]) -> usize {
    let max = out.len();
    walk_with(cache, rbp, skip, max, |i, ret| out[i] = ret)
}

/// Whether a function name belongs to the allocation machinery rather than to its user: the
/// rule the host's TUI applies too, defined once in `cadenza_abi::allocator`.
pub use cadenza_abi::allocator::is_allocator_name;

fn is_allocator_frame(address: u64) -> bool {
    kallsyms::lookup(address.wrapping_sub(1)).is_some_and(|s| is_allocator_name(s.name))
}

/// `frames` without the allocator's own frames at the top: the first entry is the caller that
/// asked for (or gave back) the memory. Without a symbol table nothing can be recognised and
/// the stack is returned whole.
pub fn caller_frames(frames: &[u64]) -> &[u64] {
    let skip = frames
        .iter()
        .take_while(|&&f| is_allocator_frame(f))
        .count();
    if skip == frames.len() {
        frames
    } else {
        &frames[skip..]
    }
}

/// Formats a stack on one line: `kernel::a+0x1c/0x40 <- kernel::b+0x99/0x120`, at most `max`
/// frames (raw addresses where no symbol is known), `?` for an empty stack.
pub struct OneLine<'a> {
    pub frames: &'a [u64],
    pub max: usize,
}

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frames = caller_frames(self.frames);
        if frames.is_empty() {
            return f.write_str("?");
        }
        for (i, &address) in frames.iter().take(self.max).enumerate() {
            if i > 0 {
                f.write_str(" <- ")?;
            }
            write_frame(f, address)?;
        }
        Ok(())
    }
}

/// `kernel::foo+0x22/0x30`, or the raw address where no symbol is known.
pub fn write_frame(f: &mut dyn fmt::Write, address: u64) -> fmt::Result {
    if kallsyms::lookup(address.wrapping_sub(1)).is_some() {
        write!(
            f,
            "{}",
            Symbolic {
                address,
                return_address: true
            }
        )
    } else {
        write!(f, "{address:#x}")
    }
}

#[inline(never)]
fn probe_inner(cache: &mut StackCache, out: &mut [u64]) -> usize {
    core::hint::black_box(walk(cache, frame_pointer(), 0, out))
}

#[inline(never)]
fn probe_outer(cache: &mut StackCache, out: &mut [u64]) -> usize {
    core::hint::black_box(probe_inner(cache, out))
}

crate::kernel_test!(leak_capture_walks_and_filters, {
    let mut cache = StackCache::new();
    let mut frames = [0u64; 8];
    let n = probe_outer(&mut cache, &mut frames);
    crate::check!(n >= 3, "probe_inner <- probe_outer <- test");
    let name = |a: u64| kallsyms::lookup(a - 1).map(|s| s.name).unwrap_or("?");
    crate::check!(
        name(frames[0]).ends_with("probe_outer"),
        "the first return address is into the caller"
    );
    let mut skipped = [0u64; 8];
    let m = walk(&mut cache, frame_pointer(), 1, &mut skipped);
    crate::check!(m >= 1);
    crate::check!(walk(&mut cache, 0xdead_beef, 0, &mut skipped) == 0);
    crate::check!(is_allocator_name("alloc::raw_vec::RawVec<T,A>::grow_one"));
    crate::check!(is_allocator_name(
        "<alloc::vec::Vec<T,A> as core::clone::Clone>::clone"
    ));
    crate::check!(is_allocator_name(
        "<str as alloc::string::ToString>::to_string"
    ));
    crate::check!(is_allocator_name("__rust_alloc"));
    crate::check!(is_allocator_name("__rustc::__rust_dealloc"));
    crate::check!(is_allocator_name("<usize as core::fmt::Display>::fmt"));
    crate::check!(is_allocator_name("core::fmt::write"));
    crate::check!(!is_allocator_name("kernel::mm::leak::tests::leaky"));
    crate::check!(!is_allocator_name("kernel::mm::heap::bench::round"));
});
