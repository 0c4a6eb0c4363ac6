//! Process, memory and console system calls available before the VFS and scheduler.

use super::Call;
use super::time_arg::{self, Format};
use crate::errno::{EResult, Errno};
use crate::mm::user::{Protection, RegionKind, RemapTo, UserSlice};
use crate::task::{self, ExitStatus};

/// `exit`: ends the calling thread (the process, if it is the last one).
pub fn exit(call: &mut Call<'_>) -> EResult<u64> {
    task::exit_thread((call.args.0[0] & 0xff) as i32)
}

/// `exit_group`: ends every thread of the process.
pub fn exit_group(call: &mut Call<'_>) -> EResult<u64> {
    task::exit_group(ExitStatus::Code((call.args.0[0] & 0xff) as i32))
}

pub fn getpid(_: &mut Call<'_>) -> EResult<u64> {
    task::with_current(|p| u64::from(p.tgid))
}

pub fn gettid(_: &mut Call<'_>) -> EResult<u64> {
    task::with_current(|p| u64::from(p.pid))
}

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CSIGNAL: u64 = 0xff;
const CLONE_SUPPORTED: u64 = CSIGNAL
    | CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_VFORK
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

/// `clone(flags, stack, parent_tid, child_tid, tls)` — the x86_64 argument order.
pub fn clone(call: &mut Call<'_>) -> EResult<u64> {
    let [flags, stack, parent_tid, child_tid, tls, _] = call.args.0;
    if flags & !CLONE_SUPPORTED != 0 {
        return Err(Errno::EINVAL);
    }
    // Linux's consistency rules: threads share signal handlers, which needs shared memory.
    if (flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0)
        || (flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0)
    {
        return Err(Errno::EINVAL);
    }
    if stack >= crate::mm::user::USER_END {
        return Err(Errno::EINVAL);
    }
    let pointer = |flag: u64, address: u64| (flags & flag != 0).then_some(address);
    let request = task::CloneRequest {
        share_memory: flags & CLONE_VM != 0,
        share_files: flags & CLONE_FILES != 0,
        share_fs: flags & CLONE_FS != 0,
        thread: flags & CLONE_THREAD != 0,
        share_signal_actions: flags & CLONE_SIGHAND != 0,
        stack,
        tls: pointer(CLONE_SETTLS, tls),
        clear_child_tid: pointer(CLONE_CHILD_CLEARTID, child_tid),
        set_child_tid: pointer(CLONE_CHILD_SETTID, child_tid),
        set_parent_tid: pointer(CLONE_PARENT_SETTID, parent_tid),
    };
    if let Some(tls) = request.tls
        && tls >= crate::mm::user::USER_END
    {
        return Err(Errno::EPERM);
    }
    task::clone(call.frame, request).map(u64::from)
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

pub fn futex(call: &mut Call<'_>) -> EResult<u64> {
    let [address, op, value, timeout, ..] = call.args.0;
    match op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) {
        FUTEX_WAIT => {
            let deadline = time_arg::deadline(timeout, Format::Timespec)?;
            task::futex_wait(address, value as u32, deadline)?;
            Ok(0)
        }
        FUTEX_WAKE => {
            task::futex_wake(address, value.min(u64::from(u32::MAX)) as u32).map(u64::from)
        }
        // Requeue, PI and bitset operations: not yet.
        _ => Err(Errno::ENOSYS),
    }
}

pub fn getppid(_: &mut Call<'_>) -> EResult<u64> {
    task::with_current(|p| u64::from(p.ppid))
}

pub fn set_tid_address(call: &mut Call<'_>) -> EResult<u64> {
    task::with_current(|p| {
        p.clear_child_tid = call.args.0[0];
        u64::from(p.pid)
    })
}

const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;

pub fn arch_prctl(call: &mut Call<'_>) -> EResult<u64> {
    match call.args.0[0] {
        ARCH_SET_FS => {
            let base = call.args.0[1];
            if base >= crate::mm::user::USER_END {
                return Err(Errno::EPERM);
            }
            task::with_current(|p| p.fs_base = base)?;
            crate::arch::x86_64::usermode::set_user_fs_base(base);
            Ok(0)
        }
        ARCH_GET_FS => {
            let base = task::with_current(|p| p.fs_base)?;
            let target = UserSlice::new(call.args.0[1], 8)?;
            task::with_current(|p| p.space.lock().write(target, &base.to_le_bytes()))??;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `struct utsname`: six 65-byte fields.
pub fn uname(call: &mut Call<'_>) -> EResult<u64> {
    let fields = [
        "Linux",
        "cadenza",
        super::UTS_RELEASE,
        super::UTS_VERSION,
        "x86_64",
        "(none)",
    ];
    let mut buf = [0u8; 6 * 65];
    for (i, field) in fields.iter().enumerate() {
        buf[i * 65..i * 65 + field.len()].copy_from_slice(field.as_bytes());
    }
    let target = UserSlice::new(call.args.0[0], buf.len())?;
    task::with_current(|p| p.space.lock().write(target, &buf))??;
    Ok(0)
}

pub fn brk(call: &mut Call<'_>) -> EResult<u64> {
    let wanted = call.args.0[0];
    task::with_current(|p| {
        let mut guard = p.space.lock();
        let space = &mut *guard;
        // Linux: an invalid request returns the current break.
        if wanted < space.brk_start || wanted > space.brk_start + (1 << 30) {
            return space.brk;
        }
        let old_end = space.brk.div_ceil(4096) * 4096;
        let new_end = wanted.div_ceil(4096) * 4096;
        let result = if new_end > old_end {
            space.reserve(
                old_end,
                new_end - old_end,
                Protection {
                    write: true,
                    execute: false,
                },
                RegionKind::Heap,
            )
        } else {
            space.unmap(new_end, old_end - new_end)
        };
        if result.is_ok() {
            space.brk = wanted;
        }
        space.brk
    })
}

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
/// The flags `MAP_SHARED_VALIDATE` accepts (Linux's `LEGACY_MAP_MASK` and the type bits):
/// growsdown, denywrite, executable, locked, noreserve, populate, nonblock, stack, hugetlb,
/// the 32-bit hint, fixed and fixed-noreplace.
const MAP_KNOWN: u64 = MAP_TYPE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_FIXED_NOREPLACE
    | 0x40 /* 32BIT */
    | MAP_GROWSDOWN
    | 0x800 /* DENYWRITE */
    | 0x1000 /* EXECUTABLE */
    | 0x2000 /* LOCKED */
    | 0x4000 /* NORESERVE */
    | 0x8000 /* POPULATE */
    | 0x1_0000 /* NONBLOCK */
    | 0x2_0000 /* STACK */
    | 0x4_0000 /* HUGETLB */;

/// `mmap(hint, len, prot, flags, fd, offset)`: anonymous private memory, and private mappings
/// of regular files (what `ld.so` maps shared libraries with), their pages read from the file
/// on first touch (`AddressSpace::map_file`). Checks in Linux's order and with its errors:
/// `EINVAL` for an unaligned offset, `EBADF` for a bad descriptor, `EINVAL` for a zero length
/// or no mapping type, `ENOMEM` for lengths that overflow, `EOVERFLOW` for a range whose last
/// page number overflows, `EACCES` for a file not open for reading, `ENODEV` for what cannot
/// be mapped (directories, devices, pipes, procfs — where Linux may also say `EIO`), `EPERM`
/// for executable mappings from a `noexec` mount, `EINVAL` for a growing-down file mapping,
/// `EEXIST` for `MAP_FIXED_NOREPLACE` over something mapped. Like Linux, flags it does not know are ignored unless
/// the caller asked for validation (`MAP_SHARED_VALIDATE`: `EOPNOTSUPP`, alias `ENOTSUP`).
///
/// Not yet: shared mappings (`MAP_SHARED` of a file is `ENODEV`, of anonymous memory
/// `EINVAL`), and whole pages past the end of the file read as zeroes where Linux raises
/// `SIGBUS`.
pub fn mmap(call: &mut Call<'_>) -> EResult<u64> {
    let [hint, len, prot, flags, fd, offset] = call.args.0;
    if offset % 4096 != 0 {
        return Err(Errno::EINVAL);
    }
    let file = if flags & MAP_ANONYMOUS == 0 {
        Some(super::files::file(fd as i32)?)
    } else {
        None
    };
    if len == 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_add(4095).ok_or(Errno::ENOMEM)? & !4095;
    // Linux counts in pages: the last page of the range must have a number.
    if (offset / 4096).checked_add(len / 4096).is_none() {
        return Err(Errno::EOVERFLOW);
    }
    match flags & MAP_TYPE {
        MAP_SHARED_VALIDATE if flags & !MAP_KNOWN != 0 => return Err(Errno::ENOTSUP),
        MAP_SHARED | MAP_SHARED_VALIDATE if file.is_none() => return Err(Errno::EINVAL),
        MAP_SHARED | MAP_SHARED_VALIDATE | MAP_PRIVATE => {}
        _ => return Err(Errno::EINVAL),
    }
    let protection = Protection {
        write: prot & PROT_WRITE != 0,
        execute: prot & PROT_EXEC != 0,
    };
    let file = match file {
        None => None,
        Some(file) => {
            if file.is_path_only() {
                return Err(Errno::EBADF);
            }
            if !file.is_readable() {
                return Err(Errno::EACCES);
            }
            if !file.is_mappable() || flags & MAP_TYPE != MAP_PRIVATE {
                return Err(Errno::ENODEV);
            }
            if flags & MAP_GROWSDOWN != 0 {
                return Err(Errno::EINVAL);
            }
            let noexec = file
                .location()
                .mount
                .flags()
                .contains(crate::fs::mount::MountFlags::NOEXEC);
            if noexec && protection.execute {
                return Err(Errno::EPERM);
            }
            Some(crate::mm::user::FileMapping { file, offset })
        }
    };
    // Linux's heuristic overcommit (`OVERCOMMIT_GUESS`): memory is promised lazily, but one
    // writable private mapping larger than all of RAM (there is no swap) is refused outright.
    if protection.write && len / 4096 > crate::mm::frame_allocator::stats().total {
        return Err(Errno::ENOMEM);
    }
    task::with_current(|p| {
        let mut guard = p.space.lock();
        let space = &mut *guard;
        let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if hint % 4096 != 0 {
                return Err(Errno::EINVAL);
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && space.is_range_used(hint, len) {
                return Err(Errno::EEXIST);
            }
            space.unmap(hint, len)?;
            hint
        } else {
            space.pick_mmap_address(len)?
        };
        match file {
            Some(mapping) => space.map_file(start, len, protection, mapping)?,
            None => space.reserve(start, len, protection, RegionKind::Anonymous)?,
        }
        Ok(start)
    })?
}

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

/// `mremap(old, old_len, new_len, flags, new_address)` on anonymous private memory: shrinks in
/// place, grows in place when the following range is free, otherwise moves with
/// `MREMAP_MAYMOVE` (to `new_address` with `MREMAP_FIXED`). `MREMAP_DONTUNMAP` is not yet
/// supported (`EINVAL`).
pub fn mremap(call: &mut Call<'_>) -> EResult<u64> {
    let [old, old_len, new_len, flags, new_address, _] = call.args.0;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
        || (flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0)
        || flags & MREMAP_DONTUNMAP != 0
        || old % 4096 != 0
    {
        return Err(Errno::EINVAL);
    }
    // Linux's `PAGE_ALIGN`: a length within a page of 2^64 wraps to 0.
    let align = |len: u64| len.checked_add(4095).map_or(0, |len| len & !4095);
    let (old_len, new_len) = (align(old_len), align(new_len));
    if new_len == 0 {
        return Err(Errno::EINVAL);
    }
    let to = if flags & MREMAP_FIXED != 0 {
        RemapTo::Fixed(new_address)
    } else if flags & MREMAP_MAYMOVE != 0 {
        RemapTo::Anywhere
    } else {
        RemapTo::InPlace
    };
    task::with_current(|p| {
        let mut space = p.space.lock();
        // The same heuristic overcommit as `mmap`: one writable mapping bigger than RAM is
        // refused.
        let writable = space
            .regions()
            .iter()
            .any(|r| r.start <= old && old < r.end && r.protection.write);
        if writable && new_len / 4096 > crate::mm::frame_allocator::stats().total {
            return Err(Errno::ENOMEM);
        }
        space.remap(old, old_len, new_len, to)
    })?
}

pub fn mprotect(call: &mut Call<'_>) -> EResult<u64> {
    let [start, len, prot, ..] = call.args.0;
    // PROT_GROWSDOWN/GROWSUP (0x0100_0000/0x0200_0000) are accepted and ignored.
    if start % 4096 != 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | 0x0300_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let len = len.checked_add(4095).ok_or(Errno::ENOMEM)? & !4095;
    let protection = Protection {
        write: prot & PROT_WRITE != 0,
        execute: prot & PROT_EXEC != 0,
    };
    task::with_current(|p| p.space.lock().protect(start, len, protection))??;
    Ok(0)
}

pub fn munmap(call: &mut Call<'_>) -> EResult<u64> {
    let [start, len, ..] = call.args.0;
    if start % 4096 != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_add(4095).ok_or(Errno::EINVAL)? & !4095;
    task::with_current(|p| p.space.lock().unmap(start, len))??;
    Ok(0)
}

const GRND_NONBLOCK: u64 = 0x1;
const GRND_RANDOM: u64 = 0x2;
const GRND_INSECURE: u64 = 0x4;
/// Linux's `MAX_RW_COUNT`: the most one call transfers.
const MAX_RW_COUNT: u64 = 0x7fff_f000;

/// `getrandom(2)`: bytes from the kernel's ChaCha20 generator, the one behind `/dev/urandom`
/// and `AT_RANDOM` (`fs::dev::random`). That generator is seeded before its first use, so it is
/// always what Linux calls "ready": `GRND_NONBLOCK` never gives `EAGAIN`, and `GRND_RANDOM`
/// (the same pool since Linux 5.6) and `GRND_INSECURE` change nothing. Flags as Linux 6.1:
/// unknown bits and `GRND_INSECURE | GRND_RANDOM` are `EINVAL`. The buffer is filled a piece at a
/// time, never longer than to the end of a user page, so a fault part-way returns the bytes
/// written so far (`EFAULT` if none), and a pending signal after a page ends a long request
/// early, as in Linux's `get_random_bytes_user`.
pub fn getrandom(call: &mut Call<'_>) -> EResult<u64> {
    let [target, len, flags, ..] = call.args.0;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_INSECURE | GRND_RANDOM) == GRND_INSECURE | GRND_RANDOM
    {
        return Err(Errno::EINVAL);
    }
    let len = len.min(MAX_RW_COUNT);
    let end = target.checked_add(len).ok_or(Errno::EFAULT)?;
    let mut piece = [0u8; 256];
    let mut cursor = target;
    while cursor < end {
        let page_end = (cursor | 0xfff).saturating_add(1);
        let n = (end.min(page_end) - cursor).min(piece.len() as u64) as usize;
        crate::fs::dev::random::fill(&mut piece[..n]);
        let written = UserSlice::new(cursor, n)
            .and_then(|slice| task::with_current(|p| p.space.lock().write(slice, &piece[..n]))?);
        piece.fill(0);
        if let Err(error) = written {
            return if cursor == target {
                Err(error)
            } else {
                Ok(cursor - target)
            };
        }
        cursor += n as u64;
        if cursor % 4096 == 0 && cursor < end && task::signal_pending() {
            break;
        }
    }
    Ok(cursor - target)
}

pub fn fork(call: &mut Call<'_>) -> EResult<u64> {
    task::fork(call.frame).map(u64::from)
}

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;

pub fn wait4(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, status, options, rusage, ..] = call.args.0;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    let pid = pid as i32;
    let which = match pid {
        -1 => task::WaitFor::Any,
        0 => task::WaitFor::Group(task::group_and_session(0)?.0),
        p if p > 0 => task::WaitFor::Pid(p.unsigned_abs()),
        group => task::WaitFor::Group(group.unsigned_abs()),
    };
    let options = task::WaitOptions {
        no_hang: options & WNOHANG != 0,
        exited: true,
        stopped: options & WUNTRACED != 0,
        continued: options & WCONTINUED != 0,
        no_wait: false,
    };
    if status != 0 {
        UserSlice::<crate::mm::user::Write>::new(status, 4)?;
    }
    if rusage != 0 {
        UserSlice::<crate::mm::user::Write>::new(rusage, 144)?;
    }
    match task::wait_child(which, options)? {
        None => Ok(0),
        Some(task::ChildEvent {
            pid: child, event, ..
        }) => {
            if status != 0 {
                let target = UserSlice::new(status, 4)?;
                task::with_current(|p| {
                    p.space
                        .lock()
                        .write(target, &event.wait_status().to_le_bytes())
                })??;
            }
            if rusage != 0 {
                let target = UserSlice::new(rusage, 144)?;
                task::with_current(|p| p.space.lock().write(target, &[0u8; 144]))??;
            }
            Ok(u64::from(child))
        }
    }
}

const WSTOPPED: u64 = WUNTRACED;
const WEXITED: u64 = 4;
const WNOWAIT: u64 = 0x0100_0000;
const WNOTHREAD: u64 = 0x2000_0000;
const P_ALL: u32 = 0;
const P_PID: u32 = 1;
const P_PGID: u32 = 2;

/// `waitid(idtype, id, infop, options, rusage)`: `wait4` with the choice of events spelled out
/// (`WEXITED`, `WSTOPPED`, `WCONTINUED`), `WNOWAIT` to peek, and the answer as a `siginfo_t`.
/// It returns 0 on success. Like Linux, it writes `infop` whatever happened — the event, or
/// zeroes when `WNOHANG` found nothing and even with an error — while `rusage` is written only
/// for an event.
pub fn waitid(call: &mut Call<'_>) -> EResult<u64> {
    let [idtype, id, info, options, rusage, _] = call.args.0;
    // `idtype`, `id` and `options` are C `int`s: the upper halves of the registers are not
    // theirs.
    let result = waitid_event(idtype as u32, id as u32, options as u32);
    if info != 0 {
        // si_signo, si_errno, si_code | si_pid, si_uid, si_status (the fields Linux writes).
        let (mut head, mut tail) = ([0u8; 12], [0u8; 12]);
        if let Ok(Some(task::ChildEvent { pid, uid, event })) = result {
            let (code, status) = match event {
                task::WaitEvent::Exited(task::ExitStatus::Code(code)) => {
                    (task::signal::CLD_EXITED, code)
                }
                task::WaitEvent::Exited(task::ExitStatus::Signal { signal, core }) => (
                    if core {
                        task::signal::CLD_DUMPED
                    } else {
                        task::signal::CLD_KILLED
                    },
                    i32::from(signal),
                ),
                task::WaitEvent::Stopped(signal) => (task::signal::CLD_STOPPED, i32::from(signal)),
                task::WaitEvent::Continued => (
                    task::signal::CLD_CONTINUED,
                    i32::from(task::signal::SIGCONT),
                ),
            };
            head[..4].copy_from_slice(&u32::from(task::signal::SIGCHLD).to_le_bytes());
            head[8..].copy_from_slice(&code.to_le_bytes());
            tail[..4].copy_from_slice(&pid.to_le_bytes());
            tail[4..8].copy_from_slice(&uid.to_le_bytes());
            tail[8..].copy_from_slice(&status.to_le_bytes());
        }
        let (head_at, tail_at) = (UserSlice::new(info, 12)?, UserSlice::new(info + 16, 12)?);
        task::with_current(|p| {
            let mut space = p.space.lock();
            space.write(head_at, &head)?;
            space.write(tail_at, &tail)
        })??;
    }
    // CPU times are not accounted per child yet: the rusage is zeroes.
    if result?.is_some() && rusage != 0 {
        let target = UserSlice::new(rusage, 144)?;
        task::with_current(|p| p.space.lock().write(target, &[0u8; 144]))??;
    }
    Ok(0)
}

/// `waitid`'s validation (as Linux's `kernel_waitid`) and the wait itself.
fn waitid_event(idtype: u32, id: u32, options: u32) -> EResult<Option<task::ChildEvent>> {
    let options = u64::from(options);
    let known = WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WALL | WCLONE;
    if options & !known != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let which = match idtype {
        P_ALL => task::WaitFor::Any,
        P_PID if id as i32 > 0 => task::WaitFor::Pid(id),
        P_PGID if id as i32 > 0 => task::WaitFor::Group(id),
        P_PGID if id == 0 => task::WaitFor::Group(task::group_and_session(0)?.0),
        // P_PIDFD (3) needs pidfds, which do not exist yet.
        _ => return Err(Errno::EINVAL),
    };
    task::wait_child(
        which,
        task::WaitOptions {
            no_hang: options & WNOHANG != 0,
            exited: options & WEXITED != 0,
            stopped: options & WSTOPPED != 0,
            continued: options & WCONTINUED != 0,
            no_wait: options & WNOWAIT != 0,
        },
    )
}

/// Reads a NULL-terminated array of string pointers (argv, envp).
fn read_string_array(address: u64) -> EResult<alloc::vec::Vec<alloc::string::String>> {
    let mut strings = alloc::vec::Vec::new();
    if address == 0 {
        return Ok(strings);
    }
    let mut total = 0usize;
    for i in 0..4096u64 {
        let pointer = task::with_current(|p| p.space.lock().read_u64(address + i * 8))??;
        if pointer == 0 {
            return Ok(strings);
        }
        let string = task::with_current(|p| p.space.lock().read_c_string(pointer, 128 * 1024))??;
        total += string.len() + 1;
        if total > 256 * 1024 {
            return Err(Errno::E2BIG);
        }
        crate::mm::fallible::try_push(&mut strings, string)?;
    }
    Err(Errno::E2BIG)
}

pub fn execve(call: &mut Call<'_>) -> EResult<u64> {
    let [path, argv, envp, ..] = call.args.0;
    let path = task::with_current(|p| p.space.lock().read_c_string(path, 4096))??;
    let argv = read_string_array(argv)?;
    let envp = read_string_array(envp)?;
    let argv: alloc::vec::Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
    let program = crate::exec::resolve(&path, &argv)?;
    let argv: alloc::vec::Vec<&str> = program.argv.iter().map(|s| s.as_str()).collect();
    let envp: alloc::vec::Vec<&str> = envp.iter().map(|s| s.as_str()).collect();
    task::exec(&path, &program.image, &argv, &envp, call.frame)?;
    Ok(0)
}

pub fn sched_yield(_: &mut Call<'_>) -> EResult<u64> {
    task::schedule();
    Ok(0)
}

fn pid_arg(value: u64) -> EResult<task::Pid> {
    let value = value as i64 as i32;
    u32::try_from(value).map_err(|_| Errno::EINVAL)
}

pub fn setpgid(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, pgid, ..] = call.args.0;
    task::set_process_group(pid_arg(pid)?, pid_arg(pgid)?)?;
    Ok(0)
}

pub fn getpgid(call: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(
        task::group_and_session(pid_arg(call.args.0[0])?)?.0,
    ))
}

pub fn getpgrp(_: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(task::group_and_session(0)?.0))
}

pub fn getsid(call: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(
        task::group_and_session(pid_arg(call.args.0[0])?)?.1,
    ))
}

pub fn setsid(_: &mut Call<'_>) -> EResult<u64> {
    task::new_session().map(u64::from)
}

static PAUSED: task::WaitQueue = task::WaitQueue::new();

/// `pause`: sleeps until a signal arrives (always `EINTR`).
pub fn pause(_: &mut Call<'_>) -> EResult<u64> {
    wait_for_signal()
}

/// Sleeps until a signal is deliverable; always `EINTR`.
pub fn wait_for_signal() -> EResult<u64> {
    PAUSED.wait_until(|| false)?;
    Err(Errno::EINTR)
}

const REBOOT_MAGIC1: u64 = 0xfee1_dead;
const REBOOT_MAGIC2: [u64; 4] = [672_274_793, 85_072_278, 369_367_448, 537_993_216];
const REBOOT_CMD_RESTART: u64 = 0x0123_4567;
const REBOOT_CMD_HALT: u64 = 0xcdef_0123;
const REBOOT_CMD_CAD_ON: u64 = 0x89ab_cdef;
const REBOOT_CMD_CAD_OFF: u64 = 0;
const REBOOT_CMD_POWER_OFF: u64 = 0x4321_fedc;
const REBOOT_CMD_RESTART2: u64 = 0xa1b2_c3d4;

/// Linux's `C_A_D`: whether Ctrl-Alt-Del reboots at once (set) or signals init (clear). The
/// serial console has no such key, so it is only remembered, for the next `CAD_ON`/`CAD_OFF`.
static CTRL_ALT_DEL_REBOOTS: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(true);

/// `reboot`: power off (and halt, and restart, which under QEMU's `-no-reboot` is the same end)
/// ends the machine cleanly, as `poweroff` from a shell expects. As kernel/reboot.c: only root
/// (`CAP_SYS_BOOT`) may (`EPERM`, checked first), then both magic numbers must be right
/// (`EINVAL`), then the command (`EINVAL` for unknown ones, and for `KEXEC` and `SW_SUSPEND`,
/// which need a loaded image or a swap device this kernel never has).
pub fn reboot(call: &mut Call<'_>) -> EResult<u64> {
    let [magic1, magic2, command, argument, ..] = call.args.0;
    if !task::with_current(|p| p.identity.is_privileged())? {
        return Err(Errno::EPERM);
    }
    if magic1 as u32 as u64 != REBOOT_MAGIC1 || !REBOOT_MAGIC2.contains(&(magic2 as u32 as u64)) {
        return Err(Errno::EINVAL);
    }
    let what = match command as u32 as u64 {
        REBOOT_CMD_CAD_ON | REBOOT_CMD_CAD_OFF => {
            CTRL_ALT_DEL_REBOOTS.store(
                command as u32 as u64 == REBOOT_CMD_CAD_ON,
                core::sync::atomic::Ordering::Relaxed,
            );
            return Ok(0);
        }
        REBOOT_CMD_RESTART => alloc::string::String::from("Restarting system"),
        REBOOT_CMD_RESTART2 => {
            // The command for the firmware; Linux copies at most 255 bytes of it.
            let mut text = alloc::vec::Vec::new();
            task::with_current(|p| -> EResult<()> {
                let mut space = p.space.lock();
                for offset in 0..255 {
                    let mut byte = [0u8];
                    let address = argument.checked_add(offset).ok_or(Errno::EFAULT)?;
                    space.read(UserSlice::new(address, 1)?, &mut byte)?;
                    if byte[0] == 0 {
                        break;
                    }
                    text.push(byte[0]);
                }
                Ok(())
            })??;
            alloc::format!(
                "Restarting system with command '{}'",
                alloc::string::String::from_utf8_lossy(&text)
            )
        }
        REBOOT_CMD_HALT => alloc::string::String::from("System halted"),
        REBOOT_CMD_POWER_OFF => alloc::string::String::from("Power down"),
        _ => return Err(Errno::EINVAL),
    };
    crate::kprintln!("reboot: {what}");
    crate::arch::x86_64::power::exit(crate::arch::x86_64::power::ExitCode::Success)
}

/// `sync`: every file system is in memory (tmpfs, procfs), so there is nothing to write back.
pub fn sync(_: &mut Call<'_>) -> EResult<u64> {
    Ok(0)
}

/// `sysinfo(2)`: uptime, load averages, memory and the process count (`struct sysinfo`, 112
/// bytes on x86_64, memory in units of `mem_unit` bytes). Shared memory is tmpfs's file data,
/// as Linux counts it.
pub fn sysinfo(call: &mut Call<'_>) -> EResult<u64> {
    let frames = crate::mm::frame_allocator::stats();
    let page = crate::mm::PAGE_SIZE as u64;
    let processes = task::info::all().len();
    let mut buf = [0u8; 112];
    let mut put = |offset: usize, value: u64| {
        buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    };
    put(0, crate::time::now_ns() / 1_000_000_000);
    for (i, load) in task::info::load_average().iter().enumerate() {
        // `FIXED_1` fixed point to sysinfo's 16-bit fraction.
        put(8 + i * 8, load << 5);
    }
    put(32, frames.total * page);
    put(40, frames.free * page);
    put(48, crate::fs::tmpfs::pages_in_use() * page);
    buf[80..82].copy_from_slice(&(processes.min(usize::from(u16::MAX)) as u16).to_le_bytes());
    buf[104..108].copy_from_slice(&1u32.to_le_bytes());
    let target = UserSlice::new(call.args.0[0], buf.len())?;
    task::with_current(|p| p.space.lock().write(target, &buf))??;
    Ok(0)
}

/// Reads a `struct rlimit` (16 bytes) from user memory.
fn read_limit(address: u64) -> EResult<task::limits::Limit> {
    let mut bytes = [0u8; 16];
    let source = UserSlice::new(address, 16)?;
    task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
    Ok(task::limits::Limit::from_bytes(&bytes))
}

fn write_limit(address: u64, limit: task::limits::Limit) -> EResult<()> {
    let target = UserSlice::new(address, 16)?;
    task::with_current(|p| p.space.lock().write(target, &limit.to_bytes()))?
}

/// Replaces or reads a limit of process `pid` as `caller` may; `RLIMIT_NOFILE` resizes the
/// descriptor table at once.
fn change_limit(
    pid: task::Pid,
    resource: u64,
    new: Option<task::limits::Limit>,
    caller: &task::identity::Identity,
) -> EResult<task::limits::Limit> {
    task::with_process(pid, |p| {
        // `prlimit64` on another process: root, or a user who is that process's every uid and
        // gid (Linux's `check_prlimit_permission`).
        let same_user = [
            p.identity.uid.real,
            p.identity.uid.effective,
            p.identity.uid.saved,
        ]
        .iter()
        .all(|&id| id == caller.uid.real)
            && [
                p.identity.gid.real,
                p.identity.gid.effective,
                p.identity.gid.saved,
            ]
            .iter()
            .all(|&id| id == caller.gid.real);
        if !caller.is_privileged() && !same_user {
            return Err(Errno::EPERM);
        }
        let Some(limit) = new else {
            return p.limits.get(resource);
        };
        let old = p.limits.set(resource, limit, caller.is_privileged())?;
        if resource == task::limits::RLIMIT_NOFILE as u64 {
            let size = usize::try_from(limit.soft).unwrap_or(usize::MAX);
            p.files.lock().set_limit(size.min(1 << 20));
        }
        Ok(old)
    })?
}

fn caller() -> EResult<(task::Pid, task::identity::Identity)> {
    task::with_current(|p| (p.pid, p.identity.clone()))
}

pub fn getrlimit(call: &mut Call<'_>) -> EResult<u64> {
    let [resource, address, ..] = call.args.0;
    let (me, identity) = caller()?;
    let limit = change_limit(me, resource, None, &identity)?;
    write_limit(address, limit)?;
    Ok(0)
}

pub fn setrlimit(call: &mut Call<'_>) -> EResult<u64> {
    let [resource, address, ..] = call.args.0;
    let new = read_limit(address)?;
    let (me, identity) = caller()?;
    change_limit(me, resource, Some(new), &identity)?;
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)`: pid 0 is the caller.
pub fn prlimit64(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, resource, new, old, ..] = call.args.0;
    let (me, identity) = caller()?;
    let pid = match pid as i32 {
        0 => me,
        pid if pid > 0 => pid as task::Pid,
        _ => return Err(Errno::EINVAL),
    };
    let new = match new {
        0 => None,
        address => Some(read_limit(address)?),
    };
    let previous = change_limit(pid, resource, new, &identity)?;
    if old != 0 {
        write_limit(old, previous)?;
    }
    Ok(0)
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;

/// `prctl`: the options programs commonly use; any other is `EINVAL`, as Linux answers an
/// option it does not have.
pub fn prctl(call: &mut Call<'_>) -> EResult<u64> {
    let [option, arg2, arg3, arg4, arg5, ..] = call.args.0;
    match option {
        PR_SET_PDEATHSIG => {
            let signal = if arg2 == 0 {
                0
            } else {
                crate::task::signal::check_signal(arg2)?
            };
            task::with_current(|p| p.parent_death_signal = signal)?;
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            let signal = task::with_current(|p| p.parent_death_signal)?;
            let target = UserSlice::new(arg2, 4)?;
            task::with_current(|p| {
                p.space
                    .lock()
                    .write(target, &i32::from(signal).to_le_bytes())
            })??;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(u64::from(task::with_current(|p| p.dumpable)?)),
        PR_SET_DUMPABLE if arg2 <= 1 => {
            task::with_current(|p| p.dumpable = arg2 == 1)?;
            Ok(0)
        }
        PR_SET_NAME => {
            // 16 bytes at most, NUL-terminated or not; the name is cut at 15.
            let mut bytes = [0u8; 16];
            let source = UserSlice::new(arg2, 16)?;
            task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(15).min(15);
            let name = alloc::string::String::from_utf8_lossy(&bytes[..end]).into_owned();
            task::with_current(|p| p.name = name)?;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut bytes = [0u8; 16];
            let name = task::with_current(|p| p.name.clone())?;
            let len = name.len().min(15);
            bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
            let target = UserSlice::new(arg2, 16)?;
            task::with_current(|p| p.space.lock().write(target, &bytes))??;
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS if arg2 == 1 && arg3 == 0 && arg4 == 0 && arg5 == 0 => {
            task::with_current(|p| p.no_new_privs = true)?;
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS if arg2 == 0 && arg3 == 0 && arg4 == 0 && arg5 == 0 => {
            Ok(u64::from(task::with_current(|p| p.no_new_privs)?))
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `set_robust_list(head, len)`: the list the kernel walks when the thread dies
/// (`task::futex::release_robust_list`); `len` must be the size of `struct robust_list_head`.
pub fn set_robust_list(call: &mut Call<'_>) -> EResult<u64> {
    let [head, len, ..] = call.args.0;
    if len != 24 {
        return Err(Errno::EINVAL);
    }
    task::with_current(|p| p.robust_list = head)?;
    Ok(0)
}

/// `get_robust_list(pid, head_ptr, len_ptr)`: the caller's (pid 0) or another thread's list
/// head, the latter for root only.
pub fn get_robust_list(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, head_at, len_at, ..] = call.args.0;
    let (me, identity) = caller()?;
    let pid = match pid as i32 {
        0 => me,
        pid if pid > 0 => pid as task::Pid,
        _ => return Err(Errno::ESRCH),
    };
    if pid != me && !identity.is_privileged() {
        return Err(Errno::EPERM);
    }
    let head = task::with_process(pid, |p| p.robust_list)?;
    for (address, value) in [(head_at, head), (len_at, 24)] {
        let target = UserSlice::new(address, 8)?;
        task::with_current(|p| p.space.lock().write(target, &value.to_le_bytes()))??;
    }
    Ok(0)
}

/// `sched_getaffinity(pid, len, mask)`: the one CPU there is (CPU 0). As Linux with 64-bit
/// masks: `EINVAL` for a buffer smaller than one `unsigned long` or not a multiple of it,
/// `ESRCH` for no such thread; returns the bytes written (8).
pub fn sched_getaffinity(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, len, mask, ..] = call.args.0;
    if len < 8 || len % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    match pid as i32 {
        0 => {}
        pid if pid > 0 => task::with_process(pid as task::Pid, |_| ())?,
        _ => return Err(Errno::ESRCH),
    }
    let target = UserSlice::new(mask, 8)?;
    task::with_current(|p| p.space.lock().write(target, &1u64.to_le_bytes()))??;
    Ok(8)
}
