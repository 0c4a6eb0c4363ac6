//! The parts of an ELF64 executable the kernel's loader reads: the file header, the program
//! headers and the `PT_INTERP` path, checked as Linux's `binfmt_elf` checks them.
//!
//! The file is untrusted input: every field is bounds-checked with checked arithmetic, the
//! number of program headers is capped (so the one allocation, the header list, is bounded),
//! and anything the loader cannot run (wrong class, byte order, machine or type, headers
//! outside the file, no loadable segment, a bad interpreter path) is an `ElfError` — which the
//! kernel reports as `ENOEXEC` (`ELIBBAD` for an interpreter) — never a panic. Mapping the
//! segments stays in the kernel (`exec::elf`).

use alloc::vec::Vec;
use core::fmt;

pub const PAGE: u64 = 4096;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
/// The size of an ELF64 program header, the only `e_phentsize` accepted.
pub const PHENT_SIZE: usize = 56;
/// At most this many program headers (Linux allows 64 KiB of them; real programs have ~15).
pub const MAX_PROGRAM_HEADERS: usize = 128;
/// Linux's limit on the `PT_INTERP` path (`PATH_MAX`).
pub const INTERPRETER_PATH_MAX: u64 = 4096;

/// Why a file is not an executable the loader can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    NotElf,
    /// Not 64-bit little-endian version 1.
    UnsupportedClass,
    /// Not an x86_64 `ET_EXEC` or `ET_DYN`.
    UnsupportedType,
    /// `e_phentsize`/`e_phnum` out of range.
    BadProgramHeaderTable,
    /// A header or segment lies (partly) outside the file.
    Truncated,
    NoLoadSegment,
    /// `PT_INTERP` empty, too long, not NUL-terminated or not UTF-8.
    BadInterpreterPath,
    /// The loadable segments span no memory, or an address overflows.
    BadSegmentAddresses,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotElf => "not an ELF file",
            Self::UnsupportedClass => "not a 64-bit little-endian ELF file",
            Self::UnsupportedType => "not an x86_64 executable or shared object",
            Self::BadProgramHeaderTable => "bad program header table",
            Self::Truncated => "a header lies outside the file",
            Self::NoLoadSegment => "no loadable segment",
            Self::BadInterpreterPath => "bad PT_INTERP path",
            Self::BadSegmentAddresses => "bad segment addresses",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

/// `N` bytes at `at`, or `Truncated` (also when `at + N` overflows).
fn bytes_at<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    let end = at.checked_add(N).ok_or(ElfError::Truncated)?;
    data.get(at..end)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ElfError::Truncated)
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, ElfError> {
    bytes_at(data, at).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, ElfError> {
    bytes_at(data, at).map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], at: usize) -> Result<u64, ElfError> {
    bytes_at(data, at).map(u64::from_le_bytes)
}

/// The parts of an ELF header the loader uses, checked: a 64-bit little-endian x86_64
/// executable or shared object with sane program headers.
#[derive(Clone, Debug)]
pub struct ElfFile<'a> {
    pub data: &'a [u8],
    /// `e_type`: `ET_EXEC` or `ET_DYN`.
    pub kind: u16,
    pub entry: u64,
    /// `e_phoff`: where the program headers are in the file.
    pub phoff: u64,
    pub headers: Vec<ProgramHeader>,
}

/// Parses and checks the header and program headers.
pub fn parse(data: &[u8]) -> Result<ElfFile<'_>, ElfError> {
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    // 64-bit, little-endian, version 1.
    if data.get(4..7) != Some([2u8, 1, 1].as_slice()) {
        return Err(ElfError::UnsupportedClass);
    }
    let kind = u16_at(data, 16)?;
    if u16_at(data, 18)? != EM_X86_64 || !(kind == ET_EXEC || kind == ET_DYN) {
        return Err(ElfError::UnsupportedType);
    }
    let entry = u64_at(data, 24)?;
    let phoff = u64_at(data, 32)?;
    let phentsize = u16_at(data, 54)? as usize;
    let phnum = u16_at(data, 56)? as usize;
    if phentsize != PHENT_SIZE || phnum == 0 || phnum > MAX_PROGRAM_HEADERS {
        return Err(ElfError::BadProgramHeaderTable);
    }
    let table = usize::try_from(phoff).map_err(|_| ElfError::Truncated)?;
    let headers = (0..phnum)
        .map(|i| {
            let at = table
                .checked_add(i * phentsize)
                .ok_or(ElfError::Truncated)?;
            let header: [u8; PHENT_SIZE] = bytes_at(data, at)?;
            Ok(ProgramHeader {
                kind: u32_at(&header, 0)?,
                flags: u32_at(&header, 4)?,
                offset: u64_at(&header, 8)?,
                vaddr: u64_at(&header, 16)?,
                file_size: u64_at(&header, 32)?,
                mem_size: u64_at(&header, 40)?,
            })
        })
        .collect::<Result<Vec<_>, ElfError>>()?;
    if !headers.iter().any(|h| h.kind == PT_LOAD) {
        return Err(ElfError::NoLoadSegment);
    }
    Ok(ElfFile {
        data,
        kind,
        entry,
        phoff,
        headers,
    })
}

impl ElfFile<'_> {
    /// The `PT_INTERP` path (the dynamic linker), if any: NUL-terminated, at most `PATH_MAX`
    /// bytes, inside the file (`ENOEXEC` otherwise, as Linux).
    pub fn interpreter(&self) -> Result<Option<&str>, ElfError> {
        let Some(header) = self.headers.iter().find(|h| h.kind == PT_INTERP) else {
            return Ok(None);
        };
        if header.file_size < 2 || header.file_size > INTERPRETER_PATH_MAX {
            return Err(ElfError::BadInterpreterPath);
        }
        let end = header
            .offset
            .checked_add(header.file_size)
            .ok_or(ElfError::Truncated)?;
        let (Ok(start), Ok(end)) = (usize::try_from(header.offset), usize::try_from(end)) else {
            return Err(ElfError::Truncated);
        };
        let bytes = self.data.get(start..end).ok_or(ElfError::Truncated)?;
        let (&last, path) = bytes.split_last().ok_or(ElfError::BadInterpreterPath)?;
        if last != 0 || path.contains(&0) {
            return Err(ElfError::BadInterpreterPath);
        }
        core::str::from_utf8(path)
            .map(Some)
            .map_err(|_| ElfError::BadInterpreterPath)
    }

    /// The page-aligned span `[low, high)` of the `PT_LOAD` segments' addresses.
    pub fn span(&self) -> Result<(u64, u64), ElfError> {
        let mut low = u64::MAX;
        let mut high = 0;
        for header in self.headers.iter().filter(|h| h.kind == PT_LOAD) {
            let end = header
                .vaddr
                .checked_add(header.mem_size)
                .ok_or(ElfError::BadSegmentAddresses)?;
            low = low.min(header.vaddr & !(PAGE - 1));
            high = high.max(
                end.checked_next_multiple_of(PAGE)
                    .ok_or(ElfError::BadSegmentAddresses)?,
            );
        }
        if low >= high {
            return Err(ElfError::BadSegmentAddresses);
        }
        Ok((low, high))
    }
}
