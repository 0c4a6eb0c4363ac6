//! The operations system calls are made of: each takes the caller's `FsContext` (root, working
//! directory, umask) and `Credentials`, resolves its paths, applies Linux's checks in Linux's
//! order, and asks the inode to do the work.
//!
//! A system call validates its raw arguments (flags, user pointers, copying the path in) and
//! then calls one function here; `*at` variants pass `At::Dir` with the location of the
//! directory descriptor. Operations on an object that may be named either by path or by
//! descriptor (`chmod`/`fchmod`, `truncate`/`ftruncate`, `stat`/`fstat`, `chdir`/`fchdir`) take a
//! resolved `Location`: resolve with `resolve` for the path form, use `OpenFile::location` for
//! the descriptor form.
//!
//! Error precedence follows fs/namei.c and fs/open.c because programs and test suites depend on
//! it: e.g. `mkdir` of an existing name in a read-only directory is `EEXIST`, not `EACCES`;
//! `unlink` on a read-only mount is `EROFS` before anything is looked up.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;

use super::clock;
use super::credentials::{
    Access, Credentials, check_access, check_chown, check_sticky, write_needs_writable_mount,
};
use super::dev;
use super::file::{OpenFile, OpenFlags};
use super::inode::{FileSystem, NodeKind, Owner, RenameFlags, same_inode};
use super::metadata::{
    AttrChange, DeviceId, FileType, Metadata, PERMISSION_BITS, S_ISGID, S_ISUID, S_ISVTX, S_IXGRP,
    Timespec,
};
use super::mount::{self, Location, MountFlags, cross_mounts};
use super::path::{At, Follow, FsContext, LastKind, PATH_MAX, Walker, path_of};
use super::tmpfs::Tmpfs;
use crate::errno::{EResult, Errno};

/// One timestamp argument of `utimensat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    /// `UTIME_NOW`
    Now,
    /// `UTIME_OMIT`
    Omit,
    Set(Timespec),
}

/// Resolves `path` to a location (`stat`, `chdir`, `chmod`, ... take the result).
pub fn resolve(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    follow: Follow,
) -> EResult<Location> {
    let mut walker = Walker::new(ctx, creds);
    let start = walker.start(at);
    walker.resolve(start, path, follow)
}

/// `stat`/`lstat`/`fstatat`: the metadata of what `path` names (encode it with
/// `abi::encode_stat`; for `statx` use `abi::statx_of(&resolve(..)?)`).
pub fn stat(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    follow: Follow,
) -> EResult<Metadata> {
    Ok(resolve(ctx, creds, at, path, follow)?.metadata())
}

/// `open`/`openat`: `O_CREAT` (with `mode` less the umask), `O_EXCL`, `O_TRUNC`, `O_DIRECTORY`,
/// `O_NOFOLLOW`, `O_PATH`; device nodes open their driver. The caller installs the result in the
/// descriptor table (with `O_CLOEXEC` as the close-on-exec flag).
pub fn open(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    flags: OpenFlags,
    mode: u32,
) -> EResult<Arc<OpenFile>> {
    let file = open_unnamed(ctx, creds, at, path, flags, mode)?;
    // Remembered for `/proc/<pid>/fd` (a directory's path is found from the tree instead).
    if !file.location().is_dir() {
        remember_path(&file, ctx, at, path);
    }
    Ok(file)
}

/// Records the absolute form of the path `file` was opened by (`OpenFile::opened_path`).
fn remember_path(file: &OpenFile, ctx: &FsContext, at: At<'_>, path: &str) {
    let base = match at {
        _ if path.starts_with('/') => Ok(String::from("/")),
        At::Cwd => path_of(&ctx.cwd, &ctx.root),
        At::Dir(dir) => path_of(dir, &ctx.root),
    };
    if let Ok(base) = base {
        file.set_opened_path(super::path::lexical_join(&base, path));
    }
}

fn open_unnamed(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    flags: OpenFlags,
    mode: u32,
) -> EResult<Arc<OpenFile>> {
    if flags.contains(OpenFlags::TMPFILE) {
        return Err(Errno::ENOTSUP);
    }
    let mut walker = Walker::new(ctx, creds);
    let start = walker.start(at);
    let follow = if flags.contains(OpenFlags::NOFOLLOW) {
        Follow::No
    } else {
        Follow::Yes
    };
    if flags.contains(OpenFlags::PATH) {
        let location = walker.resolve(start, path, follow)?;
        if flags.contains(OpenFlags::DIRECTORY) && !location.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        return Ok(OpenFile::new_path_only(location, flags));
    }
    if !flags.contains(OpenFlags::CREAT) {
        let location = walker.resolve(start, path, follow)?;
        if flags.contains(OpenFlags::DIRECTORY) && !location.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        return open_location(creds, location, flags, false);
    }
    if flags.contains(OpenFlags::DIRECTORY) {
        return Err(Errno::EINVAL);
    }
    let (mut parent, mut last) = walker.resolve_parent(start, path)?;
    loop {
        if last.kind != LastKind::Normal || last.trailing_slash {
            return Err(Errno::EISDIR);
        }
        match walker.lookup_optional(&parent, &last.name)? {
            Some(found) if flags.contains(OpenFlags::EXCL) => {
                drop(found);
                return Err(Errno::EEXIST);
            }
            Some(found) if found.file_type() == FileType::Symlink => {
                if follow == Follow::No {
                    return Err(Errno::ELOOP);
                }
                // A magic link (`/dev/stdout` → `/proc/self/fd/1` → a pipe) opens what it
                // lands on; there is no name to create.
                if let Some(landed) = walker.jump_link(&found) {
                    let location = cross_mounts(landed?);
                    if location.is_dir() {
                        return Err(Errno::EISDIR);
                    }
                    return open_location(creds, location, flags, false);
                }
                // Creating through a symlink creates its target (even a dangling one).
                let target = walker.follow_link(&found)?;
                let (next_parent, next_last) = walker.resolve_parent(parent, &target)?;
                (parent, last) = (next_parent, next_last.into_owned());
            }
            Some(found) => {
                let location = cross_mounts(found);
                if location.is_dir() {
                    return Err(Errno::EISDIR);
                }
                return open_location(creds, location, flags, false);
            }
            None => {
                may_create(creds, &parent)?;
                let requested = mode & PERMISSION_BITS & !ctx.umask;
                let (owner, permissions) = new_owner(creds, &parent.metadata(), false, requested);
                let inode =
                    parent
                        .inode
                        .create(&last.name, NodeKind::Regular, permissions, owner)?;
                let location = Location {
                    mount: parent.mount.clone(),
                    inode,
                };
                return open_location(creds, location, flags, true);
            }
        }
    }
}

/// Opens an already resolved location with `open`'s checks (Linux's `may_open`); `created`
/// skips the permission check for a file `open` itself just created.
pub fn open_location(
    creds: &Credentials,
    location: Location,
    flags: OpenFlags,
    created: bool,
) -> EResult<Arc<OpenFile>> {
    let meta = location.metadata();
    let mut truncate = flags.contains(OpenFlags::TRUNC);
    let mut wanted = Access::empty();
    if flags.reads() {
        wanted |= Access::READ;
    }
    if flags.writes() || truncate {
        wanted |= Access::WRITE;
    }
    if flags.bits() & 3 == 3 {
        wanted |= Access::READ | Access::WRITE;
    }
    let nodev = location.mount.flags().contains(MountFlags::NODEV);
    match meta.file_type {
        FileType::Symlink => return Err(Errno::ELOOP),
        FileType::Directory if wanted.contains(Access::WRITE) => return Err(Errno::EISDIR),
        FileType::CharDevice | FileType::BlockDevice if nodev => return Err(Errno::EACCES),
        FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            truncate = false;
        }
        _ => {}
    }
    if wanted.contains(Access::WRITE)
        && write_needs_writable_mount(meta.file_type)
        && location.mount.is_read_only()
        && !created
    {
        return Err(Errno::EROFS);
    }
    if !created {
        check_access(creds, &meta, wanted)?;
    }
    if flags.contains(OpenFlags::NOATIME) && !creds.owns(&meta) {
        return Err(Errno::EPERM);
    }
    match meta.file_type {
        FileType::CharDevice => {
            let device = dev::char_device(meta.rdev).ok_or(Errno::ENXIO)?;
            device.open(meta.rdev.minor, flags)?;
            Ok(OpenFile::new_device(
                location,
                device,
                meta.rdev.minor,
                flags,
            ))
        }
        FileType::Fifo => crate::ipc::pipe::open_fifo(location, flags),
        // No block drivers, and sockets are metadata only for now.
        FileType::BlockDevice | FileType::Socket => Err(Errno::ENXIO),
        FileType::Regular => {
            if let Some(generated) = location.inode.as_generated() {
                generated.may_open()?;
            }
            if truncate && !created {
                location.inode.truncate(0)?;
            }
            Ok(OpenFile::new_inode(location, flags))
        }
        FileType::Directory => Ok(OpenFile::new_inode(location, flags)),
        FileType::Symlink => Err(Errno::ELOOP),
    }
}

/// Opens a program for `execve`: a regular file (`EACCES` otherwise) with execute permission,
/// not on a `noexec` mount. Read permission is not needed; the kernel reads it with
/// `OpenFile::read_all`.
pub fn open_exec(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
) -> EResult<Arc<OpenFile>> {
    let location = resolve(ctx, creds, at, path, Follow::Yes)?;
    let meta = location.metadata();
    if meta.file_type != FileType::Regular {
        return Err(Errno::EACCES);
    }
    if location.mount.flags().contains(MountFlags::NOEXEC) {
        return Err(Errno::EACCES);
    }
    check_access(creds, &meta, Access::EXEC)?;
    let file = OpenFile::new_inode(location, OpenFlags::empty());
    // An interpreter's segments are named by it in `/proc/<pid>/maps`.
    remember_path(&file, ctx, at, path);
    Ok(file)
}

/// Write and search permission in `dir`, on a writable mount (`may_create`).
fn may_create(creds: &Credentials, dir: &Location) -> EResult<()> {
    if dir.mount.is_read_only() {
        return Err(Errno::EROFS);
    }
    check_access(creds, &dir.metadata(), Access::WRITE | Access::EXEC)
}

/// Linux's `may_delete`: write and search permission in `dir`, the sticky rule, the victim's
/// type, and nothing mounted on it.
fn may_delete(
    creds: &Credentials,
    dir: &Location,
    victim: &Location,
    want_dir: bool,
) -> EResult<()> {
    let dir_meta = dir.metadata();
    check_access(creds, &dir_meta, Access::WRITE | Access::EXEC)?;
    check_sticky(creds, &dir_meta, &victim.metadata())?;
    match (want_dir, victim.is_dir()) {
        (true, false) => return Err(Errno::ENOTDIR),
        (false, true) => return Err(Errno::EISDIR),
        _ => {}
    }
    if mount::is_mountpoint(victim) {
        return Err(Errno::EBUSY);
    }
    Ok(())
}

fn writable_mount(location: &Location) -> EResult<()> {
    if location.mount.is_read_only() {
        Err(Errno::EROFS)
    } else {
        Ok(())
    }
}

/// Owner and final permissions of a new inode (`inode_init_owner`): the caller's uid; the
/// parent's group if the parent is set-gid (new directories inherit set-gid too), else the
/// caller's group.
fn new_owner(
    creds: &Credentials,
    parent: &Metadata,
    is_dir: bool,
    permissions: u32,
) -> (Owner, u32) {
    let mut permissions = permissions;
    let gid = if parent.permissions & S_ISGID != 0 {
        if is_dir {
            permissions |= S_ISGID;
        } else if permissions & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP
            && !creds.is_root()
            && !creds.in_group(parent.gid)
        {
            permissions &= !S_ISGID;
        }
        parent.gid
    } else {
        creds.gid
    };
    let owner = Owner {
        uid: creds.uid,
        gid,
    };
    (owner, permissions)
}

/// Resolves the parent of a name to create; `EEXIST` for `.`, `..` and `/`, and for an existing
/// name; `ENOENT` for a trailing slash unless `allow_slash` (only directories may be created
/// with one).
fn prepare_create<'p>(
    walker: &mut Walker<'_>,
    at: At<'_>,
    path: &'p str,
    allow_slash: bool,
) -> EResult<(Location, Cow<'p, str>)> {
    let start = walker.start(at);
    let (parent, last) = walker.resolve_parent(start, path)?;
    if last.kind != LastKind::Normal {
        return Err(Errno::EEXIST);
    }
    if walker.lookup_optional(&parent, &last.name)?.is_some() {
        return Err(Errno::EEXIST);
    }
    if last.trailing_slash && !allow_slash {
        return Err(Errno::ENOENT);
    }
    Ok((parent, last.name))
}

/// `mkdir`/`mkdirat`.
pub fn mkdir(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    mode: u32,
) -> EResult<()> {
    let mut walker = Walker::new(ctx, creds);
    let (parent, name) = prepare_create(&mut walker, at, path, true)?;
    may_create(creds, &parent)?;
    let requested = mode & (0o777 | S_ISVTX) & !ctx.umask;
    let (owner, permissions) = new_owner(creds, &parent.metadata(), true, requested);
    parent
        .inode
        .create(&name, NodeKind::Directory, permissions, owner)?;
    Ok(())
}

/// `mknod`/`mknodat`: `mode` carries the type (0 means a regular file); device nodes need root.
pub fn mknod(
    ctx: &FsContext,
    creds: &Credentials,
    at: At<'_>,
    path: &str,
    mode: u32,
    device: DeviceId,
) -> EResult<()> {
    let kind = match mode & super::metadata::S_IFMT {
        0 => NodeKind::Regular,
        _ => match FileType::from_mode(mode) {
            Some(FileType::Regular) => NodeKind::Regular,
            Some(FileType::CharDevice) => NodeKind::CharDevice(device),
            Some(FileType::BlockDevice) => NodeKind::BlockDevice(device),
            Some(FileType::Fifo) => NodeKind::Fifo,
            Some(FileType::Socket) => NodeKind::Socket,
            Some(FileType::Directory) => return Err(Errno::EPERM),
            Some(FileType::Symlink) | None => return Err(Errno::EINVAL),
        },
    };
    let mut walker = Walker::new(ctx, creds);
    let (parent, name) = prepare_create(&mut walker, at, path, false)?;
    may_create(creds, &parent)?;
    if matches!(kind, NodeKind::CharDevice(_) | NodeKind::BlockDevice(_)) && !creds.is_root() {
        return Err(Errno::EPERM);
    }
    let requested = mode & PERMISSION_BITS & !ctx.umask;
    let (owner, permissions) = new_owner(creds, &parent.metadata(), false, requested);
    parent.inode.create(&name, kind, permissions, owner)?;
    Ok(())
}

/// `symlink`/`symlinkat`: `path` becomes a link to `target` (stored as given, never resolved).
pub fn symlink(
    ctx: &FsContext,
    creds: &Credentials,
    target: &str,
    at: At<'_>,
    path: &str,
) -> EResult<()> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    if target.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let mut walker = Walker::new(ctx, creds);
    let (parent, name) = prepare_create(&mut walker, at, path, false)?;
    may_create(creds, &parent)?;
    let (owner, _) = new_owner(creds, &parent.metadata(), false, 0o777);
    parent
        .inode
        .create(&name, NodeKind::Symlink { target }, 0o777, owner)?;
    Ok(())
}

/// `link`/`linkat`: `new_path` becomes another name for what `old_path` names (`follow` is
/// `AT_SYMLINK_FOLLOW`). Directories cannot be linked (`EPERM`); both must be on the same mount
/// (`EXDEV`); and only a file's owner may link it unless it is a harmless one
/// (`credentials::may_link_to`, Linux's `fs.protected_hardlinks`).
pub fn link(
    ctx: &FsContext,
    creds: &Credentials,
    old_at: At<'_>,
    old_path: &str,
    new_at: At<'_>,
    new_path: &str,
    follow: Follow,
) -> EResult<()> {
    let old = resolve(ctx, creds, old_at, old_path, follow)?;
    link_location(ctx, creds, &old, new_at, new_path)
}

/// `linkat(fd, "", ..., AT_EMPTY_PATH)`: links an already resolved location.
pub fn link_location(
    ctx: &FsContext,
    creds: &Credentials,
    old: &Location,
    new_at: At<'_>,
    new_path: &str,
) -> EResult<()> {
    let mut walker = Walker::new(ctx, creds);
    let (parent, name) = prepare_create(&mut walker, new_at, new_path, false)?;
    if !Arc::ptr_eq(&old.mount, &parent.mount) {
        return Err(Errno::EXDEV);
    }
    super::credentials::may_link_to(creds, &old.metadata())?;
    may_create(creds, &parent)?;
    if old.is_dir() {
        return Err(Errno::EPERM);
    }
    parent.inode.link(&name, &old.inode)
}

/// `unlink` (and `unlinkat` without `AT_REMOVEDIR`).
pub fn unlink(ctx: &FsContext, creds: &Credentials, at: At<'_>, path: &str) -> EResult<()> {
    let mut walker = Walker::new(ctx, creds);
    let start = walker.start(at);
    let (parent, last) = walker.resolve_parent(start, path)?;
    if last.kind != LastKind::Normal {
        return Err(Errno::EISDIR);
    }
    writable_mount(&parent)?;
    let victim = walker.lookup_here(&parent, &last.name)?;
    if last.trailing_slash {
        return Err(if victim.is_dir() {
            Errno::EISDIR
        } else {
            Errno::ENOTDIR
        });
    }
    may_delete(creds, &parent, &victim, false)?;
    parent.inode.unlink(&last.name)
}

/// `rmdir` (and `unlinkat` with `AT_REMOVEDIR`): `EINVAL` for `.`, `ENOTEMPTY` for `..`,
/// `EBUSY` for `/` and mount points.
pub fn rmdir(ctx: &FsContext, creds: &Credentials, at: At<'_>, path: &str) -> EResult<()> {
    let mut walker = Walker::new(ctx, creds);
    let start = walker.start(at);
    let (parent, last) = walker.resolve_parent(start, path)?;
    match last.kind {
        LastKind::Normal => {}
        LastKind::Dot => return Err(Errno::EINVAL),
        LastKind::DotDot => return Err(Errno::ENOTEMPTY),
        LastKind::Root => return Err(Errno::EBUSY),
    }
    writable_mount(&parent)?;
    let victim = walker.lookup_here(&parent, &last.name)?;
    may_delete(creds, &parent, &victim, true)?;
    parent.inode.rmdir(&last.name)
}

/// Whether `ancestor` is `dir` or one of its ancestors within their file system.
fn is_ancestor(ancestor: &Location, dir: &Location) -> bool {
    if !Arc::ptr_eq(&ancestor.mount, &dir.mount) {
        return false;
    }
    // Ends at the file system's root, whose `..` is itself.
    let mut current = dir.inode.clone();
    loop {
        if same_inode(&current, &ancestor.inode) {
            return true;
        }
        match current.lookup("..") {
            Ok(parent) if !same_inode(&parent, &current) => current = parent,
            _ => return false,
        }
    }
}

/// `rename`/`renameat2`: `RENAME_NOREPLACE`, `RENAME_EXCHANGE`; replacing a file or an empty
/// directory; `EINVAL` for moving a directory into its own subtree; `EXDEV` across mounts.
pub fn rename(
    ctx: &FsContext,
    creds: &Credentials,
    old_at: At<'_>,
    old_path: &str,
    new_at: At<'_>,
    new_path: &str,
    flags: RenameFlags,
) -> EResult<()> {
    if flags.contains(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE)
        || (flags.contains(RenameFlags::WHITEOUT) && flags.contains(RenameFlags::EXCHANGE))
        || flags.bits() & !RenameFlags::all().bits() != 0
    {
        return Err(Errno::EINVAL);
    }
    let exchange = flags.contains(RenameFlags::EXCHANGE);
    let mut walker = Walker::new(ctx, creds);
    let old_start = walker.start(old_at);
    let (old_parent, old_last) = walker.resolve_parent(old_start, old_path)?;
    let new_start = walker.start(new_at);
    let (new_parent, new_last) = walker.resolve_parent(new_start, new_path)?;
    if !Arc::ptr_eq(&old_parent.mount, &new_parent.mount) {
        return Err(Errno::EXDEV);
    }
    if old_last.kind != LastKind::Normal {
        return Err(Errno::EBUSY);
    }
    if new_last.kind != LastKind::Normal {
        return Err(if flags.contains(RenameFlags::NOREPLACE) {
            Errno::EEXIST
        } else {
            Errno::EBUSY
        });
    }
    writable_mount(&old_parent)?;
    let old = walker.lookup_here(&old_parent, &old_last.name)?;
    let new = walker.lookup_optional(&new_parent, &new_last.name)?;
    if flags.contains(RenameFlags::NOREPLACE) && new.is_some() {
        return Err(Errno::EEXIST);
    }
    if exchange && new.is_none() {
        return Err(Errno::ENOENT);
    }
    if exchange {
        let new = new.as_ref().expect("checked above");
        if (old_last.trailing_slash && !old.is_dir()) || (new_last.trailing_slash && !new.is_dir())
        {
            return Err(Errno::ENOTDIR);
        }
    } else if !old.is_dir() && (old_last.trailing_slash || new_last.trailing_slash) {
        return Err(Errno::ENOTDIR);
    }
    // The source must not be an ancestor of the target, nor (unless exchanging) the target of
    // the source.
    if is_ancestor(&old, &new_parent) {
        return Err(Errno::EINVAL);
    }
    if let Some(new) = &new
        && is_ancestor(new, &old_parent)
    {
        return Err(if exchange {
            Errno::EINVAL
        } else {
            Errno::ENOTEMPTY
        });
    }
    if let Some(new) = &new
        && same_inode(&new.inode, &old.inode)
    {
        return Ok(());
    }
    let old_is_dir = old.is_dir();
    may_delete(creds, &old_parent, &old, old_is_dir)?;
    match &new {
        None => may_create(creds, &new_parent)?,
        Some(new) if exchange => may_delete(creds, &new_parent, new, new.is_dir())?,
        Some(new) => may_delete(creds, &new_parent, new, old_is_dir)?,
    }
    // A directory that changes parent needs write permission on itself (its `..` changes).
    if !same_inode(&old_parent.inode, &new_parent.inode) {
        if old_is_dir {
            check_access(creds, &old.metadata(), Access::WRITE)?;
        }
        if let Some(new) = &new
            && exchange
            && new.is_dir()
        {
            check_access(creds, &new.metadata(), Access::WRITE)?;
        }
    }
    old_parent
        .inode
        .rename(&old_last.name, &new_parent.inode, &new_last.name, flags)
}

/// `readlink`/`readlinkat`: `EINVAL` if `path` is not a symlink.
pub fn readlink(ctx: &FsContext, creds: &Credentials, at: At<'_>, path: &str) -> EResult<String> {
    let location = resolve(ctx, creds, at, path, Follow::No)?;
    if location.file_type() != FileType::Symlink {
        return Err(Errno::EINVAL);
    }
    location.inode.readlink()
}

/// `access`/`faccessat` on a resolved location (pass the real or effective ids as the call
/// asks). The empty set is `F_OK`.
pub fn access(creds: &Credentials, location: &Location, wanted: Access) -> EResult<()> {
    let meta = location.metadata();
    if wanted.contains(Access::WRITE)
        && write_needs_writable_mount(meta.file_type)
        && location.mount.is_read_only()
    {
        return Err(Errno::EROFS);
    }
    check_access(creds, &meta, wanted)?;
    if wanted.contains(Access::EXEC)
        && meta.file_type == FileType::Regular
        && location.mount.flags().contains(MountFlags::NOEXEC)
    {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// `chmod`/`fchmod`/`fchmodat`: owner or root (`EPERM`); a non-member loses set-gid; symlinks
/// have no mode of their own (`ENOTSUP`, as `fchmodat2(AT_SYMLINK_NOFOLLOW)`).
pub fn chmod(creds: &Credentials, location: &Location, mode: u32) -> EResult<()> {
    writable_mount(location)?;
    let meta = location.metadata();
    if meta.file_type == FileType::Symlink {
        return Err(Errno::ENOTSUP);
    }
    if !creds.owns(&meta) {
        return Err(Errno::EPERM);
    }
    let mut permissions = mode & PERMISSION_BITS;
    if !creds.is_root() && !creds.in_group(meta.gid) {
        permissions &= !S_ISGID;
    }
    location.inode.set_attributes(&AttrChange {
        permissions: Some(permissions),
        ctime: Some(clock()),
        ..AttrChange::default()
    })
}

/// `chown` and friends (`None` is -1, "leave alone"). Changing anything about a non-directory
/// clears set-uid, and set-gid when group-executable, as Linux does even for root.
pub fn chown(
    creds: &Credentials,
    location: &Location,
    uid: Option<u32>,
    gid: Option<u32>,
) -> EResult<()> {
    writable_mount(location)?;
    let meta = location.metadata();
    check_chown(creds, &meta, uid, gid)?;
    let mut permissions = meta.permissions;
    if !meta.is_dir() {
        permissions &= !S_ISUID;
        if permissions & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP {
            permissions &= !S_ISGID;
        }
    }
    location.inode.set_attributes(&AttrChange {
        permissions: (permissions != meta.permissions).then_some(permissions),
        uid,
        gid,
        ctime: Some(clock()),
        ..AttrChange::default()
    })
}

/// `utimensat`/`futimens` (Linux's `vfs_utimes`): `UTIME_NOW` for both ("touch") is the
/// owner's, root's or anyone's with write permission (`EACCES` otherwise); anything else, even
/// `UTIME_NOW` for one and `UTIME_OMIT` for the other, is an explicit change and needs the
/// owner or root (`EPERM`). Both `UTIME_OMIT` changes nothing. The change time becomes now.
pub fn utimens(
    creds: &Credentials,
    location: &Location,
    atime: TimeChange,
    mtime: TimeChange,
) -> EResult<()> {
    for change in [atime, mtime] {
        if let TimeChange::Set(time) = change
            && time.nsec >= 1_000_000_000
        {
            return Err(Errno::EINVAL);
        }
    }
    if atime == TimeChange::Omit && mtime == TimeChange::Omit {
        return Ok(());
    }
    writable_mount(location)?;
    let meta = location.metadata();
    let explicit = !(atime == TimeChange::Now && mtime == TimeChange::Now);
    if !creds.owns(&meta) {
        if explicit {
            return Err(Errno::EPERM);
        }
        check_access(creds, &meta, Access::WRITE)?;
    }
    let now = clock();
    let resolve_time = |change| match change {
        TimeChange::Now => Some(now),
        TimeChange::Omit => None,
        TimeChange::Set(time) => Some(time),
    };
    location.inode.set_attributes(&AttrChange {
        atime: resolve_time(atime),
        mtime: resolve_time(mtime),
        ctime: Some(now),
        ..AttrChange::default()
    })
}

/// `truncate(2)` on a resolved location: `EISDIR`, `EINVAL` for a non-regular file or a negative
/// length, `EROFS`, then write permission.
pub fn truncate(creds: &Credentials, location: &Location, length: i64) -> EResult<()> {
    if length < 0 {
        return Err(Errno::EINVAL);
    }
    let meta = location.metadata();
    match meta.file_type {
        FileType::Directory => return Err(Errno::EISDIR),
        FileType::Regular => {}
        _ => return Err(Errno::EINVAL),
    }
    writable_mount(location)?;
    check_access(creds, &meta, Access::WRITE)?;
    location.inode.truncate(length as u64)
}

/// `chdir`/`fchdir`: a directory the caller may search.
pub fn chdir(ctx: &mut FsContext, creds: &Credentials, target: Location) -> EResult<()> {
    if !target.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    check_access(creds, &target.metadata(), Access::EXEC)?;
    ctx.cwd = target;
    Ok(())
}

/// `chroot`: root only; the working directory is left alone, as on Linux.
pub fn chroot(ctx: &mut FsContext, creds: &Credentials, target: Location) -> EResult<()> {
    if !target.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    check_access(creds, &target.metadata(), Access::EXEC)?;
    if !creds.is_root() {
        return Err(Errno::EPERM);
    }
    ctx.root = target;
    Ok(())
}

/// `getcwd`: the working directory relative to the caller's root; `ENOENT` if it was removed.
pub fn getcwd(ctx: &FsContext) -> EResult<String> {
    path_of(&ctx.cwd, &ctx.root)
}

/// The types `mount(2)` can make (`/proc/filesystems`).
pub const FILESYSTEM_TYPES: [&str; 3] = ["tmpfs", "proc", "debugfs"];

/// A new instance of a file system type, for `mount(2)`'s type and options arguments;
/// `ENODEV` for an unknown type, `EINVAL` for an option the type does not know.
pub fn new_filesystem(type_name: &str, options: &str) -> EResult<Arc<dyn FileSystem>> {
    let options = options.split(',').filter(|o| !o.is_empty());
    match type_name {
        "tmpfs" => {
            let (mut permissions, mut pages) = (0o1777, Tmpfs::default_page_limit());
            for option in options {
                match option.split_once('=') {
                    Some(("mode", mode)) => {
                        permissions = u32::from_str_radix(mode, 8)
                            .ok()
                            .filter(|mode| *mode <= PERMISSION_BITS)
                            .ok_or(Errno::EINVAL)?;
                    }
                    Some(("size", size)) => pages = tmpfs_size_pages(size)?,
                    // Accepted as Linux accepts them; ownership of the root is root's.
                    Some(("uid" | "gid" | "nr_inodes", _)) => {}
                    _ => return Err(Errno::EINVAL),
                }
            }
            Ok(Tmpfs::with_options(permissions, pages))
        }
        // procfs's `hidepid=`/`gid=` and debugfs's `mode=`/`uid=`/`gid=` are accepted and
        // not applied.
        "proc" => Ok(super::procfs::Procfs::new()),
        "debugfs" => Ok(super::debugfs::Debugfs::new()),
        _ => Err(Errno::ENODEV),
    }
}

/// tmpfs's `size=`: bytes with an optional `k`, `m` or `g` suffix, or a percentage of RAM;
/// rounded up to pages.
fn tmpfs_size_pages(size: &str) -> EResult<u64> {
    let total_pages = crate::mm::frame_allocator::stats().total;
    if let Some(percent) = size.strip_suffix('%') {
        let percent: u64 = percent.parse().map_err(|_| Errno::EINVAL)?;
        return Ok((total_pages * percent / 100).max(1));
    }
    let (digits, shift) = match size.as_bytes().last() {
        Some(b'k' | b'K') => (&size[..size.len() - 1], 10),
        Some(b'm' | b'M') => (&size[..size.len() - 1], 20),
        Some(b'g' | b'G') => (&size[..size.len() - 1], 30),
        _ => (size, 0),
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or(Errno::EINVAL)?;
    Ok(bytes.div_ceil(4096).max(1))
}

/// `mount(2)` of a new file system on the directory `target` (resolved with `Follow::Yes`).
pub fn mount(
    creds: &Credentials,
    target: &Location,
    fs: Arc<dyn FileSystem>,
    source: &str,
    flags: MountFlags,
) -> EResult<()> {
    if !creds.is_root() {
        return Err(Errno::EPERM);
    }
    mount::attach(target, fs, source, flags).map(drop)
}

/// `umount2`: `target` must be the root of a mount (`EINVAL`); `EBUSY` while anything inside is
/// in use unless `lazy` (`MNT_DETACH`).
pub fn umount(creds: &Credentials, target: Location, lazy: bool) -> EResult<()> {
    if !creds.is_root() {
        return Err(Errno::EPERM);
    }
    if !target.is_mount_root() || target.mount.mountpoint().is_none() {
        return Err(Errno::EINVAL);
    }
    let mount = target.mount.clone();
    drop(target);
    mount::detach(mount, lazy)
}

/// The `FsContext` for init and kernel threads: the system root, umask 022.
pub fn init_context() -> EResult<FsContext> {
    super::root_location()
        .map(FsContext::new)
        .ok_or(Errno::ENOENT)
}
