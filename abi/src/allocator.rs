//! Which stack frames belong to the allocation machinery rather than to the code that wanted
//! the memory.
//!
//! The kernel's leak tracker strips these frames from the top of an allocation's stack so a
//! call site is named after its user (`kernel/src/mm/leak/capture.rs`), and the TUI applies the
//! same rule on the host when a kernel without an embedded symbol table could not strip them
//! itself. One rule for both, so the two never disagree about where a call site starts.

/// Name prefixes of the allocator's own functions (demangled, hash-free names).
const ALLOCATOR_PREFIXES: [&str; 13] = [
    "__rust_",
    "__rustc::",
    "core::fmt::",
    "__rg_",
    "__rdl_",
    "alloc::",
    "<alloc::",
    "core::alloc::",
    "<core::alloc::",
    "core::ptr::drop_in_place",
    "<kernel::mm::heap::KernelHeap",
    "kernel::mm::heap::KernelHeap",
    "kernel::mm::heap::size_class::",
];

/// Whether a function name belongs to the allocation machinery rather than to its user:
/// the global allocator's entry points, `alloc::` collections growing, formatting into a
/// `String`, the kernel heap itself.
pub fn is_allocator_name(name: &str) -> bool {
    ALLOCATOR_PREFIXES.iter().any(|p| name.starts_with(p))
        || (name.starts_with('<')
            && (name.contains(" as alloc::") || name.contains(" as core::fmt::")))
}

#[cfg(test)]
mod tests {
    use super::is_allocator_name;

    #[test]
    fn allocator_frames_and_their_users() {
        for name in [
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "<alloc::vec::Vec<T,A> as core::clone::Clone>::clone",
            "<str as alloc::string::ToString>::to_string",
            "__rust_alloc",
            "__rustc::__rust_dealloc",
            "<usize as core::fmt::Display>::fmt",
            "core::fmt::write",
            "<kernel::mm::heap::KernelHeap as core::alloc::global::GlobalAlloc>::alloc",
            "kernel::mm::heap::size_class::SizeClass::allocate",
        ] {
            assert!(is_allocator_name(name), "{name}");
        }
        for name in [
            "kernel::mm::leak::tests::leaky",
            "kernel::mm::heap::bench::round",
            "kernel::fs::tmpfs::TmpfsInode::file_write",
            "<kernel::fs::File as core::ops::Drop>::drop",
        ] {
            assert!(!is_allocator_name(name), "{name}");
        }
    }
}
