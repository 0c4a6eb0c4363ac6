//! Loading a static ELF64 executable (PIE or not) into a fresh address space, with the initial
//! stack laid out exactly as Linux's `create_elf_tables` does, so musl's and glibc's start code
//! find argc, argv, envp and the auxiliary vector where they expect them.
//!
//! The file is untrusted: every header field is bounds-checked, and anything we cannot run
//! (wrong class or machine, a dynamic interpreter, overlapping or kernel-half segments) is
//! `ENOEXEC` — never a panic.

use alloc::vec::Vec;

use crate::errno::{EResult, Errno};
use crate::mm::user::{AddressSpace, Protection, RegionKind, USER_END};

const PAGE: u64 = 4096;
/// Where position-independent executables are loaded (Linux's ELF_ET_DYN_BASE without ASLR).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
/// Top of the initial stack, and how much of it is mapped up front.
pub const STACK_TOP: u64 = 0x7fff_ffff_e000;
/// The stack region (Linux's default 8 MiB limit); pages are allocated as they are touched.
pub const STACK_SIZE: u64 = 8 * 1024 * 1024;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

#[derive(Clone, Copy, Debug)]
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
}

fn u16_at(data: &[u8], at: usize) -> EResult<u16> {
    Ok(u16::from_le_bytes(
        data.get(at..at + 2)
            .ok_or(Errno::ENOEXEC)?
            .try_into()
            .map_err(|_| Errno::ENOEXEC)?,
    ))
}

fn u32_at(data: &[u8], at: usize) -> EResult<u32> {
    Ok(u32::from_le_bytes(
        data.get(at..at + 4)
            .ok_or(Errno::ENOEXEC)?
            .try_into()
            .map_err(|_| Errno::ENOEXEC)?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> EResult<u64> {
    Ok(u64::from_le_bytes(
        data.get(at..at + 8)
            .ok_or(Errno::ENOEXEC)?
            .try_into()
            .map_err(|_| Errno::ENOEXEC)?,
    ))
}

/// What a loaded program needs to start.
#[derive(Clone, Copy, Debug)]
pub struct LoadedImage {
    pub entry: u64,
    /// Address of the program headers in memory (AT_PHDR).
    pub phdr: u64,
    pub phnum: u64,
    /// First byte after the highest segment: the initial program break.
    pub end: u64,
}

/// Maps the executable's segments into `space`.
pub fn load(space: &mut AddressSpace, data: &[u8]) -> EResult<LoadedImage> {
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(Errno::ENOEXEC);
    }
    // 64-bit, little-endian, version 1.
    if data.get(4..7) != Some([2u8, 1, 1].as_slice()) {
        return Err(Errno::ENOEXEC);
    }
    let kind = u16_at(data, 16)?;
    if u16_at(data, 18)? != EM_X86_64 || !(kind == ET_EXEC || kind == ET_DYN) {
        return Err(Errno::ENOEXEC);
    }
    let entry = u64_at(data, 24)?;
    let phoff = u64_at(data, 32)? as usize;
    let phentsize = u16_at(data, 54)? as usize;
    let phnum = u16_at(data, 56)? as usize;
    if phentsize != 56 || phnum == 0 || phnum > 128 {
        return Err(Errno::ENOEXEC);
    }
    let headers = (0..phnum)
        .map(|i| {
            let at = phoff.checked_add(i * phentsize).ok_or(Errno::ENOEXEC)?;
            Ok(ProgramHeader {
                kind: u32_at(data, at)?,
                flags: u32_at(data, at + 4)?,
                offset: u64_at(data, at + 8)?,
                vaddr: u64_at(data, at + 16)?,
                file_size: u64_at(data, at + 32)?,
                mem_size: u64_at(data, at + 40)?,
            })
        })
        .collect::<EResult<Vec<_>>>()?;
    if headers.iter().any(|h| h.kind == PT_INTERP) {
        // Dynamically linked: needs ld.so, which Cadenza does not load (yet).
        return Err(Errno::ENOEXEC);
    }
    let base = if kind == ET_DYN { PIE_BASE } else { 0 };
    let mut end = 0u64;
    let mut phdr = None;
    for header in headers.iter().filter(|h| h.kind == PT_LOAD) {
        let start = base.checked_add(header.vaddr).ok_or(Errno::ENOEXEC)?;
        let segment_end = start.checked_add(header.mem_size).ok_or(Errno::ENOEXEC)?;
        let file_end = header
            .offset
            .checked_add(header.file_size)
            .ok_or(Errno::ENOEXEC)?;
        if header.file_size > header.mem_size
            || file_end > data.len() as u64
            || segment_end > USER_END
            || start < PAGE
        {
            return Err(Errno::ENOEXEC);
        }
        let page_start = start & !(PAGE - 1);
        let page_end = segment_end.div_ceil(PAGE) * PAGE;
        space.map_zeroed(
            page_start,
            page_end - page_start,
            Protection {
                write: header.flags & PF_W != 0,
                execute: header.flags & PF_X != 0,
            },
        )?;
        space.load(start, &data[header.offset as usize..file_end as usize])?;
        end = end.max(segment_end);
        // The program headers are usually inside the first segment.
        let phoff = phoff as u64;
        if phdr.is_none() && header.offset <= phoff && phoff < file_end {
            phdr = Some(start + (phoff - header.offset));
        }
    }
    if end == 0 {
        return Err(Errno::ENOEXEC);
    }
    if let Some(header) = headers.iter().find(|h| h.kind == PT_PHDR) {
        phdr = Some(base + header.vaddr);
    }
    Ok(LoadedImage {
        entry: base.checked_add(entry).ok_or(Errno::ENOEXEC)?,
        phdr: phdr.unwrap_or(0),
        phnum: phnum as u64,
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
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(strings.len());
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
        (AT_BASE, 0),
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
    let mut space = AddressSpace::new().map_err(|_| crate::selftest::fail("address space"))?;
    for bad in [
        &b""[..],
        b"\x7fELF",
        b"\x7fELF\x01\x01\x01", // 32-bit
        b"#!/bin/sh\necho not an ELF\n",
    ] {
        crate::check_eq!(load(&mut space, bad).err(), Some(Errno::ENOEXEC));
    }
    // A 64-bit header claiming far more program headers than the file holds.
    let mut header = [0u8; 64];
    header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    header[16] = 2;
    header[18] = 62;
    header[32] = 64; // phoff
    header[54] = 56; // phentsize
    header[56] = 3; // phnum
    crate::check_eq!(load(&mut space, &header).err(), Some(Errno::ENOEXEC));
});
