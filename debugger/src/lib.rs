//! The kernel's GDB remote stub, kept outside the kernel.
//!
//! A stub that lives inside the kernel is hard to test: every bug needs a QEMU boot to reproduce.
//! This crate will hold the `gdbstub` `Target` implementation over a small trait that the kernel
//! provides (registers of the trapped context, fault-safe memory access, breakpoint and single-step
//! control, the thread list). On the host the same trait is implemented over a fake register file
//! and memory, so a real `gdb` can drive the stub in `cargo test`.
//!
//! Status: skeleton. The stub arrives with the "In-kernel GDB stub" issue.
#![no_std]
