//! The system-call boundary: one declarative table from Linux's x86_64 numbers to handlers.
//!
//! Handlers receive the raw argument registers and validate them here, at the boundary — flags
//! against the bits Linux defines, pointers into `UserSlice`s — before calling into a subsystem.
//! Every failure is an `Errno`, returned to userspace as `-errno`; nothing userspace passes can
//! panic the kernel. An unknown number is `ENOSYS`, logged once per number with its name.
//! Booting with `strace` logs every call with its arguments and result.

mod clock;
mod credentials;
mod files;
mod names;
mod poll;
mod process;
mod signal;
mod time_arg;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::{EResult, Errno};
use crate::kprintln;

/// `uname`'s release: a Linux version number, so programs that check it run (with a suffix
/// that says what this really is).
pub const UTS_RELEASE: &str = "6.1.0-cadenza";
pub const UTS_VERSION: &str = concat!("#1 Cadenza ", env!("CARGO_PKG_VERSION"));

/// The six argument registers, in the x86_64 syscall order (rdi, rsi, rdx, r10, r8, r9).
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

/// One system call: its arguments and the caller's saved user context (which `fork` copies and
/// `execve` replaces).
pub struct Call<'a> {
    pub args: Args,
    pub frame: &'a mut TrapFrame,
}

type Handler = fn(&mut Call<'_>) -> EResult<u64>;

/// Declares the table: `number => handler` (the name comes from `names`).
macro_rules! syscall_table {
    ($($number:literal => $handler:path),* $(,)?) => {
        fn handler(number: u64) -> Option<Handler> {
            match number {
                $($number => Some($handler),)*
                _ => None,
            }
        }

        /// Every implemented system call number (for tests and docs/abi.md).
        pub const IMPLEMENTED: &[u64] = &[$($number),*];
    };
}

syscall_table! {
    0 => files::read,
    1 => files::write,
    2 => files::open,
    3 => files::close,
    4 => files::stat,
    5 => files::fstat,
    6 => files::lstat,
    7 => poll::poll,
    8 => files::lseek,
    9 => process::mmap,
    10 => process::mprotect,
    11 => process::munmap,
    12 => process::brk,
    13 => signal::rt_sigaction,
    14 => signal::rt_sigprocmask,
    15 => signal::rt_sigreturn,
    16 => files::ioctl,
    17 => files::pread64,
    18 => files::pwrite64,
    19 => files::readv,
    20 => files::writev,
    21 => files::access,
    22 => files::pipe,
    23 => poll::select,
    24 => process::sched_yield,
    25 => process::mremap,
    32 => files::dup,
    33 => files::dup2,
    34 => process::pause,
    35 => clock::nanosleep,
    39 => process::getpid,
    40 => files::sendfile,
    56 => process::clone,
    57 => process::fork,
    58 => process::fork,
    59 => process::execve,
    60 => process::exit,
    61 => process::wait4,
    62 => signal::kill,
    63 => process::uname,
    72 => files::fcntl,
    76 => files::truncate,
    77 => files::ftruncate,
    79 => files::getcwd,
    80 => files::chdir,
    81 => files::fchdir,
    82 => files::rename,
    83 => files::mkdir,
    84 => files::rmdir,
    85 => files::creat,
    86 => files::link,
    87 => files::unlink,
    88 => files::symlink,
    89 => files::readlink,
    90 => files::chmod,
    91 => files::fchmod,
    92 => files::chown,
    93 => files::fchown,
    94 => files::lchown,
    95 => files::umask,
    96 => clock::gettimeofday,
    97 => process::getrlimit,
    99 => process::sysinfo,
    102 => credentials::getuid,
    104 => credentials::getgid,
    105 => credentials::setuid,
    106 => credentials::setgid,
    107 => credentials::geteuid,
    108 => credentials::getegid,
    109 => process::setpgid,
    110 => process::getppid,
    111 => process::getpgrp,
    112 => process::setsid,
    113 => credentials::setreuid,
    114 => credentials::setregid,
    115 => credentials::getgroups,
    116 => credentials::setgroups,
    117 => credentials::setresuid,
    118 => credentials::getresuid,
    119 => credentials::setresgid,
    120 => credentials::getresgid,
    121 => process::getpgid,
    124 => process::getsid,
    127 => signal::rt_sigpending,
    128 => signal::rt_sigtimedwait,
    130 => signal::rt_sigsuspend,
    131 => signal::sigaltstack,
    132 => files::utime,
    133 => files::mknod,
    157 => process::prctl,
    158 => process::arch_prctl,
    160 => process::setrlimit,
    162 => process::sync,
    164 => clock::settimeofday,
    165 => files::mount,
    166 => files::umount2,
    169 => process::reboot,
    186 => process::gettid,
    188 => files::setxattr,
    189 => files::lsetxattr,
    190 => files::fsetxattr,
    191 => files::getxattr,
    192 => files::lgetxattr,
    193 => files::fgetxattr,
    194 => files::listxattr,
    195 => files::llistxattr,
    196 => files::flistxattr,
    197 => files::removexattr,
    198 => files::lremovexattr,
    199 => files::fremovexattr,
    200 => signal::tkill,
    201 => clock::time,
    202 => process::futex,
    204 => process::sched_getaffinity,
    217 => files::getdents64,
    218 => process::set_tid_address,
    221 => files::fadvise64,
    227 => clock::clock_settime,
    228 => clock::clock_gettime,
    230 => clock::clock_nanosleep,
    231 => process::exit_group,
    234 => signal::tgkill,
    235 => files::utimes,
    247 => process::waitid,
    257 => files::openat,
    258 => files::mkdirat,
    259 => files::mknodat,
    260 => files::fchownat,
    261 => files::futimesat,
    262 => files::newfstatat,
    263 => files::unlinkat,
    264 => files::renameat,
    265 => files::linkat,
    266 => files::symlinkat,
    267 => files::readlinkat,
    268 => files::fchmodat,
    269 => files::faccessat,
    270 => poll::pselect6,
    271 => poll::ppoll,
    273 => process::set_robust_list,
    274 => process::get_robust_list,
    280 => files::utimensat,
    292 => files::dup3,
    293 => files::pipe2,
    302 => process::prlimit64,
    316 => files::renameat2,
    318 => process::getrandom,
    332 => files::statx,
    439 => files::faccessat2,
}

const EXECVE: u64 = 59;
const RT_SIGRETURN: u64 = 15;

static STRACE: AtomicBool = AtomicBool::new(false);
/// Bit `n` set: unknown syscall `n` was already reported (numbers 0..512).
static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Installs the handler for `SYSCALL`; `strace` on the command line logs every call.
pub fn init(cmdline: &crate::boot::Cmdline) {
    STRACE.store(cmdline.has("strace"), Ordering::Relaxed);
    crate::arch::x86_64::usermode::init(dispatch);
    let (smep, smap) = crate::arch::x86_64::usermode::smep_smap();
    let on_off = |on: bool| {
        if on {
            "on"
        } else {
            "off (not supported by this CPU)"
        }
    };
    kprintln!(
        "syscall: SYSCALL entry ready; SMEP {}, SMAP {}",
        on_off(smep),
        on_off(smap)
    );
}

fn dispatch(frame: &mut TrapFrame) {
    let number = frame.rax;
    let args = Args([
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ]);
    let mut call = Call { args, frame };
    let result = match handler(number) {
        Some(handler) => handler(&mut call),
        None => {
            report_unknown(number);
            Err(Errno::ENOSYS)
        }
    };
    if STRACE.load(Ordering::Relaxed) {
        let name = names::name(number).unwrap_or("?");
        let [a, b, c, d, e, f] = args.0;
        match result {
            Ok(value) => kprintln!(
                "strace: {name}({a:#x}, {b:#x}, {c:#x}, {d:#x}, {e:#x}, {f:#x}) = {value:#x}"
            ),
            Err(errno) => kprintln!(
                "strace: {name}({a:#x}, {b:#x}, {c:#x}, {d:#x}, {e:#x}, {f:#x}) = -1 {errno}"
            ),
        }
    }
    let frame = call.frame;
    if (number == EXECVE || number == RT_SIGRETURN) && result.is_ok() {
        // The frame now describes the new program or the interrupted context: RAX stays.
        return;
    }
    frame.rax = match result {
        Ok(value) => value,
        Err(errno) => errno.to_syscall_return(),
    };
}

fn report_unknown(number: u64) {
    let index = number as usize;
    if index < 512 {
        let bit = 1u64 << (index % 64);
        if REPORTED[index / 64].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return;
        }
    }
    let name = names::name(number).unwrap_or("unassigned");
    let who =
        crate::task::with_current(|p| alloc::format!("{}[{}]", p.name, p.pid)).unwrap_or_default();
    kprintln!("syscall: {who} called unimplemented system call {number} ({name}): ENOSYS");
}

crate::kernel_test!(syscall_table_is_consistent, {
    for &number in IMPLEMENTED {
        crate::check!(
            names::name(number).is_some(),
            "every implemented number has a name"
        );
    }
    crate::check_eq!(names::name(0), Some("read"));
    crate::check_eq!(names::name(59), Some("execve"));
    crate::check_eq!(names::name(100_000), None);
    crate::check!(handler(100_000).is_none());
});
