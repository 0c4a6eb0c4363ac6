//! File system calls: thin wrappers that validate arguments and call the VFS (`crate::fs`).
//!
//! Paths are copied in once (`PATH_MAX`, `ENAMETOOLONG`), `dirfd` arguments become `At`, flags
//! are checked against the bits Linux defines, and the process's root, working directory and
//! credentials are cloned out of the process before the VFS runs, so no process lock is held
//! across file system work (which may block, e.g. a pipe).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Call;
use crate::errno::{EResult, Errno};
use crate::fs::{
    self, At, Credentials, FileType, Follow, FsContext, Location, OpenFile, OpenFlags, Whence,
};
use crate::mm::fallible::try_vec_zeroed;
use crate::mm::user::{Read, UserSlice, Write};
use crate::task;

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
const AT_EACCESS: u64 = 0x200;
/// Largest single transfer, as Linux's MAX_RW_COUNT (rounded).
const MAX_RW: usize = 0x7fff_f000;

fn fd_arg(value: u64) -> EResult<i32> {
    i32::try_from(value as i64).map_err(|_| Errno::EBADF)
}

fn path_arg(address: u64) -> EResult<String> {
    if address == 0 {
        return Err(Errno::EFAULT);
    }
    task::with_current(|p| p.space.lock().read_c_string(address, fs::path::PATH_MAX))?
}

/// The caller's file system view, cloned out of the process.
fn context() -> EResult<(FsContext, Credentials)> {
    task::with_current(|p| (p.fs.lock().clone(), p.identity.credentials()))
}

pub fn file(fd: i32) -> EResult<Arc<OpenFile>> {
    task::with_current(|p| p.files.lock().get(fd))?
}

/// Where a `*at` call starts: the working directory or an open directory.
fn at_location(dirfd: u64) -> EResult<Option<Location>> {
    let dirfd = dirfd as i32;
    if dirfd == AT_FDCWD {
        return Ok(None);
    }
    Ok(Some(file(dirfd)?.location().clone()))
}

fn at(location: &Option<Location>) -> At<'_> {
    match location {
        Some(location) => At::Dir(location),
        None => At::Cwd,
    }
}

fn copy_out(address: u64, bytes: &[u8]) -> EResult<()> {
    let target = UserSlice::<Write>::new(address, bytes.len())?;
    task::with_current(|p| p.space.lock().write(target, bytes))?
}

fn copy_in(address: u64, len: usize) -> EResult<Vec<u8>> {
    let mut bytes = try_vec_zeroed(len)?;
    let source = UserSlice::<Read>::new(address, len)?;
    task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
    Ok(bytes)
}

/// A kernel buffer for a read of at most `len` bytes into user memory at `address`: as long as
/// the part of the destination the user could write (so a read never consumes data it cannot
/// hand over: a pipe keeps it, a directory stays positioned before it); `EFAULT` if none of it
/// is writable.
fn read_buffer(address: u64, len: usize) -> EResult<Vec<u8>> {
    UserSlice::<Write>::new(address, len)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let writable = task::with_current(|p| p.space.lock().writable_prefix(address, len))?;
    if writable == 0 {
        return Err(Errno::EFAULT);
    }
    try_vec_zeroed(writable)
}

/// Largest piece of a write copied into the kernel at a time.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes `len` bytes of user memory from `address` through `write` (given the bytes and
/// their position in the whole), in pieces of at most `WRITE_CHUNK`: however large the write,
/// the kernel never holds more than one piece (Linux copies page by page). Stops at a short
/// write; an error after some bytes went through returns their count, as Linux does.
fn write_in_chunks(
    address: u64,
    len: usize,
    mut write: impl FnMut(&[u8], usize) -> EResult<usize>,
) -> EResult<usize> {
    if len == 0 {
        return write(&[], 0); // still checked: a descriptor not open for writing is `EBADF`
    }
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(WRITE_CHUNK);
        let result = copy_in(address + done as u64, piece).and_then(|data| write(&data, done));
        match result {
            Ok(written) => {
                done += written;
                if written < piece {
                    break;
                }
            }
            Err(error) if done == 0 => return Err(error),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Gives `file` a descriptor. If there is none (`EMFILE`), `file` is dropped here, after the
/// scheduler's lock is released: the last reference to a pipe end wakes its other side.
fn install(file: Arc<OpenFile>, close_on_exec: bool) -> EResult<u64> {
    let fd = task::with_current(|p| p.files.lock().insert(&file, close_on_exec))??;
    Ok(fd as u64)
}

const OPEN_FLAGS_KNOWN: u32 = 0o37_777_703;

fn open_common(dirfd: u64, path: u64, flags: u64, mode: u64) -> EResult<u64> {
    let raw = u32::try_from(flags).map_err(|_| Errno::EINVAL)?;
    if raw & !OPEN_FLAGS_KNOWN != 0 {
        return Err(Errno::EINVAL);
    }
    let flags = OpenFlags::from_bits_retain(raw);
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    let file = fs::vfs::open(
        &ctx,
        &creds,
        at(&start),
        &path,
        flags,
        (mode & 0o7777) as u32,
    )?;
    install(file, flags.contains(OpenFlags::CLOEXEC))
}

pub fn open(call: &mut Call<'_>) -> EResult<u64> {
    let [path, flags, mode, ..] = call.args.0;
    open_common(AT_FDCWD as u64, path, flags, mode)
}

pub fn openat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, flags, mode, ..] = call.args.0;
    open_common(dirfd, path, flags, mode)
}

pub fn creat(call: &mut Call<'_>) -> EResult<u64> {
    let [path, mode, ..] = call.args.0;
    let flags = OpenFlags::CREAT | OpenFlags::WRONLY | OpenFlags::TRUNC;
    open_common(AT_FDCWD as u64, path, u64::from(flags.bits()), mode)
}

pub fn close(call: &mut Call<'_>) -> EResult<u64> {
    let fd = fd_arg(call.args.0[0])?;
    let closed = task::with_current(|p| p.files.lock().close(fd))??;
    drop(closed); // outside the table's lock: a pipe end's release wakes the other side
    Ok(0)
}

pub fn read(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, count, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let len = (count as usize).min(MAX_RW).min(1 << 20);
    let mut data = read_buffer(buffer, len)?;
    let n = file.read(&mut data)?;
    copy_out(buffer, &data[..n])?;
    Ok(n as u64)
}

pub fn write(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, count, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    UserSlice::<Read>::new(buffer, (count as usize).min(MAX_RW))?;
    let written = write_in_chunks(buffer, (count as usize).min(MAX_RW), |data, _| {
        file.write(data)
    })?;
    Ok(written as u64)
}

fn iovecs(address: u64, count: u64) -> EResult<Vec<(u64, usize)>> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let raw = copy_in(address, count as usize * 16)?;
    let mut vectors = crate::mm::fallible::try_vec_with_capacity(count as usize)?;
    for entry in raw.chunks_exact(16) {
        let (base, len) = entry.split_at(8);
        let base = u64::from_le_bytes(base.try_into().map_err(|_| Errno::EFAULT)?);
        let len = u64::from_le_bytes(len.try_into().map_err(|_| Errno::EFAULT)?);
        let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?.min(MAX_RW);
        vectors.push((base, len));
    }
    Ok(vectors)
}

pub fn readv(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, vector, count, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let mut total = 0u64;
    for (base, len) in iovecs(vector, count)? {
        if len == 0 {
            continue;
        }
        let wanted = len.min(1 << 20);
        let read = read_buffer(base, wanted).and_then(|mut data| {
            let n = file.read(&mut data)?;
            copy_out(base, &data[..n])?;
            Ok(n)
        });
        let n = match read {
            Ok(n) => n,
            Err(error) if total == 0 => return Err(error),
            Err(_) => break,
        };
        total += n as u64;
        if n < wanted {
            break;
        }
    }
    Ok(total)
}

pub fn writev(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, vector, count, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let mut total = 0u64;
    for (base, len) in iovecs(vector, count)? {
        if len == 0 {
            continue;
        }
        let written = match write_in_chunks(base, len, |data, _| file.write(data)) {
            Ok(written) => written,
            Err(error) if total == 0 => return Err(error),
            Err(_) => break,
        };
        total += written as u64;
        if written < len {
            break;
        }
    }
    Ok(total)
}

pub fn pread64(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, count, offset, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut data = read_buffer(buffer, (count as usize).min(1 << 20))?;
    let n = file.pread(&mut data, offset)?;
    copy_out(buffer, &data[..n])?;
    Ok(n as u64)
}

pub fn pwrite64(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, count, offset, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    if (offset as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let len = (count as usize).min(MAX_RW);
    UserSlice::<Read>::new(buffer, len)?;
    let written = write_in_chunks(buffer, len, |data, at| {
        file.pwrite(data, offset + at as u64)
    })?;
    Ok(written as u64)
}

pub fn lseek(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, offset, whence, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let whence = Whence::from_raw(u32::try_from(whence).map_err(|_| Errno::EINVAL)?)?;
    file.seek(offset as i64, whence)
}

pub fn getdents64(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, count, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let wanted = (count as usize).min(64 * 1024);
    let mut data = read_buffer(buffer, wanted)?;
    // Entries that would not fit in the writable part are left for the next call; if not
    // even one does, that is the bad buffer's fault, not its size's.
    let n = match file.getdents64(&mut data) {
        Err(Errno::EINVAL) if data.len() < wanted => return Err(Errno::EFAULT),
        other => other?,
    };
    copy_out(buffer, &data[..n])?;
    Ok(n as u64)
}

fn stat_path(dirfd: u64, path: u64, flags: u64) -> EResult<fs::Metadata> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800/* NO_AUTOMOUNT */) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return Ok(file(dirfd as i32)?.metadata());
    }
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    let follow = if flags & AT_SYMLINK_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    fs::vfs::stat(&ctx, &creds, at(&start), &path, follow)
}

pub fn stat(call: &mut Call<'_>) -> EResult<u64> {
    let [path, buffer, ..] = call.args.0;
    let meta = stat_path(AT_FDCWD as u64, path, 0)?;
    copy_out(buffer, &fs::abi::encode_stat(&meta))?;
    Ok(0)
}

pub fn lstat(call: &mut Call<'_>) -> EResult<u64> {
    let [path, buffer, ..] = call.args.0;
    let meta = stat_path(AT_FDCWD as u64, path, AT_SYMLINK_NOFOLLOW)?;
    copy_out(buffer, &fs::abi::encode_stat(&meta))?;
    Ok(0)
}

pub fn fstat(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, buffer, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    copy_out(buffer, &file.stat())?;
    Ok(0)
}

pub fn newfstatat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, buffer, flags, ..] = call.args.0;
    let meta = stat_path(dirfd, path, flags)?;
    copy_out(buffer, &fs::abi::encode_stat(&meta))?;
    Ok(0)
}

pub fn statx(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, flags, _mask, buffer, ..] = call.args.0;
    let path_text = path_arg(path)?;
    let location = if path_text.is_empty() && flags & AT_EMPTY_PATH != 0 {
        file(dirfd as i32)?.location().clone()
    } else {
        let start = at_location(dirfd)?;
        let (ctx, creds) = context()?;
        let follow = if flags & AT_SYMLINK_NOFOLLOW != 0 {
            Follow::No
        } else {
            Follow::Yes
        };
        fs::vfs::resolve(&ctx, &creds, at(&start), &path_text, follow)?
    };
    copy_out(buffer, &fs::abi::statx_of(&location))?;
    Ok(0)
}

pub fn dup(call: &mut Call<'_>) -> EResult<u64> {
    let fd = fd_arg(call.args.0[0])?;
    Ok(task::with_current(|p| p.files.lock().dup(fd))?? as u64)
}

pub fn dup2(call: &mut Call<'_>) -> EResult<u64> {
    let [old, new, ..] = call.args.0;
    let (old, new) = (fd_arg(old)?, fd_arg(new)?);
    let replaced = task::with_current(|p| p.files.lock().dup2(old, new))??;
    drop(replaced);
    Ok(new as u64)
}

pub fn dup3(call: &mut Call<'_>) -> EResult<u64> {
    let [old, new, flags, ..] = call.args.0;
    let (old, new) = (fd_arg(old)?, fd_arg(new)?);
    let cloexec = OpenFlags::CLOEXEC.bits() as u64;
    if flags & !cloexec != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    let replaced = task::with_current(|p| p.files.lock().dup3(old, new, flags & cloexec != 0))??;
    drop(replaced);
    Ok(new as u64)
}

const F_DUPFD: u64 = 0;
const F_GETFD: u64 = 1;
const F_SETFD: u64 = 2;
const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const F_DUPFD_CLOEXEC: u64 = 1030;
const FD_CLOEXEC: u64 = 1;

pub fn fcntl(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, command, argument, ..] = call.args.0;
    let fd = fd_arg(fd)?;
    match command {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let minimum = i32::try_from(argument).map_err(|_| Errno::EINVAL)?;
            let file = file(fd)?;
            let new = task::with_current(|p| {
                p.files
                    .lock()
                    .insert_from(minimum, &file, command == F_DUPFD_CLOEXEC)
            })??;
            Ok(new as u64)
        }
        F_GETFD => Ok(u64::from(task::with_current(|p| {
            p.files.lock().close_on_exec(fd)
        })??)),
        F_SETFD => {
            task::with_current(|p| {
                p.files
                    .lock()
                    .set_close_on_exec(fd, argument & FD_CLOEXEC != 0)
            })??;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(file(fd)?.flags().bits())),
        F_SETFL => {
            let flags =
                OpenFlags::from_bits_retain(u32::try_from(argument).map_err(|_| Errno::EINVAL)?);
            file(fd)?.set_status_flags(flags);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Terminal ioctls reach the TTY with user memory copied; others go to the file.
pub fn ioctl(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, request, argument, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    let meta = file.metadata();
    if meta.file_type == FileType::CharDevice
        && crate::tty::is_terminal(meta.rdev.major, meta.rdev.minor)
    {
        let size = crate::tty::argument_size(request);
        let input = if size > 0 {
            copy_in(argument, size)?
        } else {
            Vec::new()
        };
        return match crate::tty::ioctl(request, argument, &input, file.is_readable())? {
            crate::tty::IoctlData::None => Ok(0),
            crate::tty::IoctlData::Out(bytes) => {
                copy_out(argument, &bytes)?;
                Ok(0)
            }
        };
    }
    if meta.file_type != FileType::CharDevice {
        return Err(Errno::ENOTTY);
    }
    file.ioctl(u32::try_from(request).map_err(|_| Errno::EINVAL)?, argument)
}

pub fn pipe2(call: &mut Call<'_>) -> EResult<u64> {
    let [fds, flags, ..] = call.args.0;
    let known = OpenFlags::CLOEXEC | OpenFlags::NONBLOCK | OpenFlags::DIRECT;
    let flags = OpenFlags::from_bits_retain(u32::try_from(flags).map_err(|_| Errno::EINVAL)?);
    if !known.contains(flags) {
        return Err(Errno::EINVAL);
    }
    UserSlice::<Write>::new(fds, 8)?;
    let (read_end, write_end) = crate::ipc::pipe::new(flags)?;
    let cloexec = flags.contains(OpenFlags::CLOEXEC);
    let read_fd = install(read_end, cloexec)? as i32;
    let write_fd = match install(write_end, cloexec) {
        Ok(fd) => fd as i32,
        Err(error) => {
            let _ = task::with_current(|p| p.files.lock().close(read_fd));
            return Err(error);
        }
    };
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&read_fd.to_le_bytes());
    bytes[4..].copy_from_slice(&write_fd.to_le_bytes());
    if let Err(error) = copy_out(fds, &bytes) {
        // Linux copies the pair out before installing the descriptors: a bad array leaves
        // none behind. The ends are dropped here, outside the scheduler's lock (closing a
        // pipe end wakes its other side).
        let _ends = task::with_current(|p| {
            let mut files = p.files.lock();
            (files.close(read_fd), files.close(write_fd))
        });
        return Err(error);
    }
    Ok(0)
}

pub fn pipe(call: &mut Call<'_>) -> EResult<u64> {
    call.args.0[1] = 0;
    pipe2(call)
}

pub fn getcwd(call: &mut Call<'_>) -> EResult<u64> {
    let [buffer, size, ..] = call.args.0;
    let (ctx, _) = context()?;
    let mut path = fs::vfs::getcwd(&ctx)?.into_bytes();
    path.push(0);
    if path.len() > size as usize {
        return Err(Errno::ERANGE);
    }
    copy_out(buffer, &path)?;
    Ok(path.len() as u64)
}

fn change_directory(location: Location) -> EResult<u64> {
    let creds = context()?.1;
    let fs = task::with_current(|p| Arc::clone(&p.fs))?;
    let mut guard = fs.lock();
    fs::vfs::chdir(&mut guard, &creds, location)?;
    Ok(0)
}

pub fn chdir(call: &mut Call<'_>) -> EResult<u64> {
    let path = path_arg(call.args.0[0])?;
    let (ctx, creds) = context()?;
    let location = fs::vfs::resolve(&ctx, &creds, At::Cwd, &path, Follow::Yes)?;
    change_directory(location)
}

pub fn fchdir(call: &mut Call<'_>) -> EResult<u64> {
    let location = file(fd_arg(call.args.0[0])?)?.location().clone();
    change_directory(location)
}

pub fn umask(call: &mut Call<'_>) -> EResult<u64> {
    let mask = (call.args.0[0] & 0o777) as u32;
    task::with_current(|p| {
        let mut fs = p.fs.lock();
        let old = fs.umask;
        fs.umask = mask;
        u64::from(old)
    })
}

fn mkdir_common(dirfd: u64, path: u64, mode: u64) -> EResult<u64> {
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    fs::vfs::mkdir(&ctx, &creds, at(&start), &path, (mode & 0o7777) as u32)?;
    Ok(0)
}

/// `mknod`/`mknodat`: regular files, FIFOs and sockets for anyone who may create in the
/// directory, device nodes for root only (`vfs::mknod` holds the rules).
fn mknod_common(dirfd: u64, path: u64, mode: u64, device: u64) -> EResult<u64> {
    let mode = u32::try_from(mode).map_err(|_| Errno::EINVAL)?;
    let device = fs::DeviceId::decode(u32::try_from(device).map_err(|_| Errno::EINVAL)?);
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    fs::vfs::mknod(&ctx, &creds, at(&start), &path, mode, device)?;
    Ok(0)
}

pub fn mknod(call: &mut Call<'_>) -> EResult<u64> {
    let [path, mode, device, ..] = call.args.0;
    mknod_common(AT_FDCWD as u64, path, mode, device)
}

pub fn mknodat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, mode, device, ..] = call.args.0;
    mknod_common(dirfd, path, mode, device)
}

pub fn mkdir(call: &mut Call<'_>) -> EResult<u64> {
    let [path, mode, ..] = call.args.0;
    mkdir_common(AT_FDCWD as u64, path, mode)
}

pub fn mkdirat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, mode, ..] = call.args.0;
    mkdir_common(dirfd, path, mode)
}

fn unlink_common(dirfd: u64, path: u64, flags: u64) -> EResult<u64> {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    if flags & AT_REMOVEDIR != 0 {
        fs::vfs::rmdir(&ctx, &creds, at(&start), &path)?;
    } else {
        fs::vfs::unlink(&ctx, &creds, at(&start), &path)?;
    }
    Ok(0)
}

pub fn unlink(call: &mut Call<'_>) -> EResult<u64> {
    unlink_common(AT_FDCWD as u64, call.args.0[0], 0)
}

pub fn rmdir(call: &mut Call<'_>) -> EResult<u64> {
    unlink_common(AT_FDCWD as u64, call.args.0[0], AT_REMOVEDIR)
}

pub fn unlinkat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, flags, ..] = call.args.0;
    unlink_common(dirfd, path, flags)
}

fn rename_common(olddir: u64, old: u64, newdir: u64, new: u64, flags: u64) -> EResult<u64> {
    let flags = fs::RenameFlags::from_bits(u32::try_from(flags).map_err(|_| Errno::EINVAL)?)
        .ok_or(Errno::EINVAL)?;
    let (old, new) = (path_arg(old)?, path_arg(new)?);
    let (old_start, new_start) = (at_location(olddir)?, at_location(newdir)?);
    let (ctx, creds) = context()?;
    fs::vfs::rename(
        &ctx,
        &creds,
        at(&old_start),
        &old,
        at(&new_start),
        &new,
        flags,
    )?;
    Ok(0)
}

pub fn rename(call: &mut Call<'_>) -> EResult<u64> {
    let [old, new, ..] = call.args.0;
    rename_common(AT_FDCWD as u64, old, AT_FDCWD as u64, new, 0)
}

pub fn renameat(call: &mut Call<'_>) -> EResult<u64> {
    let [olddir, old, newdir, new, ..] = call.args.0;
    rename_common(olddir, old, newdir, new, 0)
}

pub fn renameat2(call: &mut Call<'_>) -> EResult<u64> {
    let [olddir, old, newdir, new, flags, ..] = call.args.0;
    rename_common(olddir, old, newdir, new, flags)
}

fn link_common(olddir: u64, old: u64, newdir: u64, new: u64, flags: u64) -> EResult<u64> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let (old, new) = (path_arg(old)?, path_arg(new)?);
    let (old_start, new_start) = (at_location(olddir)?, at_location(newdir)?);
    let (ctx, creds) = context()?;
    let follow = if flags & AT_SYMLINK_FOLLOW != 0 {
        Follow::Yes
    } else {
        Follow::No
    };
    fs::vfs::link(
        &ctx,
        &creds,
        at(&old_start),
        &old,
        at(&new_start),
        &new,
        follow,
    )?;
    Ok(0)
}

pub fn link(call: &mut Call<'_>) -> EResult<u64> {
    let [old, new, ..] = call.args.0;
    link_common(AT_FDCWD as u64, old, AT_FDCWD as u64, new, 0)
}

pub fn linkat(call: &mut Call<'_>) -> EResult<u64> {
    let [olddir, old, newdir, new, flags, ..] = call.args.0;
    link_common(olddir, old, newdir, new, flags)
}

fn symlink_common(target: u64, dirfd: u64, path: u64) -> EResult<u64> {
    let (target, path) = (path_arg(target)?, path_arg(path)?);
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    fs::vfs::symlink(&ctx, &creds, &target, at(&start), &path)?;
    Ok(0)
}

pub fn symlink(call: &mut Call<'_>) -> EResult<u64> {
    let [target, path, ..] = call.args.0;
    symlink_common(target, AT_FDCWD as u64, path)
}

pub fn symlinkat(call: &mut Call<'_>) -> EResult<u64> {
    let [target, dirfd, path, ..] = call.args.0;
    symlink_common(target, dirfd, path)
}

fn readlink_common(dirfd: u64, path: u64, buffer: u64, size: u64) -> EResult<u64> {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    let target = fs::vfs::readlink(&ctx, &creds, at(&start), &path)?;
    let bytes = target.as_bytes();
    let n = bytes.len().min(size as usize);
    copy_out(buffer, &bytes[..n])?;
    Ok(n as u64)
}

pub fn readlink(call: &mut Call<'_>) -> EResult<u64> {
    let [path, buffer, size, ..] = call.args.0;
    readlink_common(AT_FDCWD as u64, path, buffer, size)
}

pub fn readlinkat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, buffer, size, ..] = call.args.0;
    readlink_common(dirfd, path, buffer, size)
}

fn access_common(dirfd: u64, path: u64, mode: u64, flags: u64) -> EResult<u64> {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let start = at_location(dirfd)?;
    let (ctx, creds) = context()?;
    let follow = if flags & AT_SYMLINK_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    let location = fs::vfs::resolve(&ctx, &creds, at(&start), &path, follow)?;
    let wanted = fs::Access::from_bits_truncate(mode as u32);
    fs::vfs::access(&creds, &location, wanted)?;
    Ok(0)
}

pub fn access(call: &mut Call<'_>) -> EResult<u64> {
    let [path, mode, ..] = call.args.0;
    access_common(AT_FDCWD as u64, path, mode, 0)
}

pub fn faccessat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, mode, ..] = call.args.0;
    access_common(dirfd, path, mode, 0)
}

pub fn faccessat2(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, mode, flags, ..] = call.args.0;
    access_common(dirfd, path, mode, flags)
}

fn location_of(dirfd: u64, path: u64, flags: u64) -> EResult<(Location, Credentials)> {
    let path = path_arg(path)?;
    let (ctx, creds) = context()?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return Ok((file(dirfd as i32)?.location().clone(), creds));
    }
    let start = at_location(dirfd)?;
    let follow = if flags & AT_SYMLINK_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    Ok((
        fs::vfs::resolve(&ctx, &creds, at(&start), &path, follow)?,
        creds,
    ))
}

pub fn chmod(call: &mut Call<'_>) -> EResult<u64> {
    let [path, mode, ..] = call.args.0;
    let (location, creds) = location_of(AT_FDCWD as u64, path, 0)?;
    fs::vfs::chmod(&creds, &location, (mode & 0o7777) as u32)?;
    Ok(0)
}

pub fn fchmod(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, mode, ..] = call.args.0;
    let location = file(fd_arg(fd)?)?.location().clone();
    fs::vfs::chmod(&context()?.1, &location, (mode & 0o7777) as u32)?;
    Ok(0)
}

pub fn fchmodat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, mode, ..] = call.args.0;
    let (location, creds) = location_of(dirfd, path, 0)?;
    fs::vfs::chmod(&creds, &location, (mode & 0o7777) as u32)?;
    Ok(0)
}

fn id_arg(value: u64) -> Option<u32> {
    let value = value as u32;
    (value != u32::MAX).then_some(value)
}

pub fn fchownat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, uid, gid, flags, ..] = call.args.0;
    let (location, creds) = location_of(dirfd, path, flags)?;
    fs::vfs::chown(&creds, &location, id_arg(uid), id_arg(gid))?;
    Ok(0)
}

pub fn chown(call: &mut Call<'_>) -> EResult<u64> {
    let [path, uid, gid, ..] = call.args.0;
    let (location, creds) = location_of(AT_FDCWD as u64, path, 0)?;
    fs::vfs::chown(&creds, &location, id_arg(uid), id_arg(gid))?;
    Ok(0)
}

pub fn lchown(call: &mut Call<'_>) -> EResult<u64> {
    let [path, uid, gid, ..] = call.args.0;
    let (location, creds) = location_of(AT_FDCWD as u64, path, AT_SYMLINK_NOFOLLOW)?;
    fs::vfs::chown(&creds, &location, id_arg(uid), id_arg(gid))?;
    Ok(0)
}

pub fn fchown(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, uid, gid, ..] = call.args.0;
    let location = file(fd_arg(fd)?)?.location().clone();
    fs::vfs::chown(&context()?.1, &location, id_arg(uid), id_arg(gid))?;
    Ok(0)
}

/// `utimensat`'s special `tv_nsec` values.
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// One `struct timespec` of `utimensat`, validated as Linux's `nsec_valid` (after the path is
/// resolved, as Linux does: a missing file is `ENOENT` whatever the times).
fn time_change((sec, nsec): (i64, i64)) -> EResult<fs::vfs::TimeChange> {
    use fs::vfs::TimeChange;
    match nsec {
        UTIME_NOW => Ok(TimeChange::Now),
        UTIME_OMIT => Ok(TimeChange::Omit),
        0..1_000_000_000 => Ok(TimeChange::Set(fs::metadata::Timespec::new(
            sec,
            nsec as u32,
        ))),
        _ => Err(Errno::EINVAL),
    }
}

/// `do_utimes`: a null `path` with a real `dirfd` is `futimens` on that file (no flags
/// allowed, `O_PATH` files are `EBADF`); otherwise `path` is resolved from `dirfd` as `*at`
/// calls do. `times` is `None` for "now" for both.
fn set_times(dirfd: u64, path: u64, times: Option<[(i64, i64); 2]>, flags: u64) -> EResult<u64> {
    let (location, creds) = if path == 0 && dirfd as i32 != AT_FDCWD {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let file = file(fd_arg(dirfd)?)?;
        if file.is_path_only() {
            return Err(Errno::EBADF);
        }
        (file.location().clone(), context()?.1)
    } else {
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL);
        }
        location_of(dirfd, path, flags)?
    };
    let (atime, mtime) = match times {
        Some([atime, mtime]) => (time_change(atime)?, time_change(mtime)?),
        None => (fs::vfs::TimeChange::Now, fs::vfs::TimeChange::Now),
    };
    fs::vfs::utimens(&creds, &location, atime, mtime)?;
    Ok(0)
}

pub fn utimensat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, times, flags, ..] = call.args.0;
    let times = match times {
        0 => None,
        address => Some(super::time_arg::raw_pairs::<2>(address)?),
    };
    // Both UTIME_OMIT: nothing to do, and Linux does not even look at the path.
    if let Some([(_, UTIME_OMIT), (_, UTIME_OMIT)]) = times {
        return Ok(0);
    }
    set_times(dirfd, path, times, flags)
}

/// `futimesat`/`utimes`: `struct timeval` pairs, microseconds checked before the path.
fn set_times_timeval(dirfd: u64, path: u64, times: u64) -> EResult<u64> {
    let times = match times {
        0 => None,
        address => {
            let pairs = super::time_arg::raw_pairs::<2>(address)?;
            if pairs
                .iter()
                .any(|&(_, usec)| !(0..1_000_000).contains(&usec))
            {
                return Err(Errno::EINVAL);
            }
            Some(pairs.map(|(sec, usec)| (sec, usec * 1_000)))
        }
    };
    set_times(dirfd, path, times, 0)
}

pub fn futimesat(call: &mut Call<'_>) -> EResult<u64> {
    let [dirfd, path, times, ..] = call.args.0;
    set_times_timeval(dirfd, path, times)
}

pub fn utimes(call: &mut Call<'_>) -> EResult<u64> {
    let [path, times, ..] = call.args.0;
    set_times_timeval(AT_FDCWD as u64, path, times)
}

/// `utime`: a `struct utimbuf` (whole seconds for access and modification).
pub fn utime(call: &mut Call<'_>) -> EResult<u64> {
    let [path, times, ..] = call.args.0;
    let times = match times {
        0 => None,
        address => {
            let [(atime, mtime)] = super::time_arg::raw_pairs::<1>(address)?;
            Some([(atime, 0), (mtime, 0)])
        }
    };
    set_times(AT_FDCWD as u64, path, times, 0)
}

pub fn truncate(call: &mut Call<'_>) -> EResult<u64> {
    let [path, length, ..] = call.args.0;
    let (location, creds) = location_of(AT_FDCWD as u64, path, 0)?;
    fs::vfs::truncate(&creds, &location, length as i64)?;
    Ok(0)
}

pub fn ftruncate(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, length, ..] = call.args.0;
    file(fd_arg(fd)?)?.truncate(length as i64)?;
    Ok(0)
}

/// `mount(2)` flags (`MS_*`) this kernel handles; the per-mount ones become `MountFlags`.
const MS_RDONLY: u64 = 1;
const MS_NOSUID: u64 = 2;
const MS_NODEV: u64 = 4;
const MS_NOEXEC: u64 = 8;
/// Accepted and meaningless without a disk or access-time tracking: `MS_SYNCHRONOUS`,
/// `MS_MANDLOCK`, `MS_DIRSYNC`, `MS_NOATIME`, `MS_NODIRATIME`, `MS_SILENT`, `MS_RELATIME`,
/// `MS_STRICTATIME`, `MS_LAZYTIME`.
const MS_HARMLESS: u64 = 16 | 64 | 128 | 1024 | 2048 | 32768 | (1 << 21) | (1 << 24) | (1 << 25);
/// What mount(8) used to put in the top 16 bits; ignored, as Linux does.
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;
/// Options strings are at most a page, as in Linux.
const MOUNT_DATA_MAX: usize = 4096;

/// A string argument of `mount(2)` that may be NULL.
fn optional_string(address: u64, max: usize) -> EResult<Option<String>> {
    if address == 0 {
        return Ok(None);
    }
    task::with_current(|p| p.space.lock().read_c_string(address, max))?.map(Some)
}

/// `mount(source, target, type, flags, data)`: a new instance of `type` on the directory
/// `target`. Remounting, bind and move mounts and propagation changes are `EINVAL` (not
/// supported yet).
pub fn mount(call: &mut Call<'_>) -> EResult<u64> {
    let [source, target, type_name, flags, data, ..] = call.args.0;
    let mut flags = flags;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    if flags & !(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_HARMLESS) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut mount_flags = fs::MountFlags::empty();
    for (bit, flag) in [
        (MS_RDONLY, fs::MountFlags::RDONLY),
        (MS_NOSUID, fs::MountFlags::NOSUID),
        (MS_NODEV, fs::MountFlags::NODEV),
        (MS_NOEXEC, fs::MountFlags::NOEXEC),
    ] {
        if flags & bit != 0 {
            mount_flags |= flag;
        }
    }
    let target = path_arg(target)?;
    let type_name = optional_string(type_name, MOUNT_DATA_MAX)?.ok_or(Errno::EFAULT)?;
    let source = optional_string(source, fs::path::PATH_MAX)?.unwrap_or_else(|| "none".into());
    let options = optional_string(data, MOUNT_DATA_MAX)?.unwrap_or_default();
    let (ctx, creds) = context()?;
    if !creds.is_root() {
        return Err(Errno::EPERM);
    }
    let location = fs::vfs::resolve(&ctx, &creds, At::Cwd, &target, Follow::Yes)?;
    let filesystem = fs::vfs::new_filesystem(&type_name, &options)?;
    fs::vfs::mount(&creds, &location, filesystem, &source, mount_flags)?;
    Ok(0)
}

const MNT_FORCE: u64 = 1;
const MNT_DETACH: u64 = 2;
const MNT_EXPIRE: u64 = 4;
const UMOUNT_NOFOLLOW: u64 = 8;

/// `umount2(target, flags)`: `MNT_DETACH` detaches lazily; `MNT_FORCE` means nothing without
/// network file systems; `MNT_EXPIRE` is not supported (`EINVAL`, as with `MNT_FORCE` on it).
pub fn umount2(call: &mut Call<'_>) -> EResult<u64> {
    let [target, flags, ..] = call.args.0;
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0
        || flags & MNT_EXPIRE != 0
    {
        return Err(Errno::EINVAL);
    }
    let target = path_arg(target)?;
    let (ctx, creds) = context()?;
    let follow = if flags & UMOUNT_NOFOLLOW != 0 {
        Follow::No
    } else {
        Follow::Yes
    };
    let location = fs::vfs::resolve(&ctx, &creds, At::Cwd, &target, follow)?;
    fs::vfs::umount(&creds, location, flags & MNT_DETACH != 0)?;
    Ok(0)
}

/// `sendfile(out_fd, in_fd, offset, count)`: copies from a regular file (`EINVAL` for anything
/// else, so callers such as busybox `cat` fall back to read/write, as on Linux) to any file
/// open for writing. With `offset` the input is read from `*offset`, which is updated, and the
/// file offset is left alone.
pub fn sendfile(call: &mut Call<'_>) -> EResult<u64> {
    const CHUNK: usize = 64 * 1024;
    let [out_fd, in_fd, offset_at, count, ..] = call.args.0;
    let input = file(fd_arg(in_fd)?)?;
    let output = file(fd_arg(out_fd)?)?;
    if !input.is_readable() || !output.is_writable() {
        return Err(Errno::EBADF);
    }
    if input.location().file_type() != FileType::Regular
        || output.flags().contains(OpenFlags::APPEND)
    {
        return Err(Errno::EINVAL);
    }
    let start = match offset_at {
        0 => None,
        at => {
            let bytes: [u8; 8] = copy_in(at, 8)?.try_into().map_err(|_| Errno::EFAULT)?;
            Some(u64::try_from(i64::from_le_bytes(bytes)).map_err(|_| Errno::EINVAL)?)
        }
    };
    let limit = (count as usize).min(MAX_RW);
    let mut buffer = try_vec_zeroed(limit.min(CHUNK))?;
    let mut done = 0usize;
    while done < limit {
        let want = (limit - done).min(CHUNK);
        let read = match start {
            Some(start) => input.pread(&mut buffer[..want], start + done as u64),
            None => input.read(&mut buffer[..want]),
        };
        let read = match read {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if done == 0 => return Err(error),
            Err(_) => break,
        };
        let written = match output.write(&buffer[..read]) {
            Ok(written) => written,
            Err(error) if done == 0 => {
                if start.is_none() {
                    input.seek(-(read as i64), Whence::Current)?;
                }
                return Err(error);
            }
            Err(_) => 0,
        };
        done += written;
        if written < read {
            // Give back what was read and not sent, so the next read starts there.
            if start.is_none() {
                input.seek(-((read - written) as i64), Whence::Current)?;
            }
            break;
        }
    }
    if let Some(start) = start {
        copy_out(offset_at, &(start + done as u64).to_le_bytes())?;
    }
    Ok(done as u64)
}

/// The name of an extended attribute: 1 to 255 bytes (`ERANGE` otherwise), in a namespace
/// Linux knows (`ENOTSUP` otherwise).
fn xattr_name(address: u64) -> EResult<String> {
    let name =
        task::with_current(|p| p.space.lock().read_c_string(address, 255))?.map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::ERANGE
            } else {
                e
            }
        })?;
    if name.is_empty() {
        return Err(Errno::ERANGE);
    }
    let known = ["user.", "trusted.", "security.", "system."];
    if !known.iter().any(|prefix| name.starts_with(prefix)) {
        return Err(Errno::ENOTSUP);
    }
    Ok(name)
}

/// The file an `*xattr` call names: a path (`follow` for the non-`l` forms) or a descriptor.
fn xattr_target(call: &Call<'_>, by_fd: bool, follow: bool) -> EResult<()> {
    let target = call.args.0[0];
    if by_fd {
        file(fd_arg(target)?)?;
    } else {
        let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
        location_of(AT_FDCWD as u64, target, flags)?;
    }
    Ok(())
}

/// `getxattr`, `lgetxattr`, `fgetxattr`: the file systems store no extended attributes, so
/// any attribute of an existing file is `ENODATA` — what Linux's tmpfs answers for one never
/// set (and what `ls -l` and `cp -a` take as "no ACL, no security label").
fn getxattr_common(call: &mut Call<'_>, by_fd: bool, follow: bool) -> EResult<u64> {
    xattr_target(call, by_fd, follow)?;
    xattr_name(call.args.0[1])?;
    Err(Errno::ENODATA)
}

pub fn getxattr(call: &mut Call<'_>) -> EResult<u64> {
    getxattr_common(call, false, true)
}

pub fn lgetxattr(call: &mut Call<'_>) -> EResult<u64> {
    getxattr_common(call, false, false)
}

pub fn fgetxattr(call: &mut Call<'_>) -> EResult<u64> {
    getxattr_common(call, true, true)
}

/// `listxattr`, `llistxattr`, `flistxattr`: an empty list (length 0).
fn listxattr_common(call: &mut Call<'_>, by_fd: bool, follow: bool) -> EResult<u64> {
    xattr_target(call, by_fd, follow)?;
    Ok(0)
}

pub fn listxattr(call: &mut Call<'_>) -> EResult<u64> {
    listxattr_common(call, false, true)
}

pub fn llistxattr(call: &mut Call<'_>) -> EResult<u64> {
    listxattr_common(call, false, false)
}

pub fn flistxattr(call: &mut Call<'_>) -> EResult<u64> {
    listxattr_common(call, true, true)
}

/// `setxattr`, `lsetxattr`, `fsetxattr`: not supported by the file systems (`ENOTSUP`, as
/// Linux's ramfs answers), after the checks on the file and the name.
fn setxattr_common(call: &mut Call<'_>, by_fd: bool, follow: bool) -> EResult<u64> {
    // XATTR_CREATE | XATTR_REPLACE
    if call.args.0[4] & !3 != 0 {
        return Err(Errno::EINVAL);
    }
    xattr_target(call, by_fd, follow)?;
    xattr_name(call.args.0[1])?;
    Err(Errno::ENOTSUP)
}

pub fn setxattr(call: &mut Call<'_>) -> EResult<u64> {
    setxattr_common(call, false, true)
}

pub fn lsetxattr(call: &mut Call<'_>) -> EResult<u64> {
    setxattr_common(call, false, false)
}

pub fn fsetxattr(call: &mut Call<'_>) -> EResult<u64> {
    setxattr_common(call, true, true)
}

/// `removexattr`, `lremovexattr`, `fremovexattr`: there is never one to remove (`ENODATA`).
fn removexattr_common(call: &mut Call<'_>, by_fd: bool, follow: bool) -> EResult<u64> {
    xattr_target(call, by_fd, follow)?;
    xattr_name(call.args.0[1])?;
    Err(Errno::ENODATA)
}

pub fn removexattr(call: &mut Call<'_>) -> EResult<u64> {
    removexattr_common(call, false, true)
}

pub fn lremovexattr(call: &mut Call<'_>) -> EResult<u64> {
    removexattr_common(call, false, false)
}

pub fn fremovexattr(call: &mut Call<'_>) -> EResult<u64> {
    removexattr_common(call, true, true)
}

/// `fadvise64(fd, offset, len, advice)`: every file is in memory, so advice changes nothing;
/// the checks are Linux's (`EBADF`, `ESPIPE` for a pipe, `EINVAL` for unknown advice or a
/// negative length).
pub fn fadvise64(call: &mut Call<'_>) -> EResult<u64> {
    let [fd, _offset, len, advice, ..] = call.args.0;
    let file = file(fd_arg(fd)?)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    if file.metadata().file_type == fs::metadata::FileType::Fifo {
        return Err(Errno::ESPIPE);
    }
    // POSIX_FADV_NORMAL .. POSIX_FADV_NOREUSE
    if advice as i32 as u32 > 5 || (len as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
