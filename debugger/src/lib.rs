//! The kernel's GDB remote stub, kept outside the kernel.
//!
//! A stub that lives inside the kernel is hard to test: every bug needs a QEMU boot to reproduce.
//! So the protocol side — the `gdbstub` `Target`, software and hardware breakpoints, stop-reason
//! decoding, the KGDB-style "stop the world and talk to gdb" loop — lives here, `no_std` and
//! without allocation, over one small trait (`Machine`) for what only a kernel can do: read a
//! trapped context's registers, touch memory without faulting, program DR0–DR7, list tasks.
//! The kernel implements `Machine` over its trap frame and page tables; the host tests implement
//! it over a fake CPU and drive the very same code with a real `gdb`.
#![no_std]

mod breakpoints;
pub mod machine;
pub mod session;
mod target;

/// The byte-stream traits a connection to gdb implements (a UART in the kernel, TCP in tests).
pub use gdbstub::conn::{Connection, ConnectionExt};
pub use machine::{Machine, MachineError, Registers, ThreadInfo};
pub use session::{Resume, Session, Trap};
