//! Kernel-side debugging aids: backtraces and the panic report.

pub mod backtrace;
pub mod crash;
pub mod kallsyms;
pub mod kgdb;
pub mod panic_report;
pub mod sysrq;
