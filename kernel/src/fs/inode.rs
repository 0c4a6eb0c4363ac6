//! The two traits a file system implements: `FileSystem` (one mounted instance) and `Inode`
//! (one object in it).
//!
//! The split of work follows Linux's: the VFS (`vfs`, `path`) owns everything that does not
//! depend on how data is stored — path walking, permission checks, mount crossing, the order in
//! which errors are reported — and an implementation only stores and finds things. So an inode
//! operation never checks permissions and never sees a path, only names inside one directory.
//! Every operation has a default that fails the way Linux fails for an object that does not
//! support it, so a read-only or synthetic file system (procfs, debugfs) implements only what
//! it has.

use alloc::string::String;
use alloc::sync::Arc;
use core::any::Any;

use super::metadata::{AttrChange, DeviceId, FileType, Metadata};
use crate::errno::{EResult, Errno};

/// One mounted instance of a file system.
pub trait FileSystem: Send + Sync {
    /// The type as `/proc/mounts` and `mount(2)` name it (`"tmpfs"`).
    fn type_name(&self) -> &'static str;
    fn root(&self) -> Arc<dyn Inode>;
    /// The (anonymous) device number every inode reports as `st_dev`.
    fn device(&self) -> DeviceId;
}

/// What to create in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind<'a> {
    Regular,
    Directory,
    Symlink { target: &'a str },
    CharDevice(DeviceId),
    BlockDevice(DeviceId),
    Fifo,
    Socket,
}

impl NodeKind<'_> {
    pub fn file_type(&self) -> FileType {
        match self {
            Self::Regular => FileType::Regular,
            Self::Directory => FileType::Directory,
            Self::Symlink { .. } => FileType::Symlink,
            Self::CharDevice(_) => FileType::CharDevice,
            Self::BlockDevice(_) => FileType::BlockDevice,
            Self::Fifo => FileType::Fifo,
            Self::Socket => FileType::Socket,
        }
    }
}

/// The owner of a new inode (decided by the VFS: fsuid, and the parent's group when the parent
/// is set-gid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// One directory entry handed out by `Inode::read_dir`.
#[derive(Clone, Copy, Debug)]
pub struct DirEntry<'a> {
    pub ino: u64,
    pub file_type: FileType,
    pub name: &'a str,
    /// The offset to pass to `read_dir` to continue after this entry (`d_off`).
    pub next_offset: u64,
}

bitflags::bitflags! {
    /// `renameat2` flags (Linux values).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RenameFlags: u32 {
        /// Fail with `EEXIST` instead of replacing the target.
        const NOREPLACE = 1;
        /// Swap source and target atomically; both must exist.
        const EXCHANGE = 2;
        /// Leave a whiteout behind (overlay file systems); not supported.
        const WHITEOUT = 4;
    }
}

/// An object in a file system. `Any` lets an implementation recognise its own inodes (a
/// rename or link between two of its directories).
pub trait Inode: Any + Send + Sync {
    fn metadata(&self) -> Metadata;

    /// The type never changes, so implementations can answer without a lock.
    fn file_type(&self) -> FileType {
        self.metadata().file_type
    }

    /// Applies `change`; permission checks are the caller's.
    fn set_attributes(&self, change: &AttrChange) -> EResult<()>;

    /// Reads from a regular file at `offset`; 0 at or past the end.
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> EResult<usize> {
        Err(self.not_a_file())
    }

    /// Writes to a regular file at `offset`, growing it (a gap reads as zeros).
    fn write_at(&self, _offset: u64, _buf: &[u8]) -> EResult<usize> {
        Err(self.not_a_file())
    }

    /// Writes at the current end of the file (`O_APPEND`); returns the bytes written and the
    /// new end. Implementations should make finding the end and writing one step.
    fn append(&self, buf: &[u8]) -> EResult<(usize, u64)> {
        let end = self.metadata().size;
        let written = self.write_at(end, buf)?;
        Ok((written, end + written as u64))
    }

    /// Sets a regular file's size, dropping or zero-extending its data.
    fn truncate(&self, _size: u64) -> EResult<()> {
        Err(self.not_a_file())
    }

    /// A symlink's target.
    fn readlink(&self) -> EResult<String> {
        Err(Errno::EINVAL)
    }

    /// A "magic" symlink (procfs's `/proc/<pid>/fd/N`, `cwd`, `root`): following it lands on
    /// a location directly instead of resolving the text `readlink` shows, so it reaches
    /// files without a path — pipes, deleted files — as on Linux. `None` for ordinary links.
    fn jump(&self) -> Option<EResult<super::mount::Location>> {
        None
    }

    /// The entry `name` of a directory; `..` is the parent (the root's parent is the root).
    /// The VFS never asks for `.`.
    fn lookup(&self, _name: &str) -> EResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }

    /// Creates `name` in a directory; `EEXIST` if it exists.
    fn create(
        &self,
        _name: &str,
        _kind: NodeKind<'_>,
        _permissions: u32,
        _owner: Owner,
    ) -> EResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }

    /// Adds `name` as another link to `target` (never a directory).
    fn link(&self, _name: &str, _target: &Arc<dyn Inode>) -> EResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Removes the non-directory `name`.
    fn unlink(&self, _name: &str) -> EResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Removes the empty directory `name`.
    fn rmdir(&self, _name: &str) -> EResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Moves `old_name` of this directory to `new_name` of `new_dir` (`renameat2` semantics).
    fn rename(
        &self,
        _old_name: &str,
        _new_dir: &Arc<dyn Inode>,
        _new_name: &str,
        _flags: RenameFlags,
    ) -> EResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Calls `emit` for the entries at and after `offset` (0 is `.`, 1 is `..`) until it returns
    /// false. Offsets must stay valid while entries come and go, so that `getdents64` across
    /// several calls returns every entry that was there throughout exactly once.
    fn read_dir(&self, _offset: u64, _emit: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> EResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// A file whose text the kernel generates (procfs, debugfs): open files read it through a
    /// snapshot (see `pseudo`) instead of `read_at`.
    fn as_generated(&self) -> Option<&super::pseudo::GeneratedFile> {
        None
    }

    /// The error for a data operation on something that is not a regular file.
    fn not_a_file(&self) -> Errno {
        if self.file_type() == FileType::Directory {
            Errno::EISDIR
        } else {
            Errno::EINVAL
        }
    }
}

/// Whether two handles name the same inode.
pub fn same_inode(a: &Arc<dyn Inode>, b: &Arc<dyn Inode>) -> bool {
    core::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}
