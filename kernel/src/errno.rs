//! The one error type of the system-call boundary: Linux's errno numbers.
//!
//! Every fallible kernel service that userspace can reach returns `EResult<T>`; the syscall
//! dispatcher turns an `Err(errno)` into `-errno` in RAX, exactly as Linux does, so programs built
//! for Linux see the codes they expect. Numbers are x86_64 Linux's (asm-generic/errno-base.h and
//! errno.h).

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(
    dead_code,
    reason = "Linux's whole common set; each variant comes into use with the subsystem that returns it"
)]
#[allow(
    clippy::upper_case_acronyms,
    reason = "Linux's names, as every man page spells them"
)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EMLINK = 31,
    EPIPE = 32,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    ENODATA = 61,
    EOVERFLOW = 75,
    /// An executable's interpreter (`ld.so`) is not a usable ELF file.
    ELIBBAD = 80,
    ENOTSUP = 95,
    ETIMEDOUT = 110,
}

/// The result of anything userspace can ask for.
pub type EResult<T> = Result<T, Errno>;

impl Errno {
    /// The value a system call returns in RAX for this error.
    pub fn to_syscall_return(self) -> u64 {
        (-(self as i64)) as u64
    }

    pub fn name(self) -> &'static str {
        use Errno::*;
        match self {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            ESRCH => "ESRCH",
            EINTR => "EINTR",
            EIO => "EIO",
            ENXIO => "ENXIO",
            E2BIG => "E2BIG",
            ENOEXEC => "ENOEXEC",
            EBADF => "EBADF",
            ECHILD => "ECHILD",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            EXDEV => "EXDEV",
            ENODEV => "ENODEV",
            ENOTDIR => "ENOTDIR",
            EISDIR => "EISDIR",
            EINVAL => "EINVAL",
            ENFILE => "ENFILE",
            EMFILE => "EMFILE",
            ENOTTY => "ENOTTY",
            EFBIG => "EFBIG",
            ENOSPC => "ENOSPC",
            ESPIPE => "ESPIPE",
            EROFS => "EROFS",
            EMLINK => "EMLINK",
            EPIPE => "EPIPE",
            ERANGE => "ERANGE",
            EDEADLK => "EDEADLK",
            ENAMETOOLONG => "ENAMETOOLONG",
            ENOSYS => "ENOSYS",
            ENOTEMPTY => "ENOTEMPTY",
            ELOOP => "ELOOP",
            ENODATA => "ENODATA",
            EOVERFLOW => "EOVERFLOW",
            ELIBBAD => "ELIBBAD",
            ENOTSUP => "ENOTSUP",
            ETIMEDOUT => "ETIMEDOUT",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), *self as i32)
    }
}

crate::kernel_test!(errno_matches_linux, {
    crate::check_eq!(Errno::ENOENT as i32, 2);
    crate::check_eq!(Errno::ENOSYS as i32, 38);
    crate::check_eq!(Errno::EFAULT.to_syscall_return(), (-14i64) as u64);
    crate::check_eq!(alloc::format!("{}", Errno::EBADF), "EBADF (9)");
});
