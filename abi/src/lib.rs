//! The contracts between the Cadenza kernel and the host tools, each defined once.
//!
//! The kernel and the host tools (`cadenza-qemu`, `symbols`, `tui`) agree on a few formats and
//! rules that cross the boundary between them: the telemetry snapshot format the kernel writes
//! on a UART and the TUI reads, the `isa-debug-exit` codes the kernel leaves QEMU with, the
//! layout of the `.kallsyms` table the host builds and the kernel reads, and which stack frames
//! belong to the allocator. Each used to be written twice — once in the kernel, once on the host
//! — kept in step by comments. Here each is written once, so a change to either side is a change
//! to both, and the host's `cargo test` exercises the code the kernel links (round trips of the
//! encoder through the decoder, the kallsyms reader against the builder's layout).
//!
//! The crate is `no_std` (the kernel links it, target `x86_64-unknown-none`) and uses `alloc`
//! only where the host needs owned values (the telemetry decoder's records); the kernel-side
//! halves — the telemetry encoder, the kallsyms reader, the exit codes, the allocator rule — never
//! allocate. No `unsafe`: everything here is parsing and formatting of bytes it is handed.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod allocator;
pub mod exit;
pub mod kallsyms;
pub mod telemetry;
