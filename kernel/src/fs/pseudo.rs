//! Building blocks for file systems whose files the kernel makes up on demand: procfs and
//! debugfs.
//!
//! Nothing here is stored. A generated file's text is produced when it is read (`show`) and a
//! write to it is a command (`store`); a directory lists and finds its entries when asked, so
//! `/proc` can never disagree with the process table. An open file takes one snapshot of the
//! text and serves every read from it, regenerating when a read starts again at offset 0 — what
//! Linux's `seq_file` gives, so a reader that splits its reads never sees a torn line.
//!
//! Inodes are created per lookup, so their identity is their inode number: each file system
//! numbers its objects so that the same object always gets the same number (`path_of` and
//! `getdents64` rely on it).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use super::inode::{DirEntry, Inode};
use super::metadata::{AttrChange, DeviceId, FileType, Metadata, Timespec};
use super::mount::Location;
use crate::errno::{EResult, Errno};

/// What `stat` shows for a generated object.
#[derive(Clone, Copy, Debug)]
pub struct Attributes {
    pub device: DeviceId,
    pub ino: u64,
    pub permissions: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Attributes {
    /// Owned by root.
    pub const fn root(device: DeviceId, ino: u64, permissions: u32) -> Self {
        Self {
            device,
            ino,
            permissions,
            uid: 0,
            gid: 0,
        }
    }

    fn metadata(&self, file_type: FileType, nlink: u32) -> Metadata {
        // Generated objects are as new as the moment they are looked at, as in procfs.
        let now = super::clock();
        Metadata {
            dev: self.device,
            ino: self.ino,
            file_type,
            permissions: self.permissions,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: DeviceId::default(),
            size: 0,
            blksize: 1024,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            btime: Timespec::default(),
        }
    }
}

/// Writes a generated file's current text.
pub type Show = Box<dyn Fn(&mut String) -> EResult<()> + Send + Sync>;
/// Handles a write to a generated file; returns the bytes consumed.
pub type Store = Box<dyn Fn(&[u8]) -> EResult<usize> + Send + Sync>;
/// Decides, beyond the permission bits, whether the caller may open a generated file.
pub type OpenCheck = Box<dyn Fn() -> EResult<()> + Send + Sync>;

/// A file whose text is generated on read; writable if it has a `store`.
pub struct GeneratedFile {
    attributes: Attributes,
    show: Show,
    store: Option<Store>,
    open_check: Option<OpenCheck>,
}

impl GeneratedFile {
    pub fn new(attributes: Attributes, show: Show) -> Arc<Self> {
        Arc::new(Self {
            attributes,
            show,
            store: None,
            open_check: None,
        })
    }

    /// A file `open` refuses unless `open_check` allows (procfs's files that need ptrace
    /// access, which Linux checks when they are opened).
    pub fn with_open_check(attributes: Attributes, show: Show, open_check: OpenCheck) -> Arc<Self> {
        Arc::new(Self {
            attributes,
            show,
            store: None,
            open_check: Some(open_check),
        })
    }

    /// What `open` asks after the permission bits.
    pub fn may_open(&self) -> EResult<()> {
        self.open_check.as_ref().map_or(Ok(()), |check| check())
    }

    pub fn with_store(attributes: Attributes, show: Show, store: Store) -> Arc<Self> {
        Arc::new(Self {
            attributes,
            show,
            store: Some(store),
            open_check: None,
        })
    }

    /// The whole text, made now.
    pub fn generate(&self) -> EResult<Vec<u8>> {
        let mut text = String::new();
        (self.show)(&mut text)?;
        Ok(text.into_bytes())
    }

    /// A write: the file's command handler (`EIO` for a file without one, as Linux's procfs
    /// answers root, whom the permission bits do not stop).
    pub fn store(&self, data: &[u8]) -> EResult<usize> {
        match &self.store {
            Some(store) => store(data),
            None => Err(Errno::EIO),
        }
    }
}

/// Copies `text[offset..]` into `buf`.
pub fn read_from(text: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    let count = buf.len().min(text.len() - start);
    buf[..count].copy_from_slice(&text[start..start + count]);
    count
}

impl Inode for GeneratedFile {
    fn metadata(&self) -> Metadata {
        self.attributes.metadata(FileType::Regular, 1)
    }

    fn file_type(&self) -> FileType {
        FileType::Regular
    }

    fn set_attributes(&self, _change: &AttrChange) -> EResult<()> {
        Err(Errno::EPERM)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> EResult<usize> {
        Ok(read_from(&self.generate()?, offset, buf))
    }

    fn write_at(&self, _offset: u64, buf: &[u8]) -> EResult<usize> {
        self.store(buf)
    }

    fn append(&self, buf: &[u8]) -> EResult<(usize, u64)> {
        Ok((self.store(buf)?, 0))
    }

    /// `O_TRUNC` (every `echo cmd > file` asks for it) is accepted and means nothing.
    fn truncate(&self, _size: u64) -> EResult<()> {
        Ok(())
    }

    fn as_generated(&self) -> Option<&GeneratedFile> {
        Some(self)
    }
}

/// Computes a symlink's target when it is read (`/proc/self`, `/proc/<pid>/fd/N`).
pub type Target = Box<dyn Fn() -> EResult<String> + Send + Sync>;

/// Where a magic link lands (see `Inode::jump`).
pub type Jump = Box<dyn Fn() -> EResult<Location> + Send + Sync>;

pub struct GeneratedLink {
    attributes: Attributes,
    target: Target,
    jump: Option<Jump>,
}

impl GeneratedLink {
    pub fn new(attributes: Attributes, target: Target) -> Arc<Self> {
        Arc::new(Self {
            attributes,
            target,
            jump: None,
        })
    }

    /// A magic link: `readlink` shows `target`, following it lands on `jump`'s location.
    pub fn magic(attributes: Attributes, target: Target, jump: Jump) -> Arc<Self> {
        Arc::new(Self {
            attributes,
            target,
            jump: Some(jump),
        })
    }
}

impl Inode for GeneratedLink {
    fn metadata(&self) -> Metadata {
        self.attributes.metadata(FileType::Symlink, 1)
    }

    fn file_type(&self) -> FileType {
        FileType::Symlink
    }

    fn set_attributes(&self, _change: &AttrChange) -> EResult<()> {
        Err(Errno::EPERM)
    }

    fn readlink(&self) -> EResult<String> {
        (self.target)()
    }

    fn jump(&self) -> Option<EResult<Location>> {
        self.jump.as_ref().map(|jump| jump())
    }
}

/// One entry of a generated directory. `cookie` is its `getdents64` position: unique and
/// stable while the entry exists (at least 2; 0 and 1 are `.` and `..`), so a listing split
/// over several calls stays right while entries come and go.
pub struct Entry {
    pub cookie: u64,
    pub name: String,
    pub inode: Arc<dyn Inode>,
}

/// What a generated directory contains, computed when asked. `dir` is the directory itself,
/// the parent of any subdirectory made.
pub trait Contents: Send + Sync {
    /// Every entry, in increasing `cookie` order.
    fn entries(&self, dir: &Arc<dyn Inode>) -> Vec<Entry>;

    /// The entry `name`; by default found in `entries`.
    fn lookup(&self, dir: &Arc<dyn Inode>, name: &str) -> EResult<Arc<dyn Inode>> {
        self.entries(dir)
            .into_iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.inode)
            .ok_or(Errno::ENOENT)
    }
}

/// A fixed list of entries (debugfs's root, procfs's static part).
pub struct FixedContents(pub Vec<(&'static str, Arc<dyn Inode>)>);

impl Contents for FixedContents {
    fn entries(&self, _dir: &Arc<dyn Inode>) -> Vec<Entry> {
        self.0
            .iter()
            .enumerate()
            .map(|(index, (name, inode))| Entry {
                cookie: index as u64 + 2,
                name: String::from(*name),
                inode: inode.clone(),
            })
            .collect()
    }
}

pub struct GeneratedDir {
    attributes: Attributes,
    this: Weak<GeneratedDir>,
    /// `None` for a root directory, whose `..` is itself.
    parent: Option<Arc<dyn Inode>>,
    contents: Box<dyn Contents>,
}

impl GeneratedDir {
    /// The root directory of a file system.
    pub fn new_root(attributes: Attributes, contents: Box<dyn Contents>) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            attributes,
            this: this.clone(),
            parent: None,
            contents,
        })
    }

    /// A directory inside `parent`.
    pub fn new(
        attributes: Attributes,
        parent: Arc<dyn Inode>,
        contents: Box<dyn Contents>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            attributes,
            this: this.clone(),
            parent: Some(parent),
            contents,
        })
    }

    fn this(&self) -> EResult<Arc<dyn Inode>> {
        let this: Arc<dyn Inode> = self.this.upgrade().ok_or(Errno::ENOENT)?;
        Ok(this)
    }
}

impl Inode for GeneratedDir {
    fn metadata(&self) -> Metadata {
        self.attributes.metadata(FileType::Directory, 2)
    }

    fn file_type(&self) -> FileType {
        FileType::Directory
    }

    fn set_attributes(&self, _change: &AttrChange) -> EResult<()> {
        Err(Errno::EPERM)
    }

    fn lookup(&self, name: &str) -> EResult<Arc<dyn Inode>> {
        if name == ".." {
            return match &self.parent {
                None => self.this(),
                Some(parent) => Ok(parent.clone()),
            };
        }
        self.contents.lookup(&self.this()?, name)
    }

    fn read_dir(&self, offset: u64, emit: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> EResult<()> {
        let parent_ino = self
            .parent
            .as_ref()
            .map_or(self.attributes.ino, |parent| parent.metadata().ino);
        for (cookie, ino, name) in [(0, self.attributes.ino, "."), (1, parent_ino, "..")] {
            if offset <= cookie
                && !emit(&DirEntry {
                    ino,
                    file_type: FileType::Directory,
                    name,
                    next_offset: cookie + 1,
                })
            {
                return Ok(());
            }
        }
        for entry in self.contents.entries(&self.this()?) {
            if entry.cookie < offset {
                continue;
            }
            if !emit(&DirEntry {
                ino: entry.inode.metadata().ino,
                file_type: entry.inode.file_type(),
                name: &entry.name,
                next_offset: entry.cookie + 1,
            }) {
                break;
            }
        }
        Ok(())
    }
}
