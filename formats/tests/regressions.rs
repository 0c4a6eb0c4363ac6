//! Inputs the fuzz harnesses (`tests/fuzz.rs`) found, kept as fixed cases.

use cadenza_formats::{cpio, elf};

/// `e_phoff` = 2^64 - 1: reading the first program header overflowed `phoff + 4` (a panic with
/// overflow checks, as in a debug kernel; a wrapped, wrong read without). Found by `fuzz_elf_parser`.
#[test]
fn a_program_header_offset_at_the_top_of_the_address_space_is_not_an_executable() {
    let mut image = vec![0u8; 64 + 56];
    image[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    image[16] = 3; // ET_DYN
    image[18] = 62;
    image[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    image[54] = 56;
    image[56] = 1;
    assert_eq!(elf::parse(&image).err(), Some(elf::ElfError::Truncated));
    for phoff in [u64::MAX - 3, u64::MAX - 55, (usize::MAX - 8) as u64] {
        image[32..40].copy_from_slice(&phoff.to_le_bytes());
        assert_eq!(elf::parse(&image).err(), Some(elf::ElfError::Truncated));
    }
}

/// A member whose data ends the input without its padding, and no trailer: the truncation is
/// reported at the end of the archive, not past it. Found by `fuzz_cpio_reader`.
#[test]
fn a_truncated_archive_is_reported_inside_the_archive() {
    let mut archive = b"070701".to_vec();
    let fields = [1u32, 0o100644, 0, 0, 1, 0, 1, 0, 0, 0, 0, 2, 0];
    for field in fields {
        archive.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    archive.extend_from_slice(b"a\0"); // header and name: 112 bytes, already 4-aligned
    archive.extend_from_slice(b"x"); // one data byte, no padding, no trailer
    let items: Vec<_> = cpio::Reader::new(&archive).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().map(|entry| entry.data), Ok(&b"x"[..]));
    let failure = items[1].as_ref().expect_err("no trailer");
    assert_eq!(failure.error, cpio::ArchiveError::Truncated);
    assert_eq!(failure.offset, archive.len());
}
