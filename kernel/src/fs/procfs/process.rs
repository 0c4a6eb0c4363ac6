//! `/proc/<pid>`: one directory per process, its files in Linux's formats.
//!
//! Some of those files show what a process keeps to itself: its memory map, its environment,
//! where its working and root directories and open files are (and, followed, the files
//! themselves, whatever the permissions on their paths), the addresses in `stat`. Linux lets
//! only whoever may trace the process see them (`ptrace_may_access` with
//! `PTRACE_MODE_READ_FSCREDS`); here one function, `may_access_process`, decides that for every
//! such file, with the rule in `task::identity`, and each file refuses or masks as its Linux
//! counterpart does: `maps` and `environ` at `open` (`EACCES`), the links at `readlink` and when
//! followed (`EACCES`), `stat` by printing zeroes in place of the addresses and exit code.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use super::ino;
use crate::errno::{EResult, Errno};
use crate::fs::inode::Inode;
use crate::fs::metadata::{DeviceId, FileType};
use crate::fs::pseudo::{Attributes, Contents, Entry, GeneratedDir, GeneratedFile, GeneratedLink};
use crate::mm::user::{MemoryUsage, UserSlice};
use crate::task::info::{self, ProcessInfo};
use crate::task::{Pid, State};

/// A decimal number without sign or leading zeros (`"01"` is not pid 1, as in Linux).
pub fn parse_number<T: core::str::FromStr>(name: &str) -> Option<T> {
    let canonical = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'));
    canonical.then(|| name.parse().ok()).flatten()
}

/// What is in a process directory, in `getdents64` order.
#[derive(Clone, Copy)]
enum File {
    Cmdline,
    Comm,
    Cwd,
    Environ,
    Fd,
    Maps,
    Mounts,
    Root,
    Stat,
    Statm,
    Status,
}

const FILES: [(&str, File); 11] = [
    ("cmdline", File::Cmdline),
    ("comm", File::Comm),
    ("cwd", File::Cwd),
    ("environ", File::Environ),
    ("fd", File::Fd),
    ("maps", File::Maps),
    ("mounts", File::Mounts),
    ("root", File::Root),
    ("stat", File::Stat),
    ("statm", File::Statm),
    ("status", File::Status),
];

fn process_ino(pid: Pid, index: u64) -> u64 {
    ino::PROCESS_BASE + (u64::from(pid) << 8) + index
}

/// `/proc/<pid>`: owned by the process's user, as Linux's (`ps` takes the USER column from it).
pub fn directory(device: DeviceId, parent: Arc<dyn Inode>, info: &ProcessInfo) -> Arc<dyn Inode> {
    let attributes = Attributes {
        device,
        ino: process_ino(info.pid, 0),
        permissions: 0o555,
        uid: info.uid,
        gid: info.gid,
    };
    GeneratedDir::new(
        attributes,
        parent,
        Box::new(ProcessDir {
            device,
            pid: info.pid,
            uid: info.uid,
            gid: info.gid,
        }),
    )
}

struct ProcessDir {
    device: DeviceId,
    pid: Pid,
    uid: u32,
    gid: u32,
}

impl ProcessDir {
    fn attributes(&self, index: usize, permissions: u32) -> Attributes {
        Attributes {
            device: self.device,
            ino: process_ino(self.pid, index as u64 + 1),
            permissions,
            uid: self.uid,
            gid: self.gid,
        }
    }

    fn text(
        &self,
        index: usize,
        permissions: u32,
        show: fn(Pid, &mut String) -> EResult<()>,
    ) -> Arc<dyn Inode> {
        let pid = self.pid;
        GeneratedFile::new(
            self.attributes(index, permissions),
            Box::new(move |out| show(pid, out)),
        )
    }

    /// A text file only those who may trace the process may open (`EACCES`), as Linux's
    /// `proc_mem_open` files (`maps`, `environ`).
    fn private_text(
        &self,
        index: usize,
        permissions: u32,
        show: fn(Pid, &mut String) -> EResult<()>,
    ) -> Arc<dyn Inode> {
        let pid = self.pid;
        GeneratedFile::with_open_check(
            self.attributes(index, permissions),
            Box::new(move |out| show(pid, out)),
            Box::new(move || may_access_process(pid)),
        )
    }

    fn inode(&self, dir: &Arc<dyn Inode>, index: usize) -> Arc<dyn Inode> {
        let pid = self.pid;
        match FILES[index].1 {
            File::Cmdline => self.text(index, 0o444, cmdline),
            File::Comm => self.text(index, 0o644, comm),
            File::Environ => self.private_text(index, 0o400, environ),
            File::Maps => self.private_text(index, 0o444, maps),
            File::Mounts => self.text(index, 0o444, mounts),
            File::Stat => self.text(index, 0o444, stat),
            File::Statm => self.text(index, 0o444, statm),
            File::Status => self.text(index, 0o444, status),
            File::Cwd => GeneratedLink::magic(
                self.attributes(index, 0o777),
                Box::new(move || {
                    may_access_process(pid)?;
                    directory_path(pid, |fs| fs.cwd.clone())
                }),
                Box::new(move || {
                    may_access_process(pid)?;
                    Ok(resources(pid)?.fs.lock().cwd.clone())
                }),
            ),
            File::Root => GeneratedLink::magic(
                self.attributes(index, 0o777),
                Box::new(move || {
                    may_access_process(pid)?;
                    directory_path(pid, |fs| fs.root.clone())
                }),
                Box::new(move || {
                    may_access_process(pid)?;
                    Ok(resources(pid)?.fs.lock().root.clone())
                }),
            ),
            File::Fd => GeneratedDir::new(
                self.attributes(index, 0o500),
                dir.clone(),
                Box::new(FdDir {
                    device: self.device,
                    pid,
                    uid: self.uid,
                    gid: self.gid,
                }),
            ),
        }
    }
}

impl Contents for ProcessDir {
    fn entries(&self, dir: &Arc<dyn Inode>) -> Vec<Entry> {
        FILES
            .iter()
            .enumerate()
            .map(|(index, (name, _))| Entry {
                cookie: index as u64 + 2,
                name: String::from(*name),
                inode: self.inode(dir, index),
            })
            .collect()
    }

    fn lookup(&self, dir: &Arc<dyn Inode>, name: &str) -> EResult<Arc<dyn Inode>> {
        let index = FILES
            .iter()
            .position(|(file, _)| *file == name)
            .ok_or(Errno::ENOENT)?;
        Ok(self.inode(dir, index))
    }
}

/// Whether the caller may see process `pid`'s private state: Linux's `ptrace_may_access(task,
/// PTRACE_MODE_READ_FSCREDS)`. Its own threads always; anyone else by
/// `Identity::may_read_process` (same ids and a dumpable target, or root). `EACCES`, what
/// Linux's procfs answers, otherwise; `ESRCH` if the process is gone.
pub fn may_access_process(pid: Pid) -> EResult<()> {
    let (reader, reader_group) = crate::task::with_current(|p| (p.identity.clone(), p.tgid))?;
    let (target, target_group, dumpable) =
        crate::task::with_process(pid, |p| (p.identity.clone(), p.tgid, p.dumpable))?;
    if reader_group == target_group || reader.may_read_process(&target, dumpable) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

fn get(pid: Pid) -> EResult<ProcessInfo> {
    info::get(pid).ok_or(Errno::ESRCH)
}

fn resources(pid: Pid) -> EResult<info::Resources> {
    info::resources(pid).ok_or(Errno::ESRCH)
}

/// The path of the process's working or root directory, as seen from the reader's root.
fn directory_path(
    pid: Pid,
    which: impl Fn(&crate::fs::FsContext) -> crate::fs::Location,
) -> EResult<String> {
    let target = which(&resources(pid)?.fs.lock());
    let reader_root = crate::task::with_current(|p| p.fs.lock().root.clone())?;
    crate::fs::path::path_of(&target, &reader_root)
}

/// The NUL-separated strings `execve` left in the process's memory (a zombie has none).
fn read_strings(
    pid: Pid,
    which: fn(&crate::mm::user::AddressSpace) -> core::ops::Range<u64>,
) -> EResult<Vec<u8>> {
    if matches!(get(pid)?.state, State::Zombie(_)) {
        return Ok(Vec::new());
    }
    let space = resources(pid)?.space;
    let mut space = space.lock();
    let range = which(&space);
    let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| Errno::EIO)?;
    let mut bytes = crate::mm::fallible::try_vec_zeroed(len)?;
    if len > 0 {
        space.read(UserSlice::new(range.start, len)?, &mut bytes)?;
    }
    Ok(bytes)
}

/// Binary text: procfs hands NUL bytes through unchanged; `String` carries them fine.
fn push_bytes(out: &mut String, bytes: &[u8]) {
    out.push_str(&String::from_utf8_lossy(bytes));
}

fn cmdline(pid: Pid, out: &mut String) -> EResult<()> {
    push_bytes(out, &read_strings(pid, |space| space.arguments.clone())?);
    Ok(())
}

fn environ(pid: Pid, out: &mut String) -> EResult<()> {
    push_bytes(out, &read_strings(pid, |space| space.environment.clone())?);
    Ok(())
}

fn comm(pid: Pid, out: &mut String) -> EResult<()> {
    let _ = writeln!(out, "{}", get(pid)?.comm.as_str());
    Ok(())
}

fn maps(pid: Pid, out: &mut String) -> EResult<()> {
    let name = get(pid)?.comm;
    let space = resources(pid)?.space;
    crate::mm::user::write_maps(&space.lock(), name.as_str(), out);
    Ok(())
}

fn mounts(pid: Pid, out: &mut String) -> EResult<()> {
    let root = resources(pid)?.fs.lock().root.clone();
    let _ = crate::fs::mount::write_mounts(&root, out);
    Ok(())
}

/// Clock ticks (`USER_HZ`, 100 per second, what `sysconf(_SC_CLK_TCK)` says).
fn ticks(ns: u64) -> u64 {
    ns / 10_000_000
}

fn state_name(state: State) -> &'static str {
    match state.letter() {
        'R' => "R (running)",
        'S' => "S (sleeping)",
        'T' => "T (stopped)",
        'Z' => "Z (zombie)",
        _ => "D (disk sleep)",
    }
}

fn memory(info: &ProcessInfo) -> MemoryUsage {
    info.memory.unwrap_or_default()
}

/// fs/proc/array.c's `do_task_stat`: 52 fields. CPU time is all reported as user time (the
/// kernel does not split it). Code, stack, data and argument addresses and the exit code are
/// for those `may_access_process` allows; others see what Linux shows them: `1` for the code
/// addresses of a process with memory, zeroes for the rest.
fn stat(pid: Pid, out: &mut String) -> EResult<()> {
    let info = get(pid)?;
    let permitted = may_access_process(pid).is_ok();
    let memory = memory(&info);
    let space = resources(pid)?.space;
    let (arguments, environment, brk_start) = {
        let space = space.lock();
        (
            space.arguments.clone(),
            space.environment.clone(),
            space.brk_start,
        )
    };
    let zombie = matches!(info.state, State::Zombie(_));
    let exit_code = match info.state {
        State::Zombie(status) if permitted => status.wait_status(),
        _ => 0,
    };
    // start_code and end_code (not tracked: 0), or Linux's 1 for a reader who may not see them.
    let code = if permitted || zombie { 0 } else { 1 };
    // start_data end_data start_brk arg_start arg_end env_start env_end
    let data = if permitted && !zombie {
        [
            0,
            0,
            brk_start,
            arguments.start,
            arguments.end,
            environment.start,
            environment.end,
        ]
    } else {
        [0; 7]
    };
    let _ = writeln!(
        out,
        "{pid} ({comm}) {state} {ppid} {pgid} {sid} 0 -1 4194304 0 0 0 0 {utime} 0 0 0 20 0 {threads} 0 {start} {vsize} {rss} 18446744073709551615 {code} {code} 0 0 0 {pending} {blocked} {ignored} {caught} 0 0 0 17 0 0 0 0 0 0 {d0} {d1} {d2} {d3} {d4} {d5} {d6} {exit_code}",
        comm = info.comm.as_str(),
        state = info.state.letter(),
        ppid = info.ppid,
        pgid = info.pgid,
        sid = info.sid,
        utime = ticks(info.cpu_ns),
        threads = info::thread_count(info.tgid),
        start = ticks(info.start_ns),
        vsize = memory.total().size,
        rss = memory.total().resident / 4096,
        pending = info.signals_pending,
        blocked = info.signals_blocked,
        ignored = info.signals_ignored,
        caught = info.signals_caught,
        d0 = data[0],
        d1 = data[1],
        d2 = data[2],
        d3 = data[3],
        d4 = data[4],
        d5 = data[5],
        d6 = data[6],
    );
    Ok(())
}

/// `size resident shared text lib data dt`, in pages.
fn statm(pid: Pid, out: &mut String) -> EResult<()> {
    let memory = memory(&get(pid)?);
    let pages = |bytes: u64| bytes / 4096;
    let _ = writeln!(
        out,
        "{} {} 0 {} 0 {} 0",
        pages(memory.total().size),
        pages(memory.total().resident),
        pages(memory.image.size),
        pages(memory.heap.size + memory.anonymous.size + memory.stack.size),
    );
    Ok(())
}

/// fs/proc/array.c's `proc_pid_status`, the fields programs look for.
fn status(pid: Pid, out: &mut String) -> EResult<()> {
    let info = get(pid)?;
    let memory = memory(&info);
    let umask = resources(pid)?.fs.lock().umask;
    let fd_size = resources(pid)?.files.lock().limit();
    let kb = |bytes: u64| bytes / 1024;
    let _ = write!(
        out,
        "Name:\t{name}\nUmask:\t{umask:04o}\nState:\t{state}\nTgid:\t{tgid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\n\
         Uid:\t{u0}\t{u1}\t{u2}\t{u3}\nGid:\t{g0}\t{g1}\t{g2}\t{g3}\nFDSize:\t{fd_size}\nGroups:\t\n\
         NStgid:\t{tgid}\nNSpid:\t{pid}\nNSpgid:\t{pgid}\nNSsid:\t{sid}\n",
        name = info.comm.as_str(),
        state = state_name(info.state),
        tgid = info.tgid,
        ppid = info.ppid,
        u0 = info.uids[0],
        u1 = info.uids[1],
        u2 = info.uids[2],
        u3 = info.uids[3],
        g0 = info.gids[0],
        g1 = info.gids[1],
        g2 = info.gids[2],
        g3 = info.gids[3],
        pgid = info.pgid,
        sid = info.sid,
    );
    if info.memory.is_some() && !matches!(info.state, State::Zombie(_)) {
        let total = memory.total();
        let _ = write!(
            out,
            "VmPeak:\t{:>8} kB\nVmSize:\t{:>8} kB\nVmLck:\t{:>8} kB\nVmPin:\t{:>8} kB\nVmHWM:\t{:>8} kB\nVmRSS:\t{:>8} kB\n\
             RssAnon:\t{:>8} kB\nRssFile:\t{:>8} kB\nRssShmem:\t{:>8} kB\n\
             VmData:\t{:>8} kB\nVmStk:\t{:>8} kB\nVmExe:\t{:>8} kB\nVmLib:\t{:>8} kB\nVmPTE:\t{:>8} kB\nVmSwap:\t{:>8} kB\n",
            kb(total.size),
            kb(total.size),
            0,
            0,
            kb(total.resident),
            kb(total.resident),
            kb(total.resident - memory.image.resident - memory.file.resident),
            kb(memory.image.resident + memory.file.resident),
            0,
            kb(memory.heap.size + memory.anonymous.size),
            kb(memory.stack.size),
            kb(memory.image.size),
            // Shared libraries: every file mapping counts (Linux counts the executable ones).
            kb(memory.file.size),
            0,
            0,
        );
    }
    let _ = write!(
        out,
        "Threads:\t{}\nSigQ:\t0/0\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{:016x}\nSigCgt:\t{:016x}\n",
        info::thread_count(info.tgid),
        info.signals_pending,
        0,
        info.signals_blocked,
        info.signals_ignored,
        info.signals_caught,
    );
    Ok(())
}

/// `/proc/<pid>/fd`: one symlink per descriptor, named by number.
struct FdDir {
    device: DeviceId,
    pid: Pid,
    uid: u32,
    gid: u32,
}

impl FdDir {
    fn link(&self, fd: i32) -> Arc<dyn Inode> {
        let pid = self.pid;
        let attributes = Attributes {
            device: self.device,
            ino: ino::FD_BASE + (u64::from(pid) << 20) + fd as u64,
            permissions: 0o700,
            uid: self.uid,
            gid: self.gid,
        };
        GeneratedLink::magic(
            attributes,
            Box::new(move || {
                may_access_process(pid)?;
                descriptor_target(pid, fd)
            }),
            Box::new(move || {
                may_access_process(pid)?;
                let file = resources(pid)?
                    .files
                    .lock()
                    .get(fd)
                    .map_err(|_| Errno::ENOENT)?;
                Ok(file.location().clone())
            }),
        )
    }
}

/// What `readlink` shows for a descriptor: the file's path, or `pipe:[ino]` and the like for
/// files without one.
fn descriptor_target(pid: Pid, fd: i32) -> EResult<String> {
    let file = resources(pid)?
        .files
        .lock()
        .get(fd)
        .map_err(|_| Errno::ENOENT)?;
    let reader_root = crate::task::with_current(|p| p.fs.lock().root.clone())?;
    let location = file.location();
    if location.is_dir() {
        return crate::fs::path::path_of(location, &reader_root);
    }
    if let Some(path) = file.opened_path() {
        return Ok(String::from(path));
    }
    let meta = location.metadata();
    Ok(match meta.file_type {
        FileType::Fifo => format!("pipe:[{}]", meta.ino),
        FileType::Socket => format!("socket:[{}]", meta.ino),
        _ => format!("anon_inode:[{}]", meta.ino),
    })
}

impl Contents for FdDir {
    fn entries(&self, _dir: &Arc<dyn Inode>) -> Vec<Entry> {
        let Some(resources) = info::resources(self.pid) else {
            return Vec::new();
        };
        let fds: Vec<i32> = resources.files.lock().iter().map(|(fd, _, _)| fd).collect();
        fds.into_iter()
            .map(|fd| Entry {
                cookie: fd as u64 + 2,
                name: format!("{fd}"),
                inode: self.link(fd),
            })
            .collect()
    }

    fn lookup(&self, _dir: &Arc<dyn Inode>, name: &str) -> EResult<Arc<dyn Inode>> {
        let fd: i32 = parse_number(name).ok_or(Errno::ENOENT)?;
        resources(self.pid)?
            .files
            .lock()
            .get(fd)
            .map_err(|_| Errno::ENOENT)?;
        Ok(self.link(fd))
    }
}
