//! Host-side symbolization: kernel addresses and whole console logs in, `function (file:line)` out.
//!
//! The kernel prints raw return addresses (and, from its embedded kallsyms table,
//! `symbol+off/size`) because it cannot carry DWARF line tables at run time. This crate closes
//! the gap on the host: it parses the panic report (`report`, docs/panic-report.md), resolves
//! addresses against the kernel ELF with every inlined frame (`symbolizer`, `object` +
//! `addr2line` + `rustc-demangle`), annotates whole logs as they stream (`annotate`) and builds
//! the kernel's own symbol table (`kallsyms`). A `Symbolizer` is built once and reused: the TUI
//! keeps one open for a whole session.

pub mod annotate;
pub mod elf_symbols;
pub mod kallsyms;
pub mod report;
pub mod symbolizer;

pub use annotate::{AnnotateOptions, Annotator, annotate_str};
pub use report::{PanicKind, PanicReport, ReportError};
pub use symbolizer::{
    AddressKind, Frame, OpenOptions, Resolution, SymbolOffset, Symbolizer, SymbolsError,
    find_workspace_root,
};
