//! Parsers for the untrusted file formats the kernel reads: the initramfs (newc cpio, `cpio`)
//! and executables (ELF64, `elf`).
//!
//! They live outside the kernel so they can be fuzzed on the host (`tests/fuzz.rs`,
//! docs/fuzzing.md): a parser inside the kernel can only be exercised by booting it, one input
//! per boot, while here millions of hostile inputs run in a minute. The crate is therefore pure:
//! byte slices in, parsed structures or errors out, no kernel types, no `unsafe`, `alloc` only
//! for an error's copy of an entry name and an ELF file's (bounded) program-header list. The
//! kernel keeps everything that acts on the result (creating files, mapping segments).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cpio;
pub mod elf;
