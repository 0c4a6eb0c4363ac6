//! Resource limits (`getrlimit`, `setrlimit`, `prlimit64`), with Linux's defaults for init and
//! its rules for changing them.
//!
//! Programs ask for their limits at start-up (musl and glibc read `RLIMIT_STACK`, shells report
//! `ulimit`), so every resource has a value even where nothing here enforces it yet. What is
//! enforced: `RLIMIT_NOFILE` (the descriptor table's size), `RLIMIT_NPROC` (`fork` and `clone`
//! are `EAGAIN` for a user at the limit, as in Linux's `copy_process`) and `RLIMIT_STACK`'s default matches
//! the 8 MiB stack `execve` maps.

use crate::errno::{EResult, Errno};

pub const INFINITY: u64 = u64::MAX;
/// `RLIM_NLIMITS`.
pub const COUNT: usize = 16;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
/// `fs.nr_open`: the highest `RLIMIT_NOFILE` anyone may set.
const NR_OPEN: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

impl Limit {
    const fn new(soft: u64, hard: u64) -> Self {
        Self { soft, hard }
    }

    /// `struct rlimit` (two `u64`s, the layout of `struct rlimit64` too on x86_64).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.soft.to_le_bytes());
        bytes[8..].copy_from_slice(&self.hard.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        Self::new(word(0), word(8))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits([Limit; COUNT]);

impl Limits {
    /// Linux's `INIT_RLIMITS` (include/asm-generic/resource.h); `RLIMIT_NPROC` and
    /// `RLIMIT_SIGPENDING` are sized from memory there, a fixed 1024 here.
    pub const fn linux_defaults() -> Self {
        const INF: Limit = Limit::new(INFINITY, INFINITY);
        Self([
            INF,                           // CPU
            INF,                           // FSIZE
            INF,                           // DATA
            Limit::new(8 << 20, INFINITY), // STACK
            Limit::new(0, INFINITY),       // CORE
            INF,                           // RSS
            Limit::new(1024, 1024),        // NPROC
            Limit::new(1024, 4096),        // NOFILE
            Limit::new(8 << 20, 8 << 20),  // MEMLOCK
            INF,                           // AS
            INF,                           // LOCKS
            Limit::new(1024, 1024),        // SIGPENDING
            Limit::new(819_200, 819_200),  // MSGQUEUE
            Limit::new(0, 0),              // NICE
            Limit::new(0, 0),              // RTPRIO
            INF,                           // RTTIME
        ])
    }

    /// `EINVAL` for a resource number Linux does not have.
    pub fn get(&self, resource: u64) -> EResult<Limit> {
        usize::try_from(resource)
            .ok()
            .and_then(|r| self.0.get(r).copied())
            .ok_or(Errno::EINVAL)
    }

    /// Replaces a limit (`do_prlimit`): the soft limit may not exceed the hard one (`EINVAL`),
    /// only root may raise a hard limit, and nobody past `nr_open` for `RLIMIT_NOFILE`
    /// (`EPERM`). Returns the old limit.
    pub fn set(&mut self, resource: u64, new: Limit, privileged: bool) -> EResult<Limit> {
        let old = self.get(resource)?;
        if new.soft > new.hard {
            return Err(Errno::EINVAL);
        }
        if new.hard > old.hard && !privileged {
            return Err(Errno::EPERM);
        }
        if resource == RLIMIT_NOFILE as u64 && new.hard > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.0[resource as usize] = new;
        Ok(old)
    }
}

crate::kernel_test!(resource_limits_follow_linux_rules, {
    let mut limits = Limits::linux_defaults();
    let nofile = RLIMIT_NOFILE as u64;
    crate::check_eq!(limits.get(nofile), Ok(Limit::new(1024, 4096)));
    crate::check_eq!(limits.get(16), Err(Errno::EINVAL));
    crate::check_eq!(
        limits.set(nofile, Limit::new(10, 5), true),
        Err(Errno::EINVAL)
    );
    crate::check_eq!(
        limits.set(nofile, Limit::new(8, 8192), false),
        Err(Errno::EPERM)
    );
    crate::check_eq!(
        limits.set(nofile, Limit::new(1, 1 << 21), true),
        Err(Errno::EPERM)
    );
    crate::check!(
        limits.set(nofile, Limit::new(64, 128), false).is_ok(),
        "lowering is free"
    );
    crate::check_eq!(
        limits.set(nofile, Limit::new(64, 4096), false),
        Err(Errno::EPERM)
    );
    let bytes = Limit::new(3, INFINITY).to_bytes();
    crate::check_eq!(Limit::from_bytes(&bytes), Limit::new(3, INFINITY));
});
