//! Kernel stacks with guard pages, and the registry the unwinder trusts.
//!
//! Every kernel stack is a page-aligned block whose lowest page is left unmapped by
//! `mm::paging`, so an overflow faults (and lands on the double-fault IST stack) instead of
//! silently corrupting whatever lies below. The backtracer only follows frame pointers that point
//! into a registered stack, which is what lets it stop cleanly on a corrupt chain.

use core::cell::UnsafeCell;

use crate::sync::IrqSpinLock;

pub const GUARD_SIZE: usize = 4096;
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
pub const IST_STACK_SIZE: usize = 16 * 1024;
/// Offset of the boot stack's top from the start of `BOOT_STACK` (used by the entry assembly).
pub const BOOT_STACK_OFFSET_TOP: usize = GUARD_SIZE + BOOT_STACK_SIZE;

/// A stack preceded by one guard page.
#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    guard: UnsafeCell<[u8; GUARD_SIZE]>,
    stack: UnsafeCell<[u8; N]>,
}

// SAFETY: the memory is only ever used as a CPU stack by one context at a time; Rust code never
// forms references into it.
unsafe impl<const N: usize> Sync for GuardedStack<N> {}

impl<const N: usize> GuardedStack<N> {
    pub const fn new() -> Self {
        Self {
            guard: UnsafeCell::new([0; GUARD_SIZE]),
            stack: UnsafeCell::new([0; N]),
        }
    }

    pub fn guard_page(&self) -> usize {
        self.guard.get() as usize
    }

    pub fn bottom(&self) -> usize {
        self.stack.get() as usize
    }

    pub fn top(&self) -> usize {
        self.bottom() + N
    }

    pub fn range(&self) -> StackRange {
        StackRange {
            bottom: self.bottom(),
            top: self.top(),
        }
    }
}

impl<const N: usize> Default for GuardedStack<N> {
    fn default() -> Self {
        Self::new()
    }
}

pub static BOOT_STACK: GuardedStack<BOOT_STACK_SIZE> = GuardedStack::new();

/// A stack's usable bytes: `[bottom, top)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRange {
    pub bottom: usize,
    pub top: usize,
}

impl StackRange {
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        addr >= self.bottom && addr.checked_add(len).is_some_and(|end| end <= self.top)
    }
}

const MAX_STACKS: usize = 64;

struct Registry {
    stacks: [Option<StackRange>; MAX_STACKS],
}

static REGISTRY: IrqSpinLock<Registry> = IrqSpinLock::new(Registry {
    stacks: [None; MAX_STACKS],
});

/// Makes a stack known to the unwinder. Later, task stacks register here too.
pub fn register(range: StackRange) {
    let mut registry = REGISTRY.lock();
    if let Some(slot) = registry.stacks.iter_mut().find(|s| s.is_none()) {
        *slot = Some(range);
    }
}

/// A copy of every registered stack (the leak scanner reads them as roots); `None` if the
/// registry is locked (we interrupted its owner).
pub fn registered() -> Option<[Option<StackRange>; MAX_STACKS]> {
    REGISTRY.try_lock().map(|registry| registry.stacks)
}

/// The registered stack holding `[addr, addr + len)`, if any. Lock-free fallback for the panic
/// path: if the registry is locked (we interrupted its owner), only the boot stack is trusted.
pub fn find(addr: usize, len: usize) -> Option<StackRange> {
    match REGISTRY.try_lock() {
        Some(registry) => registry
            .stacks
            .iter()
            .flatten()
            .copied()
            .find(|s| s.contains(addr, len)),
        None => Some(BOOT_STACK.range()).filter(|s| s.contains(addr, len)),
    }
}

/// Forgets a stack (a task's kernel stack, before it is freed).
pub fn unregister(range: StackRange) {
    let mut registry = REGISTRY.lock();
    if let Some(slot) = registry.stacks.iter_mut().find(|s| **s == Some(range)) {
        *slot = None;
    }
}
