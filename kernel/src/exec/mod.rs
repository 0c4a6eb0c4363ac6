//! Turning an executable file into a runnable user context (`execve`'s core).
//!
//! Two formats, as Linux's `binfmt_elf` and `binfmt_script`: ELF images are loaded (with their
//! dynamic linker when they name one, see `elf`); a file starting with `#!` names an
//! interpreter, which is run with the script's path as an argument (so shell scripts,
//! including init scripts, run like on Linux).

pub mod elf;

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::usermode;
use crate::errno::{EResult, Errno};
use crate::fs::file::OpenFile;
use crate::mm::user::AddressSpace;

/// A freshly loaded program: its address space and the user context to start it in.
pub struct Program {
    pub space: AddressSpace,
    pub frame: TrapFrame,
}

/// Loads `image` (the executable's bytes) with `argv` and `envp` into a new address space.
pub fn load_program(image: &[u8], argv: &[&str], envp: &[&str]) -> EResult<Program> {
    let mut space = AddressSpace::new()?;
    // The interpreter is opened as the program would open it: the caller's root, working
    // directory and credentials (and execute permission), like Linux's `open_exec`.
    let loaded = elf::load(&mut space, image, read_interpreter)?;
    let mut random = [0u8; 16];
    fill_random(&mut random);
    let rsp = elf::build_stack(&mut space, &loaded, argv, envp, random)?;
    space.brk_start = loaded.end.div_ceil(4096) * 4096;
    space.brk = space.brk_start;
    Ok(Program {
        space,
        frame: usermode::initial_user_frame(loaded.start, rsp),
    })
}

/// AT_RANDOM bytes (stack canaries, pointer guards): from the kernel's generator, the same
/// one behind `getrandom` and `/dev/urandom`.
fn fill_random(out: &mut [u8]) {
    crate::fs::dev::random::fill(out);
}

/// The bytes of an executable file, as the current process sees the path (its root, working
/// directory and credentials); at boot, before any process, as root from `/`.
pub fn read_executable(path: &str) -> EResult<Vec<u8>> {
    open_executable(path)?.read_all()
}

/// `path` opened for execution (`open_exec`), as `read_executable` finds it.
fn open_executable(path: &str) -> EResult<Arc<OpenFile>> {
    let (context, creds) =
        match crate::task::with_current(|p| (p.fs.lock().clone(), p.identity.credentials())) {
            Ok(found) => found,
            Err(_) => (
                crate::fs::vfs::init_context()?,
                crate::fs::Credentials::root(),
            ),
        };
    crate::fs::vfs::open_exec(&context, &creds, crate::fs::At::Cwd, path)
}

/// A program's interpreter: its bytes, and the open file its segments are attributed to.
fn read_interpreter(path: &str) -> EResult<elf::Interpreter> {
    let file = open_executable(path)?;
    Ok(elf::Interpreter {
        image: file.read_all()?,
        file: Some(file),
    })
}

/// What to load for `execve(path, argv)`: the ELF image, and `argv` as the program sees it.
#[derive(Debug)]
pub struct Executable {
    pub image: Vec<u8>,
    pub argv: Vec<String>,
}

/// Linux's limits: the `#!` line is read from the first 256 bytes (`BINPRM_BUF_SIZE`), and an
/// interpreter may itself be a script at most 4 levels deep (`BINPRM_MAX_RECURSION`).
const SCRIPT_LINE_MAX: usize = 256;
const SCRIPT_DEPTH_MAX: usize = 4;

/// Reads `path` and follows `#!` lines to an ELF image. A script's interpreter gets
/// `[interpreter, optional argument, path, argv[1..]]`, as in Linux (the rest of the line after
/// the interpreter is one argument). Errors: those of opening the files, `ENOEXEC` for an empty
/// or overlong `#!` line, `ELOOP` past 4 levels.
pub fn resolve(path: &str, argv: &[&str]) -> EResult<Executable> {
    let mut path = path.to_string();
    let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    for _ in 0..=SCRIPT_DEPTH_MAX {
        let image = read_executable(&path)?;
        let Some((interpreter, argument)) = parse_script_line(&image)? else {
            return Ok(Executable { image, argv });
        };
        let mut next = Vec::with_capacity(argv.len() + 2);
        next.push(interpreter.clone());
        next.extend(argument);
        next.push(path);
        next.extend(argv.into_iter().skip(1));
        argv = next;
        path = interpreter;
    }
    Err(Errno::ELOOP)
}

/// `Some((interpreter, argument))` for a file starting with `#!`, `None` for anything else.
fn parse_script_line(image: &[u8]) -> EResult<Option<(String, Option<String>)>> {
    let Some(rest) = image.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let window = &rest[..rest.len().min(SCRIPT_LINE_MAX - 2)];
    let line = match window.iter().position(|&b| b == b'\n') {
        Some(end) => &window[..end],
        // No newline within the limit: Linux accepts it only if the file ends there.
        None if rest.len() <= window.len() => window,
        None => return Err(Errno::ENOEXEC),
    };
    let line = core::str::from_utf8(line).map_err(|_| Errno::ENOEXEC)?;
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interpreter, argument) = match line.find([' ', '\t']) {
        Some(split) => (
            &line[..split],
            Some(line[split..].trim_matches([' ', '\t'])),
        ),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    Ok(Some((
        interpreter.to_string(),
        argument.filter(|a| !a.is_empty()).map(str::to_string),
    )))
}

crate::kernel_test!(script_lines_parse_like_linux, {
    let parse = |text: &[u8]| parse_script_line(text);
    crate::check_eq!(parse(b"\x7fELF....").ok(), Some(None));
    crate::check_eq!(
        parse(b"#!/bin/sh\necho hi\n").ok(),
        Some(Some(("/bin/sh".to_string(), None)))
    );
    crate::check_eq!(
        parse(b"#! /bin/sh  -e -x \r\n").ok(),
        Some(Some(("/bin/sh".to_string(), Some("-e -x".to_string()))))
    );
    crate::check_eq!(
        parse(b"#!/bin/sh").ok(),
        Some(Some(("/bin/sh".to_string(), None)))
    );
    crate::check_eq!(parse(b"#!\n").err(), Some(Errno::ENOEXEC));
    crate::check_eq!(parse(b"#!   \n").err(), Some(Errno::ENOEXEC));
    let mut long = alloc::vec![b'#', b'!', b'/'];
    long.extend(core::iter::repeat_n(b'x', 300));
    long.push(b'\n');
    crate::check_eq!(parse(&long).err(), Some(Errno::ENOEXEC));
});
