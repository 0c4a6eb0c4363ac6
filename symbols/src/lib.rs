//! Host-side symbolization: kernel addresses and whole console logs in, `function (file:line)` out.
//!
//! The kernel prints raw return addresses in its panic reports because it cannot carry DWARF
//! line tables at run time. This crate parses those reports (`report`, the format documented in
//! docs/panic-report.md) and will resolve their addresses against the kernel ELF with every
//! inlined frame (`object` + `addr2line` + `rustc-demangle`), keeping the index open for the TUI's
//! whole session.

pub mod report;

pub use report::{PanicKind, PanicReport, ReportError};
