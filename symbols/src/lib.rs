//! Host-side symbolization: kernel addresses and whole console logs in, `function (file:line)` out.
//!
//! The kernel prints raw return addresses in its panic reports because it cannot carry DWARF
//! line tables at run time. This crate will load the kernel ELF once (`object` + `addr2line` +
//! `rustc-demangle`), keep the index open for the TUI's whole session, and annotate backtrace lines
//! with every inlined frame, like `addr2line -f -i -C` and `scripts/decode_stacktrace.sh`.
//!
//! Status: skeleton. The symbolizer arrives with the "Panic analysis" issue.
