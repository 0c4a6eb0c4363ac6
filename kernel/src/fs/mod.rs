//! The virtual file system: Linux's file model for the Linux-ABI userland.
//!
//! Programs built for Linux (Debian's static busybox first) depend on far more than "files
//! exist": on exact errno values and their precedence, on `getdents64` offsets surviving
//! concurrent changes, on `struct stat` byte offsets, on `dup2` corner cases. So this subsystem
//! copies Linux's semantics deliberately and keeps the system-call layer thin: a syscall
//! validates its raw arguments, then makes one call here.
//!
//! Layers, bottom up:
//! - `inode`: the `FileSystem` and `Inode` traits an implementation provides: `tmpfs` stores
//!   files; `procfs` and `debugfs` generate theirs (built from `pseudo`);
//! - `mount`: the mount table and `Location` (an inode reached through a mount);
//! - `path`: path resolution and the per-process `FsContext` (root, cwd, umask);
//! - `credentials`: who asks, and Linux's permission rules;
//! - `vfs`: the operations (`open`, `mkdir`, `rename`, `chmod`, ...);
//! - `file`, `fd_table`: open files and descriptor tables; `abi`: the byte layouts of
//!   `struct stat`, `struct statx` and `struct linux_dirent64`;
//! - `dev`: character devices by (major, minor), the memory devices and the random generator;
//! - `initramfs`: unpacking the boot archive into the root tmpfs.
//!
//! At boot `init_root` creates the root tmpfs, unpacks the initrd into it, adds the standard
//! directories and `/dev` nodes the archive lacked, and (with `fs_list=DIR[,DIR...]` on the
//! command line) lists directories, so a boot log shows what the kernel sees.

pub mod abi;
pub mod credentials;
pub mod debugfs;
pub mod dev;
pub mod fd_table;
pub mod file;
pub mod initramfs;
pub mod inode;
pub mod metadata;
pub mod mount;
pub mod path;
pub mod procfs;
pub mod pseudo;
pub mod tmpfs;
pub mod vfs;

mod tests;

use alloc::string::String;
use alloc::vec::Vec;

// The names the system-call layer uses most, at the top of the subsystem.
#[allow(
    unused_imports,
    reason = "the system-call layer's entry points; not all used yet"
)]
pub use credentials::{Access, Credentials};
#[allow(
    unused_imports,
    reason = "the system-call layer's entry points; not all used yet"
)]
pub use {
    fd_table::FdTable,
    file::{OpenFile, OpenFlags, Whence},
    inode::{FileSystem, Inode, RenameFlags},
    metadata::{DeviceId, FileType, Metadata, Timespec},
    mount::{Location, Mount, MountFlags},
    path::{At, Follow, FsContext},
};

use crate::boot::{BootInfo, Initrd};
use crate::kprintln;

/// The time stamped on inodes: the wall clock (`CLOCK_REALTIME`), as Linux's
/// `current_time`.
pub fn clock() -> Timespec {
    Timespec::from_ns(crate::time::realtime_ns())
}

static ROOT: spin::Once<Location> = spin::Once::new();

/// The system's root directory, once `init_root` ran.
pub fn root_location() -> Option<Location> {
    ROOT.get().cloned()
}

/// Zeroes a long-lived vector's unused capacity after removals. `Vec::remove` leaves a copy of
/// the last element behind the length; the leak tracker scans whole heap blocks conservatively,
/// so a stale pointer there would make a freed-and-reused block look referenced and hide a real
/// leak in it.
fn scrub_spare_capacity<T>(vec: &mut Vec<T>) {
    for slot in vec.spare_capacity_mut() {
        *slot = core::mem::MaybeUninit::zeroed();
    }
}

/// Boot: the root tmpfs, the initramfs unpacked into it, the standard entries, and the
/// `fs_list=DIR` listing. Prints one summary line (Linux's "Unpacking initramfs...").
pub fn init_root(info: &BootInfo) {
    dev::init();
    procfs::set_kernel_cmdline(info.cmdline.as_str());
    // The root directory of a root file system is 0755, as every distribution's is (a bare
    // tmpfs mount would make it 1777).
    let fs = tmpfs::Tmpfs::with_options(0o755, tmpfs::Tmpfs::default_page_limit());
    let root_mount = Mount::new_root(fs, "tmpfs", MountFlags::empty());
    mount::register_root(&root_mount);
    let root = ROOT.call_once(|| root_mount.root_location()).clone();
    let ctx = FsContext::new(root);

    match info.initrd.as_ref().and_then(Initrd::bytes) {
        Some(archive) => {
            let report = initramfs::unpack(&ctx, archive);
            let stats = &report.stats;
            kprintln!(
                "Unpacking initramfs... {} files, {} directories, {} bytes ({} symlinks, {} special files, {} hard links)",
                stats.files,
                stats.directories,
                stats.bytes,
                stats.symlinks,
                stats.special_files,
                stats.hard_links
            );
            if let Some(failure) = &report.failure {
                kprintln!("initramfs: {failure}; keeping what was unpacked before it");
            }
            if let Some((name, error)) = &report.first_skipped {
                kprintln!(
                    "initramfs: {} entries skipped, the first {name:?}: {error}",
                    stats.skipped
                );
            }
        }
        None => kprintln!("initramfs: none; the root file system starts empty"),
    }
    let added = initramfs::add_standard_entries(&ctx);
    if !added.is_empty() {
        kprintln!("fs: created {}", added.join(" "));
    }
    // `fs_list=/bin,/etc`: list each directory.
    for dir in info
        .cmdline
        .get("fs_list")
        .into_iter()
        .flat_map(|v| v.split(','))
    {
        for line in list_directory(&ctx, dir) {
            kprintln!("fs_list: {line}");
        }
    }
}

/// `ls -lan`-style lines for a directory: mode, uid, gid, size (or major, minor), name, and
/// `-> target` for symlinks. For the `fs_list=DIR` boot option and tests.
pub fn list_directory(ctx: &FsContext, dir: &str) -> Vec<String> {
    use alloc::format;
    let creds = Credentials::root();
    let mut lines = Vec::new();
    let file = match vfs::open(ctx, &creds, At::Cwd, dir, OpenFlags::DIRECTORY, 0) {
        Ok(file) => file,
        Err(error) => {
            lines.push(format!("{dir}: {error}"));
            return lines;
        }
    };
    lines.push(format!("{dir}:"));
    let mut names = Vec::new();
    let _ = file.location().inode.read_dir(0, &mut |entry| {
        names.push(String::from(entry.name));
        true
    });
    for name in names {
        let Ok(entry) = vfs::resolve(ctx, &creds, At::Dir(file.location()), &name, Follow::No)
        else {
            continue;
        };
        let meta = entry.metadata();
        let size = match meta.file_type {
            FileType::CharDevice | FileType::BlockDevice => {
                format!("{}, {}", meta.rdev.major, meta.rdev.minor)
            }
            _ => format!("{}", meta.size),
        };
        let mut line = format!(
            "{} {:>3} {:>5} {:>5} {:>8} {}",
            meta.mode_string(),
            meta.nlink,
            meta.uid,
            meta.gid,
            size,
            name
        );
        if meta.file_type == FileType::Symlink
            && let Ok(target) = entry.inode.readlink()
        {
            line.push_str(" -> ");
            line.push_str(&target);
        }
        lines.push(line);
    }
    lines
}
