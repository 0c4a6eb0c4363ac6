//! Turning an executable file into a runnable user context (`execve`'s core).

pub mod elf;

use alloc::vec::Vec;

use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::usermode;
use crate::errno::EResult;
use crate::mm::user::AddressSpace;

/// A freshly loaded program: its address space and the user context to start it in.
pub struct Program {
    pub space: AddressSpace,
    pub frame: TrapFrame,
}

/// Loads `image` (the executable's bytes) with `argv` and `envp` into a new address space.
pub fn load_program(image: &[u8], argv: &[&str], envp: &[&str]) -> EResult<Program> {
    let mut space = AddressSpace::new()?;
    let loaded = elf::load(&mut space, image)?;
    let mut random = [0u8; 16];
    fill_random(&mut random);
    let rsp = elf::build_stack(&mut space, &loaded, argv, envp, random)?;
    space.brk_start = loaded.end.div_ceil(4096) * 4096;
    space.brk = space.brk_start;
    Ok(Program {
        space,
        frame: usermode::initial_user_frame(loaded.entry, rsp),
    })
}

/// AT_RANDOM bytes (stack canaries, pointer guards): from the TSC until the random device
/// exists.
fn fill_random(out: &mut [u8]) {
    let mut state = crate::arch::x86_64::cpu::rdtsc() | 1;
    let bytes: Vec<u8> = (0..out.len())
        .map(|_| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect();
    out.copy_from_slice(&bytes);
}

/// The bytes of an executable file, as the current process sees the path (its root, working
/// directory and credentials); at boot, before any process, as root from `/`.
pub fn read_executable(path: &str) -> EResult<Vec<u8>> {
    let (context, creds) =
        match crate::task::with_current(|p| (p.fs.lock().clone(), p.creds.clone())) {
            Ok(found) => found,
            Err(_) => (
                crate::fs::vfs::init_context()?,
                crate::fs::Credentials::root(),
            ),
        };
    crate::fs::vfs::open_exec(&context, &creds, crate::fs::At::Cwd, path)?.read_all()
}
