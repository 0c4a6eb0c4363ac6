//! Loading a static ELF64 executable (PIE or not) into a fresh address space, with the initial
//! stack laid out exactly as Linux's `create_elf_tables` does, so musl's and glibc's start code
//! find argc, argv, envp and the auxiliary vector where they expect them.
//!
//! A dynamically linked program names its interpreter (`PT_INTERP`, glibc's
//! `/lib64/ld-linux-x86-64.so.2`): as Linux's `binfmt_elf`, the kernel loads both, the program
//! at its usual place and the interpreter in the `mmap` area, and starts the interpreter with
//! AT_BASE (where it is), AT_ENTRY, AT_PHDR and AT_PHNUM (the program) in the auxiliary vector;
//! the interpreter maps the shared libraries with `mmap` and jumps to the program.
//!
//! The files are untrusted: every header field is bounds-checked (the header parsing lives in
//! `cadenza-formats` so it is fuzzed on the host), and anything we cannot run (wrong class or
//! machine, overlapping or kernel-half segments) is `ENOEXEC` — `ELIBBAD` for an interpreter —
//! never a panic.

use alloc::sync::Arc;
use alloc::vec::Vec;

use cadenza_formats::elf::{ET_DYN, ElfError, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};

use crate::errno::{EResult, Errno};
use crate::fs::file::OpenFile;
use crate::mm::user::{AddressSpace, FileMapping, Protection, RegionKind, USER_END};

const PAGE: u64 = 4096;
/// Where position-independent executables are loaded (Linux's ELF_ET_DYN_BASE without ASLR).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
/// Top of the initial stack, and how much of it is mapped up front.
pub const STACK_TOP: u64 = 0x7fff_ffff_e000;
/// The stack region (Linux's default 8 MiB limit); pages are allocated as they are touched.
pub const STACK_SIZE: u64 = 8 * 1024 * 1024;

impl From<ElfError> for Errno {
    fn from(_: ElfError) -> Self {
        Errno::ENOEXEC
    }
}

/// What a loaded program needs to start.
#[derive(Clone, Copy, Debug)]
pub struct LoadedImage {
    /// The program's entry point (AT_ENTRY).
    pub entry: u64,
    /// Where execution starts: the interpreter's entry for a dynamically linked program, the
    /// program's own otherwise.
    pub start: u64,
    /// Where the interpreter was loaded (AT_BASE); 0 without one.
    pub interpreter_base: u64,
    /// Address of the program headers in memory (AT_PHDR).
    pub phdr: u64,
    pub phnum: u64,
    /// First byte after the program's highest segment: the initial program break.
    pub end: u64,
}

/// A program's interpreter as `load` gets it: the file's bytes, and the open file (if there is
/// one) that its segments are attributed to in `/proc/<pid>/maps`, as Linux shows ld.so there.
pub struct Interpreter {
    pub image: Vec<u8>,
    pub file: Option<Arc<OpenFile>>,
}

/// A checked ELF file (parsed by `cadenza-formats`, fuzzed on the host: docs/fuzzing.md), to
/// which the loader adds mapping.
struct ElfFile<'a>(cadenza_formats::elf::ElfFile<'a>);

impl<'a> core::ops::Deref for ElfFile<'a> {
    type Target = cadenza_formats::elf::ElfFile<'a>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Parses and checks the header and program headers; `ENOEXEC` for anything we cannot run.
fn parse(data: &[u8]) -> EResult<ElfFile<'_>> {
    Ok(ElfFile(cadenza_formats::elf::parse(data)?))
}

impl ElfFile<'_> {
    /// Copies the `PT_LOAD` segments into `space`, `base` added to every address, and
    /// attributes them to `file` if given (the pages are all present: it only names them).
    /// Returns the address of the program headers in memory and the end of the highest
    /// segment.
    fn map(
        &self,
        space: &mut AddressSpace,
        base: u64,
        file: Option<&Arc<OpenFile>>,
    ) -> EResult<(u64, u64)> {
        let mut end = 0u64;
        let mut phdr = None;
        for header in self.headers.iter().filter(|h| h.kind == PT_LOAD) {
            let start = base.checked_add(header.vaddr).ok_or(Errno::ENOEXEC)?;
            let segment_end = start.checked_add(header.mem_size).ok_or(Errno::ENOEXEC)?;
            let file_end = header
                .offset
                .checked_add(header.file_size)
                .ok_or(Errno::ENOEXEC)?;
            if header.file_size > header.mem_size
                || file_end > self.data.len() as u64
                || segment_end > USER_END
                || start < PAGE
            {
                return Err(Errno::ENOEXEC);
            }
            let page_start = start & !(PAGE - 1);
            let page_end = segment_end.div_ceil(PAGE) * PAGE;
            // The pages holding file bytes are filled now; the bss after them is anonymous
            // memory, allocated on first touch. Linux's heuristic overcommit (`vm_brk_flags`
            // accounts it) refuses a bss larger than all of RAM (there is no swap).
            let file_page_end = (start + header.file_size).div_ceil(PAGE) * PAGE;
            let bss_pages = (page_end - file_page_end) / PAGE;
            if bss_pages > crate::mm::frame_allocator::stats().total {
                return Err(Errno::ENOMEM);
            }
            space.map_zeroed(
                page_start,
                page_end - page_start,
                file_page_end - page_start,
                Protection {
                    write: header.flags & PF_W != 0,
                    execute: header.flags & PF_X != 0,
                },
            )?;
            space.load(start, &self.data[header.offset as usize..file_end as usize])?;
            if let Some(file) = file
                && let Some(offset) = header.offset.checked_sub(start - page_start)
            {
                let mapping = FileMapping {
                    file: Arc::clone(file),
                    offset,
                };
                space.attribute_to_file(page_start, page_end, mapping);
            }
            end = end.max(segment_end);
            // The program headers are usually inside the first segment.
            if phdr.is_none() && header.offset <= self.phoff && self.phoff < file_end {
                phdr = Some(start + (self.phoff - header.offset));
            }
        }
        if let Some(header) = self.headers.iter().find(|h| h.kind == PT_PHDR) {
            phdr = Some(base.wrapping_add(header.vaddr));
        }
        Ok((phdr.unwrap_or(0), end))
    }
}

/// Checks an interpreter's bytes as Linux's `load_elf_binary` does before committing to the
/// exec: `EIO` if it is shorter than an ELF header, `ELIBBAD` if it is not a 64-bit x86_64 ELF
/// executable or shared object we can load.
fn parse_interpreter(data: &[u8]) -> EResult<ElfFile<'_>> {
    if data.len() < 64 {
        return Err(Errno::EIO);
    }
    parse(data).map_err(|_| Errno::ELIBBAD)
}

/// Maps the executable's segments into `space` (a position-independent one at `PIE_BASE`). If
/// it names an interpreter (`PT_INTERP`, the dynamic linker), `read_interpreter` fetches that
/// file, which is loaded at a free address in the `mmap` area, and the program starts there
/// (as Linux, the interpreter then maps the shared libraries itself). Errors: `ENOEXEC` for an
/// executable we cannot run, those of `read_interpreter` (`ENOENT`, `EACCES`, ...), `EIO` or
/// `ELIBBAD` for an unusable interpreter. Nothing is committed on error: `space` is thrown away.
pub fn load(
    space: &mut AddressSpace,
    data: &[u8],
    read_interpreter: impl FnOnce(&str) -> EResult<Interpreter>,
) -> EResult<LoadedImage> {
    let program = parse(data)?;
    let interpreter_file = match program.interpreter()? {
        Some(path) => Some(read_interpreter(path)?),
        None => None,
    };
    let interpreter = interpreter_file
        .as_ref()
        .map(|found| parse_interpreter(&found.image))
        .transpose()?;
    let named_by = interpreter_file
        .as_ref()
        .and_then(|found| found.file.as_ref());
    let base = if program.kind == ET_DYN { PIE_BASE } else { 0 };
    let (phdr, end) = program.map(space, base, None)?;
    let entry = base.checked_add(program.entry).ok_or(Errno::ENOEXEC)?;
    let (start, interpreter_base) = match interpreter {
        None => (entry, 0),
        Some(interpreter) => {
            let (low, high) = interpreter.span().map_err(|_| Errno::ELIBBAD)?;
            let base = if interpreter.kind == ET_DYN {
                space.pick_mmap_address(high - low)? - low
            } else {
                0
            };
            interpreter.map(space, base, named_by).map_err(|e| {
                if e == Errno::ENOEXEC {
                    Errno::ELIBBAD
                } else {
                    e
                }
            })?;
            let start = base.checked_add(interpreter.entry).ok_or(Errno::ELIBBAD)?;
            (start, base)
        }
    };
    Ok(LoadedImage {
        entry,
        start,
        interpreter_base,
        phdr,
        phnum: program.headers.len() as u64,
        end,
    })
}

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;

/// Maps the stack and writes argc, argv, envp, auxv and the strings they point to. Returns the
/// initial RSP (pointing at argc, 16-byte aligned).
pub fn build_stack(
    space: &mut AddressSpace,
    image: &LoadedImage,
    argv: &[&str],
    envp: &[&str],
    random: [u8; 16],
) -> EResult<u64> {
    space.reserve(
        STACK_TOP - STACK_SIZE,
        STACK_SIZE,
        Protection {
            write: true,
            execute: false,
        },
        RegionKind::Stack,
    )?;
    // Strings at the top, copied downwards.
    let mut cursor = STACK_TOP;
    let mut push_bytes = |bytes: &[u8]| -> EResult<u64> {
        cursor = cursor.checked_sub(bytes.len() as u64).ok_or(Errno::E2BIG)?;
        if cursor < STACK_TOP - STACK_SIZE / 2 {
            return Err(Errno::E2BIG);
        }
        space.load(cursor, bytes)?;
        Ok(cursor)
    };
    let mut c_string = |s: &str| -> EResult<u64> {
        let mut bytes = Vec::with_capacity(s.len() + 1);
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
        push_bytes(&bytes)
    };
    let execfn = c_string(argv.first().copied().unwrap_or(""))?;
    let platform = c_string("x86_64")?;
    // The environment, then the arguments, each one contiguous block of strings in order (as
    // Linux lays them out: `/proc/<pid>/cmdline` is the argument block read back).
    let mut block = |strings: &[&str]| -> EResult<(Vec<u64>, core::ops::Range<u64>)> {
        // User-sized (up to the 256 KiB `execve` allows): reserved fallibly.
        let total = strings.iter().map(|s| s.len() + 1).sum();
        let mut bytes = crate::mm::fallible::try_vec_with_capacity(total)?;
        let mut offsets = crate::mm::fallible::try_vec_with_capacity(strings.len())?;
        for s in strings {
            offsets.push(bytes.len() as u64);
            bytes.extend_from_slice(s.as_bytes());
            bytes.push(0);
        }
        let start = push_bytes(&bytes)?;
        let pointers = offsets.iter().map(|offset| start + offset).collect();
        Ok((pointers, start..start + bytes.len() as u64))
    };
    let (env_pointers, environment) = block(envp)?;
    let (arg_pointers, arguments) = block(argv)?;
    let random_at = push_bytes(&random)?;

    let auxv = [
        (AT_PHDR, image.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, image.interpreter_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_PLATFORM, platform),
        (
            AT_HWCAP,
            u64::from(crate::arch::x86_64::cpu::cpuid(1, 0).edx),
        ),
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, random_at),
        (AT_EXECFN, execfn),
        (AT_NULL, 0),
    ];
    let mut words: Vec<u64> = Vec::new();
    words.push(arg_pointers.len() as u64);
    words.extend(&arg_pointers);
    words.push(0);
    words.extend(&env_pointers);
    words.push(0);
    for (key, value) in auxv {
        words.push(key);
        words.push(value);
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let rsp = (cursor - bytes.len() as u64) & !15;
    if rsp < STACK_TOP - STACK_SIZE + PAGE {
        return Err(Errno::E2BIG);
    }
    space.load(rsp, &bytes)?;
    space.arguments = arguments;
    space.environment = environment;
    Ok(rsp)
}

crate::kernel_test!(elf_loader_rejects_what_it_cannot_run, {
    let no_file = |_: &str| -> EResult<Interpreter> { Err(Errno::ENOENT) };
    let mut space = AddressSpace::new().map_err(|_| crate::selftest::fail("address space"))?;
    for bad in [
        &b""[..],
        b"\x7fELF",
        b"\x7fELF\x01\x01\x01", // 32-bit
        b"#!/bin/sh\necho not an ELF\n",
    ] {
        crate::check_eq!(load(&mut space, bad, no_file).err(), Some(Errno::ENOEXEC));
    }
    // A 64-bit header claiming far more program headers than the file holds.
    let mut header = [0u8; 64];
    header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    header[16] = 2;
    header[18] = 62;
    header[32] = 64; // phoff
    header[54] = 56; // phentsize
    header[56] = 3; // phnum
    crate::check_eq!(
        load(&mut space, &header, no_file).err(),
        Some(Errno::ENOEXEC)
    );
});

/// A tiny ET_EXEC image for tests: a header, a `PT_INTERP` naming `/lib/ld.so` and one
/// `PT_LOAD` of the whole file at 0x400000.
fn test_image_with_interpreter() -> Vec<u8> {
    let mut image = alloc::vec![0u8; 64 + 2 * 56];
    image[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    image[16] = 2; // ET_EXEC
    image[18] = 62; // x86_64
    image[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes()); // entry
    image[32] = 64; // phoff
    image[54] = 56; // phentsize
    image[56] = 2; // phnum
    let path = b"/lib/ld.so\0";
    let path_at = image.len() as u64;
    image.extend_from_slice(path);
    let mut header = |index: usize, kind: u32, offset: u64, vaddr: u64, size: u64| {
        let at = 64 + index * 56;
        image[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        image[at + 4..at + 8].copy_from_slice(&(4u32 | PF_X).to_le_bytes());
        image[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        image[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        image[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        image[at + 40..at + 48].copy_from_slice(&size.to_le_bytes());
    };
    header(0, PT_INTERP, path_at, 0, path.len() as u64);
    header(1, PT_LOAD, 0, 0x40_0000, path_at + path.len() as u64);
    image
}

crate::kernel_test!(elf_interpreters_load_or_fail_like_linux, {
    let image = test_image_with_interpreter();
    let mut space = AddressSpace::new().map_err(|_| crate::selftest::fail("address space"))?;
    // Missing interpreter: the error of opening it; not an ELF: ELIBBAD; too short: EIO.
    let mut asked_right_path = false;
    let missing = load(&mut space, &image, |path| {
        asked_right_path = path == "/lib/ld.so";
        Err(Errno::ENOENT)
    });
    crate::check_eq!(missing.err(), Some(Errno::ENOENT));
    crate::check!(asked_right_path);
    let bytes = |image: Vec<u8>| move |_: &str| Ok(Interpreter { image, file: None });
    let text = bytes(alloc::vec![b'#'; 100]);
    crate::check_eq!(load(&mut space, &image, text).err(), Some(Errno::ELIBBAD));
    let short = bytes(b"\x7fELF".to_vec());
    crate::check_eq!(load(&mut space, &image, short).err(), Some(Errno::EIO));
    let mut bits32 = image.clone();
    bits32[4] = 1;
    crate::check_eq!(
        load(&mut space, &image, bytes(bits32)).err(),
        Some(Errno::ELIBBAD)
    );
    // A PT_INTERP path without its NUL is the program's fault: ENOEXEC.
    let mut unterminated = image.clone();
    let last = unterminated.len() - 1;
    unterminated[last] = b'x';
    crate::check_eq!(
        load(&mut space, &unterminated, |_| Err(Errno::ENOENT)).err(),
        Some(Errno::ENOEXEC)
    );
    // A shared-object copy of the program as its interpreter: it goes to the mmap area, and
    // execution starts at its entry there, with AT_ENTRY still the program's.
    let mut shared = image.clone();
    shared[16] = 3; // ET_DYN
    let mut fresh = AddressSpace::new().map_err(|_| crate::selftest::fail("address space"))?;
    let loaded = load(&mut fresh, &image, bytes(shared))
        .map_err(|_| crate::selftest::fail("load with interpreter"))?;
    crate::check_eq!(loaded.entry, 0x40_0000);
    crate::check!(loaded.interpreter_base > 0x40_0000);
    crate::check_eq!(loaded.interpreter_base % PAGE, 0);
    crate::check_eq!(loaded.start, loaded.interpreter_base + 0x40_0000);
    crate::check_eq!(
        loaded.end,
        0x40_0000 + test_image_with_interpreter().len() as u64
    );
});
