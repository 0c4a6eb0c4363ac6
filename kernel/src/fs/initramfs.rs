//! Unpacking the initramfs (a newc cpio archive) into the root tmpfs, as Linux's
//! init/initramfs.c does, plus the standard entries a root file system needs.
//!
//! The archive is untrusted input. Its parser, `Reader`, lives in the `cadenza-formats` crate so
//! that it is fuzzed on the host (docs/fuzzing.md): it validates every header and stops at the
//! first problem with an error that says what and where; the unpacker keeps what it unpacked
//! before that. Nothing in an archive can panic the kernel.
//!
//! Entries are created through the ordinary VFS calls with root's credentials, so they get
//! Linux's semantics for free: a later entry replaces an earlier one of the same name (Linux's
//! `maybe_unlink`), a name below a symlinked directory lands in the symlink's target, an entry
//! whose parent is missing is skipped. Hard links are entries with `nlink > 1` sharing
//! (ino, device, mode): the first creates the file, later ones link to it and may carry the data
//! (GNU cpio puts it on the last). Directory times are set at the end, because creating entries
//! inside a directory changes its mtime. Like Linux, several archives may be concatenated,
//! with NUL padding between them.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use cadenza_formats::cpio::DeviceNumber;

use super::credentials::Credentials;
use super::file::OpenFlags;
use super::metadata::{DeviceId, FileType, PERMISSION_BITS, Timespec};
use super::path::{At, Follow, FsContext};
use super::vfs::{self, TimeChange};
use crate::errno::{EResult, Errno};

pub use cadenza_formats::cpio::{ArchiveError, ArchiveFailure, Entry, Reader};

// The parser's name limit is the VFS's.
const _: () = assert!(cadenza_formats::cpio::NAME_MAX_LEN == super::path::PATH_MAX);

/// What an unpacking created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files, each hard link counted.
    pub files: usize,
    pub directories: usize,
    pub symlinks: usize,
    /// Device nodes, FIFOs and sockets.
    pub special_files: usize,
    /// Entries that were a further name for an earlier one.
    pub hard_links: usize,
    /// Bytes of regular-file data written.
    pub bytes: u64,
    /// Entries that could not be created (a missing parent, an unknown type).
    pub skipped: usize,
}

/// The outcome of `unpack`.
#[derive(Clone, Debug, Default)]
pub struct UnpackReport {
    pub stats: UnpackStats,
    /// Why unpacking stopped early, if it did.
    pub failure: Option<ArchiveFailure>,
    /// The first entry that was skipped, and why.
    pub first_skipped: Option<(String, Errno)>,
}

/// Identity of a hard-linked inode in the archive.
type LinkKey = (u32, DeviceNumber, u32);

struct Unpacker<'a> {
    ctx: FsContext,
    creds: Credentials,
    links: BTreeMap<LinkKey, String>,
    dir_times: Vec<(String, u32)>,
    stats: &'a mut UnpackStats,
}

/// Unpacks `archive` below `ctx.root`. Never panics; stops at the first malformed entry.
pub fn unpack(ctx: &FsContext, archive: &[u8]) -> UnpackReport {
    let mut report = UnpackReport::default();
    let mut unpacker = Unpacker {
        ctx: FsContext {
            cwd: ctx.root.clone(),
            root: ctx.root.clone(),
            // Modes are applied exactly as archived.
            umask: 0,
        },
        creds: Credentials::root(),
        links: BTreeMap::new(),
        dir_times: Vec::new(),
        stats: &mut report.stats,
    };
    for item in Reader::new(archive) {
        match item {
            Ok(entry) => {
                if let Err(error) = unpacker.entry(&entry) {
                    unpacker.stats.skipped += 1;
                    report
                        .first_skipped
                        .get_or_insert_with(|| (String::from(entry.name), error));
                }
            }
            Err(failure) => {
                report.failure = Some(failure);
                break;
            }
        }
    }
    unpacker.apply_dir_times();
    report
}

impl Unpacker<'_> {
    fn entry(&mut self, entry: &Entry<'_>) -> EResult<()> {
        let relative = entry.name.trim_start_matches('/');
        let relative = relative.strip_prefix("./").unwrap_or(relative);
        let file_type = FileType::from_mode(entry.mode).ok_or(Errno::EINVAL)?;
        if matches!(relative.trim_end_matches('/'), "" | ".") {
            // The archive's own root: its mode and owner apply to ours.
            if file_type != FileType::Directory {
                return Err(Errno::EEXIST);
            }
            self.set_owner_and_mode(".", entry, true)?;
            self.dir_times.push((String::from("."), entry.mtime));
            return Ok(());
        }
        let path = format!("/{relative}");
        match file_type {
            FileType::Directory => self.directory(&path, entry),
            FileType::Regular => self.regular(&path, entry),
            FileType::Symlink => self.symlink(&path, entry),
            _ => self.special(&path, entry, file_type),
        }
    }

    fn directory(&mut self, path: &str, entry: &Entry<'_>) -> EResult<()> {
        let permissions = entry.mode & PERMISSION_BITS;
        match vfs::mkdir(&self.ctx, &self.creds, At::Cwd, path, permissions) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                self.remove_existing(path, true)?;
                if vfs::resolve(&self.ctx, &self.creds, At::Cwd, path, Follow::No).is_err() {
                    vfs::mkdir(&self.ctx, &self.creds, At::Cwd, path, permissions)?;
                }
            }
            Err(error) => return Err(error),
        }
        self.set_owner_and_mode(path, entry, true)?;
        self.dir_times.push((String::from(path), entry.mtime));
        self.stats.directories += 1;
        Ok(())
    }

    fn regular(&mut self, path: &str, entry: &Entry<'_>) -> EResult<()> {
        let key = (entry.ino, entry.dev, entry.mode);
        let linked = entry.nlink >= 2 && self.links.contains_key(&key);
        self.remove_existing(path, false)?;
        let flags = if linked {
            let first = self.links[&key].clone();
            vfs::link(
                &self.ctx,
                &self.creds,
                At::Cwd,
                &first,
                At::Cwd,
                path,
                Follow::No,
            )?;
            OpenFlags::WRONLY
        } else {
            OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::TRUNC
        };
        let file = vfs::open(
            &self.ctx,
            &self.creds,
            At::Cwd,
            path,
            flags,
            entry.mode & PERMISSION_BITS,
        )?;
        let mut written = 0;
        while written < entry.data.len() {
            match file.write(&entry.data[written..])? {
                0 => return Err(Errno::ENOSPC),
                count => written += count,
            }
        }
        drop(file);
        self.set_owner_and_mode(path, entry, true)?;
        self.set_mtime(path, entry.mtime)?;
        if linked {
            self.stats.hard_links += 1;
        } else if entry.nlink >= 2 {
            self.links.insert(key, String::from(path));
        }
        self.stats.files += 1;
        self.stats.bytes += entry.data.len() as u64;
        Ok(())
    }

    fn symlink(&mut self, path: &str, entry: &Entry<'_>) -> EResult<()> {
        let target = core::str::from_utf8(entry.data).map_err(|_| Errno::EINVAL)?;
        if target.contains('\0') {
            return Err(Errno::EINVAL);
        }
        self.remove_existing(path, false)?;
        vfs::symlink(&self.ctx, &self.creds, target, At::Cwd, path)?;
        self.set_owner_and_mode(path, entry, false)?;
        self.set_mtime(path, entry.mtime)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn special(&mut self, path: &str, entry: &Entry<'_>, file_type: FileType) -> EResult<()> {
        let key = (entry.ino, entry.dev, entry.mode);
        self.remove_existing(path, false)?;
        if entry.nlink >= 2
            && let Some(first) = self.links.get(&key)
        {
            let first = first.clone();
            vfs::link(
                &self.ctx,
                &self.creds,
                At::Cwd,
                &first,
                At::Cwd,
                path,
                Follow::No,
            )?;
            self.stats.hard_links += 1;
        } else {
            let mode = file_type.mode_bits() | (entry.mode & PERMISSION_BITS);
            let rdev = DeviceId::new(entry.rdev.major, entry.rdev.minor);
            vfs::mknod(&self.ctx, &self.creds, At::Cwd, path, mode, rdev)?;
            if entry.nlink >= 2 {
                self.links.insert(key, String::from(path));
            }
        }
        self.set_owner_and_mode(path, entry, true)?;
        self.set_mtime(path, entry.mtime)?;
        self.stats.special_files += 1;
        Ok(())
    }

    /// Linux's `maybe_unlink`: an existing entry goes unless both it and the new one are
    /// directories (a non-empty directory cannot go, and the new entry then fails).
    fn remove_existing(&self, path: &str, new_is_dir: bool) -> EResult<()> {
        let Ok(existing) = vfs::resolve(&self.ctx, &self.creds, At::Cwd, path, Follow::No) else {
            return Ok(());
        };
        match (existing.is_dir(), new_is_dir) {
            (true, true) => Ok(()),
            (true, false) => vfs::rmdir(&self.ctx, &self.creds, At::Cwd, path),
            (false, _) => vfs::unlink(&self.ctx, &self.creds, At::Cwd, path),
        }
    }

    /// Owner, then (after `chown` cleared set-id bits) the exact archived permissions.
    fn set_owner_and_mode(&self, path: &str, entry: &Entry<'_>, with_mode: bool) -> EResult<()> {
        let location = vfs::resolve(&self.ctx, &self.creds, At::Cwd, path, Follow::No)?;
        vfs::chown(&self.creds, &location, Some(entry.uid), Some(entry.gid))?;
        if with_mode {
            vfs::chmod(&self.creds, &location, entry.mode & PERMISSION_BITS)?;
        }
        Ok(())
    }

    fn set_mtime(&self, path: &str, mtime: u32) -> EResult<()> {
        let location = vfs::resolve(&self.ctx, &self.creds, At::Cwd, path, Follow::No)?;
        let time = TimeChange::Set(Timespec::new(i64::from(mtime), 0));
        vfs::utimens(&self.creds, &location, time, time)
    }

    fn apply_dir_times(&mut self) {
        for (path, mtime) in core::mem::take(&mut self.dir_times) {
            // A directory replaced later in the archive may be gone; that is fine.
            let _ = self.set_mtime(&path, mtime);
        }
    }
}

/// The device nodes every root file system gets (Documentation/admin-guide/devices.txt),
/// matching the host launcher's `standard_device_nodes`.
pub const STANDARD_DEVICE_NODES: [(&str, u32, u32, u32); 9] = [
    ("/dev/console", 5, 1, 0o600),
    ("/dev/tty", 5, 0, 0o666),
    ("/dev/null", 1, 3, 0o666),
    ("/dev/zero", 1, 5, 0o666),
    ("/dev/full", 1, 7, 0o666),
    ("/dev/random", 1, 8, 0o666),
    ("/dev/urandom", 1, 9, 0o666),
    ("/dev/ttyS0", 4, 64, 0o660),
    ("/dev/ttyS1", 4, 65, 0o660),
];

/// The directories every root file system gets: mount points for procfs and debugfs (where
/// Linux's sysfs would provide `/sys/kernel/debug`), and `/tmp`.
pub const STANDARD_DIRECTORIES: [(&str, u32); 6] = [
    ("/dev", 0o755),
    ("/proc", 0o755),
    ("/sys", 0o755),
    ("/sys/kernel", 0o755),
    ("/sys/kernel/debug", 0o700),
    ("/tmp", 0o1777),
];

/// The symlinks udev and systemd make on Linux: `/dev/fd` and the standard streams, through
/// procfs.
pub const STANDARD_SYMLINKS: [(&str, &str); 4] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// Creates whichever standard directories and `/dev` nodes the archive lacked; returns their
/// paths.
pub fn add_standard_entries(ctx: &FsContext) -> Vec<&'static str> {
    let creds = Credentials::root();
    let ctx = FsContext {
        umask: 0,
        ..ctx.clone()
    };
    let missing = |path: &str| {
        matches!(
            vfs::resolve(&ctx, &creds, At::Cwd, path, Follow::No),
            Err(Errno::ENOENT)
        )
    };
    let mut added = Vec::new();
    for (path, permissions) in STANDARD_DIRECTORIES {
        if missing(path) && vfs::mkdir(&ctx, &creds, At::Cwd, path, permissions).is_ok() {
            added.push(path);
        }
    }
    for (path, major, minor, permissions) in STANDARD_DEVICE_NODES {
        let mode = FileType::CharDevice.mode_bits() | permissions;
        let device = DeviceId::new(major, minor);
        if missing(path) && vfs::mknod(&ctx, &creds, At::Cwd, path, mode, device).is_ok() {
            added.push(path);
        }
    }
    for (path, target) in STANDARD_SYMLINKS {
        if missing(path) && vfs::symlink(&ctx, &creds, target, At::Cwd, path).is_ok() {
            added.push(path);
        }
    }
    added
}
