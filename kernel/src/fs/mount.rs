//! Mounts and locations: which file system answers for which directory.
//!
//! A `Location` is an inode *as reached through a particular mount* (Linux's `struct path`):
//! the same tmpfs directory mounted twice is two locations, and `..` at the root of a mount
//! leaves through the directory it is mounted on, which only the mount knows. Working
//! directories, `*at` base directories and open files all hold locations.
//!
//! The mount table is global (one mount namespace). A mount is found by the location it covers —
//! parent mount and inode identity, never a path string — so a detached tree (a test's private
//! root) can have mounts of its own without touching the system's.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use super::inode::{FileSystem, Inode, same_inode};
use super::metadata::{FileType, Metadata};
use crate::errno::{EResult, Errno};

bitflags::bitflags! {
    /// Per-mount flags (the `MS_*` values of `mount(2)`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MountFlags: u32 {
        const RDONLY = 1;
        const NOSUID = 2;
        const NODEV = 4;
        const NOEXEC = 8;
    }
}

/// One file system attached to the tree.
pub struct Mount {
    id: u32,
    fs: Arc<dyn FileSystem>,
    root: Arc<dyn Inode>,
    /// Where it is attached; `None` for a root mount.
    mountpoint: Option<Location>,
    source: String,
    flags: MountFlags,
}

impl Mount {
    /// A mount attached nowhere: the root of a tree of its own (the system root, or a test's).
    pub fn new_root(fs: Arc<dyn FileSystem>, source: &str, flags: MountFlags) -> Arc<Self> {
        Arc::new(Self {
            id: next_mount_id(),
            root: fs.root(),
            fs,
            mountpoint: None,
            source: String::from(source),
            flags,
        })
    }

    /// `mnt_id` (statx's `stx_mnt_id`, `/proc/self/mountinfo`).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn file_system(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    pub fn flags(&self) -> MountFlags {
        self.flags
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_read_only(&self) -> bool {
        self.flags.contains(MountFlags::RDONLY)
    }

    /// The location this mount covers, if it is attached somewhere.
    pub fn mountpoint(&self) -> Option<&Location> {
        self.mountpoint.as_ref()
    }

    /// The location of this mount's root directory.
    pub fn root_location(self: &Arc<Self>) -> Location {
        Location {
            mount: self.clone(),
            inode: self.root.clone(),
        }
    }
}

/// An inode reached through a mount.
#[derive(Clone)]
pub struct Location {
    pub mount: Arc<Mount>,
    pub inode: Arc<dyn Inode>,
}

impl Location {
    pub fn metadata(&self) -> Metadata {
        self.inode.metadata()
    }

    pub fn file_type(&self) -> FileType {
        self.inode.file_type()
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// Same mount and same inode.
    pub fn same_as(&self, other: &Location) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount) && same_inode(&self.inode, &other.inode)
    }

    /// Whether this is the root directory of its mount.
    pub fn is_mount_root(&self) -> bool {
        same_inode(&self.inode, &self.mount.root)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Location(mount {}, ino {})",
            self.mount.id,
            self.metadata().ino
        )
    }
}

static NEXT_MOUNT_ID: AtomicU32 = AtomicU32::new(1);
static TABLE: spin::Mutex<Vec<Arc<Mount>>> = spin::Mutex::new(Vec::new());

fn next_mount_id() -> u32 {
    NEXT_MOUNT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Lists a root mount in the table (so `/proc/mounts` shows it).
pub fn register_root(mount: &Arc<Mount>) {
    TABLE.lock().push(mount.clone());
}

/// The mount attached most recently on `location`, if any.
pub fn mounted_on(location: &Location) -> Option<Arc<Mount>> {
    TABLE
        .lock()
        .iter()
        .rev()
        .find(|m| m.mountpoint.as_ref().is_some_and(|p| p.same_as(location)))
        .cloned()
}

/// Whether something is mounted on `location` (it cannot be removed or renamed: `EBUSY`).
pub fn is_mountpoint(location: &Location) -> bool {
    mounted_on(location).is_some()
}

/// Follows mounts down: the root of whatever is mounted on `location`, repeatedly.
pub fn cross_mounts(mut location: Location) -> Location {
    while let Some(mount) = mounted_on(&location) {
        location = mount.root_location();
    }
    location
}

/// Attaches `fs` on the directory `mountpoint`.
pub fn attach(
    mountpoint: &Location,
    fs: Arc<dyn FileSystem>,
    source: &str,
    flags: MountFlags,
) -> EResult<Arc<Mount>> {
    if !mountpoint.is_dir() || fs.root().file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let mount = Arc::new(Mount {
        id: next_mount_id(),
        root: fs.root(),
        fs,
        mountpoint: Some(mountpoint.clone()),
        source: String::from(source),
        flags,
    });
    TABLE.lock().push(mount.clone());
    Ok(mount)
}

/// Detaches `mount`. Without `lazy` it must not be in use (no mounts on top of it, no open
/// files or working directories inside it): `EBUSY`. With `lazy` (`MNT_DETACH`) it and
/// everything mounted below it leave the tree at once and live on until their last user goes.
pub fn detach(mount: Arc<Mount>, lazy: bool) -> EResult<()> {
    let mut table = TABLE.lock();
    let Some(index) = table.iter().position(|m| Arc::ptr_eq(m, &mount)) else {
        return Err(Errno::EINVAL);
    };
    if mount.mountpoint.is_none() {
        return Err(Errno::EBUSY);
    }
    let is_child_of = |m: &Arc<Mount>, parent: &Arc<Mount>| {
        m.mountpoint
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(&p.mount, parent))
    };
    if !lazy {
        // References: the table's and the caller's; anything more is a user.
        if table.iter().any(|m| is_child_of(m, &mount)) || Arc::strong_count(&mount) > 2 {
            return Err(Errno::EBUSY);
        }
        table.remove(index);
        super::scrub_spare_capacity(&mut table);
        return Ok(());
    }
    let mut doomed = alloc::vec![mount];
    let mut i = 0;
    while i < doomed.len() {
        let parent = doomed[i].clone();
        doomed.extend(table.iter().filter(|m| is_child_of(m, &parent)).cloned());
        i += 1;
    }
    table.retain(|m| !doomed.iter().any(|d| Arc::ptr_eq(d, m)));
    super::scrub_spare_capacity(&mut table);
    Ok(())
}

/// Every mount, oldest first.
pub fn all() -> Vec<Arc<Mount>> {
    TABLE.lock().clone()
}

/// Writes `/proc/mounts`: one `source mountpoint type options 0 0` line per mount visible from
/// `root`, mount points relative to it (the reader's root, as after `chroot`).
pub fn write_mounts(root: &Location, out: &mut dyn fmt::Write) -> fmt::Result {
    for mount in all() {
        let Ok(path) = super::path::path_of(&mount.root_location(), root) else {
            continue;
        };
        let flags = mount.flags();
        write_escaped(out, mount.source())?;
        out.write_char(' ')?;
        write_escaped(out, &path)?;
        write!(
            out,
            " {} {}",
            mount.file_system().type_name(),
            if flags.contains(MountFlags::RDONLY) {
                "ro"
            } else {
                "rw"
            }
        )?;
        for (flag, name) in [
            (MountFlags::NOSUID, ",nosuid"),
            (MountFlags::NODEV, ",nodev"),
            (MountFlags::NOEXEC, ",noexec"),
        ] {
            if flags.contains(flag) {
                out.write_str(name)?;
            }
        }
        out.write_str(" 0 0\n")?;
    }
    Ok(())
}

/// `/proc/mounts` escapes the field separators as octal, like Linux's `mangle`.
fn write_escaped(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => write!(out, "\\{:03o}", c as u32)?,
            _ => out.write_char(c)?,
        }
    }
    Ok(())
}
