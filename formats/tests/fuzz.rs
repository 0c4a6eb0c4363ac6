//! Fuzzing the kernel's initramfs (newc cpio) and ELF parsers on the host (docs/fuzzing.md).
//!
//! Properties: no input panics, loops or allocates hugely; the reader always ends (every entry
//! moves it forward); what it accepts is self-consistent (names are NUL-free and short, data
//! lies inside the archive; ELF headers it accepts have a `PT_LOAD` and at most 128 entries).

use cadenza_formats::{cpio, elf};
use cadenza_fuzz::{Harness, LimitedAllocator, Rng};

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator::new(256 << 20);

/// One newc member, as GNU cpio writes it.
fn member(out: &mut Vec<u8>, magic: &str, name: &str, mode: u32, nlink: u32, data: &[u8]) {
    let check = if magic == "070702" {
        data.iter()
            .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
    } else {
        0
    };
    let fields = [
        out.len() as u32, // ino
        mode,
        0,
        0,
        nlink,
        1_700_000_000,
        data.len() as u32,
        8,
        1,
        if mode & 0o170000 == 0o020000 { 1 } else { 0 },
        if mode & 0o170000 == 0o020000 { 3 } else { 0 },
        name.len() as u32 + 1,
        check,
    ];
    out.extend_from_slice(magic.as_bytes());
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn archive(magic: &str) -> Vec<u8> {
    let mut out = Vec::new();
    member(&mut out, magic, ".", 0o040755, 2, b"");
    member(&mut out, magic, "bin", 0o040755, 2, b"");
    member(
        &mut out,
        magic,
        "init",
        0o100755,
        1,
        b"#!/bin/sh\necho hello\n",
    );
    member(&mut out, magic, "bin/sh", 0o120777, 1, b"/bin/busybox");
    member(&mut out, magic, "dev/null", 0o020666, 1, b"");
    member(&mut out, magic, "a", 0o100644, 2, b"");
    member(&mut out, magic, "b", 0o100644, 2, b"linked data");
    member(&mut out, magic, "TRAILER!!!", 0, 1, b"");
    out
}

fn cpio_corpus() -> Vec<Vec<u8>> {
    let newc = archive("070701");
    let crc = archive("070702");
    let mut concatenated = newc.clone();
    concatenated.extend_from_slice(&[0; 512]);
    concatenated.extend_from_slice(&crc);
    vec![newc, crc, concatenated, vec![0x1f, 0x8b, 8, 0], Vec::new()]
}

/// Sets one header field of one member to an edge value, in the 8 hex digits newc uses.
fn cpio_field(rng: &mut Rng, input: &mut [u8]) {
    let headers: Vec<usize> = input
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"07070")
        .map(|(at, _)| at)
        .collect();
    if headers.is_empty() {
        return;
    }
    let at = *rng.pick(&headers) + 6 + 8 * rng.below(13);
    let value = rng.edge_u64() as u32;
    if let Some(field) = input.get_mut(at..at + 8) {
        field.copy_from_slice(format!("{value:08x}").as_bytes());
    }
}

fn read_archive(input: &[u8]) {
    let mut entries = 0;
    for item in cpio::Reader::new(input) {
        match item {
            Ok(entry) => {
                entries += 1;
                assert!(!entry.name.is_empty() && entry.name.len() < cpio::NAME_MAX_LEN);
                assert!(!entry.name.contains('\0'));
                assert!(!entry.name.split('/').any(|c| c == ".."));
                assert!(entry.data.len() <= input.len());
            }
            Err(failure) => {
                assert!(failure.offset <= input.len());
                let _ = failure.to_string();
            }
        }
        // Every entry consumes at least a header.
        assert!(entries <= input.len() / 110 + 1);
    }
}

#[test]
fn fuzz_cpio_reader() {
    let report = Harness::new("cpio", 20_000)
        .corpus(cpio_corpus())
        .dictionary(&[
            b"070701",
            b"070702",
            b"TRAILER!!!\0",
            b"..",
            b"/",
            b"\0\0\0\0",
        ])
        .structure(|rng, input| cpio_field(rng, input))
        .run(read_archive);
    assert!(report.iterations > 0);
}

/// A tiny ET_EXEC image: header, `PT_INTERP` naming `/lib/ld.so`, one `PT_LOAD` of the file.
fn small_elf(kind: u16) -> Vec<u8> {
    let mut image = vec![0u8; 64 + 3 * 56];
    image[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    image[16..18].copy_from_slice(&kind.to_le_bytes());
    image[18] = 62;
    image[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
    image[32] = 64;
    image[54] = 56;
    image[56] = 3;
    let path = b"/lib/ld.so\0";
    let path_at = image.len() as u64;
    image.extend_from_slice(path);
    let mut header = |index: usize, kind: u32, offset: u64, vaddr: u64, size: u64| {
        let at = 64 + index * 56;
        image[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        image[at + 4..at + 8].copy_from_slice(&5u32.to_le_bytes());
        image[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        image[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        image[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        image[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
    };
    header(0, elf::PT_PHDR, 64, 0x40_0040, 3 * 56);
    header(1, elf::PT_INTERP, path_at, 0, path.len() as u64);
    header(2, elf::PT_LOAD, 0, 0x40_0000, path_at + path.len() as u64);
    image
}

/// The first bytes (headers, program headers, `PT_INTERP`) of real ELF files on this machine:
/// the kernel itself if built, busybox (static PIE) and a dynamically linked program.
fn real_elf_heads() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    [
        format!("{root}/target/x86_64-unknown-none/release/kernel"),
        "/bin/busybox".to_string(),
        "/bin/sh".to_string(),
        "/usr/bin/env".to_string(),
    ]
    .iter()
    .filter_map(|path| std::fs::read(path).ok())
    .map(|mut bytes| {
        bytes.truncate(8192);
        bytes
    })
    .collect()
}

/// Sets one field of the ELF header or of a program header to an edge value.
fn elf_field(rng: &mut Rng, input: &mut [u8]) {
    const HEADER_FIELDS: [(usize, usize); 8] = [
        (16, 2),
        (18, 2),
        (24, 8),
        (32, 8),
        (54, 2),
        (56, 2),
        (4, 1),
        (5, 1),
    ];
    const PHDR_FIELDS: [(usize, usize); 6] = [(0, 4), (4, 4), (8, 8), (16, 8), (32, 8), (40, 8)];
    let (at, width) = if rng.one_in(3) {
        *rng.pick(&HEADER_FIELDS)
    } else {
        let phoff = input
            .get(32..40)
            .map_or(64, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        let (field, width) = *rng.pick(&PHDR_FIELDS);
        let index = rng.below(16) as u64;
        let Some(at) = phoff
            .checked_add(index * 56 + field as u64)
            .and_then(|at| usize::try_from(at).ok())
        else {
            return;
        };
        (at, width)
    };
    let value = rng.edge_u64().to_le_bytes();
    if let Some(field) = input.get_mut(at..at.saturating_add(width)) {
        field.copy_from_slice(&value[..width]);
    }
}

fn parse_elf(input: &[u8]) {
    let Ok(file) = elf::parse(input) else {
        return;
    };
    assert!(!file.headers.is_empty() && file.headers.len() <= elf::MAX_PROGRAM_HEADERS);
    assert!(file.headers.iter().any(|h| h.kind == elf::PT_LOAD));
    if let Ok(Some(path)) = file.interpreter() {
        assert!(!path.contains('\0') && path.len() < elf::INTERPRETER_PATH_MAX as usize);
    }
    if let Ok((low, high)) = file.span() {
        assert!(low < high && low % elf::PAGE == 0 && high % elf::PAGE == 0);
    }
}

#[test]
fn fuzz_elf_parser() {
    let report = Harness::new("elf", 20_000)
        .corpus([small_elf(elf::ET_EXEC), small_elf(elf::ET_DYN)])
        .corpus(real_elf_heads())
        .dictionary(&[
            b"\x7fELF\x02\x01\x01",
            b"/lib/ld.so\0",
            b"\x01\0\0\0",
            b"\x03\0\0\0",
        ])
        .structure(|rng, input| elf_field(rng, input))
        .run(parse_elf);
    assert!(report.iterations > 0);
}
