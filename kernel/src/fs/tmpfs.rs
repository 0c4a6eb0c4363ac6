//! tmpfs: a file system that lives in kernel memory — the root file system (unpacked from the
//! initramfs) and mountable anywhere, like Linux's shmem-backed tmpfs.
//!
//! Storage: a regular file is a sparse map of 4 KiB pages (a hole costs nothing and reads as
//! zeros, so `st_blocks` tells the truth and `truncate` to a large size is free); a directory is
//! two maps, name → cookie and cookie → entry. Cookies only grow, which is what makes readdir
//! offsets stable: `getdents64` resumes at "the first cookie not below the offset", so entries
//! that stay are seen exactly once however the directory changes in between (as in Linux's
//! `simple_offset` tmpfs directories). Offsets 0 and 1 are `.` and `..`.
//!
//! Locking: every inode has its own lock, and at most one inode lock is held at a time. Changes
//! to the directory tree (create, link, unlink, rmdir, rename) also take the file system's
//! `tree` lock for their whole duration, so multi-inode changes are atomic with respect to each
//! other and a rename's loop check sees a stable tree.
//!
//! Page memory is counted per file system against a limit (half of RAM by default, as Linux's
//! `size=50%`); running out is `ENOSPC`, never a kernel allocation failure.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::collections::btree_map::Entry;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::clock;
use super::inode::{DirEntry, FileSystem, Inode, NodeKind, Owner, RenameFlags};
use super::metadata::{AttrChange, DeviceId, FileType, Metadata, PERMISSION_BITS, Timespec};
use super::path::NAME_MAX;
use crate::errno::{EResult, Errno};

const PAGE: usize = crate::mm::PAGE_SIZE;
/// Linux's `MAX_LFS_FILESIZE` on 64-bit.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;
/// tmpfs reports a directory's size as 20 bytes per entry, `.` and `..` included.
const BOGO_DIRENT_SIZE: u64 = 20;
/// `stat`'s `st_blksize`.
const BLOCK_SIZE: u32 = 4096;

static NEXT_ANON_MINOR: AtomicU32 = AtomicU32::new(1);

/// An anonymous device number (major 0) for a file system without a disk, as Linux's
/// `get_anon_bdev` hands out.
pub fn anonymous_device() -> DeviceId {
    DeviceId::new(0, NEXT_ANON_MINOR.fetch_add(1, Ordering::Relaxed))
}

/// One tmpfs instance.
pub struct Tmpfs {
    device: DeviceId,
    next_ino: AtomicU64,
    tree: spin::Mutex<()>,
    root: Arc<TmpfsInode>,
    pages_used: AtomicU64,
    page_limit: u64,
}

/// File data pages of every tmpfs (`Shmem` in `/proc/meminfo`, `sharedram` in `sysinfo`).
static ALL_PAGES_USED: AtomicU64 = AtomicU64::new(0);

pub fn pages_in_use() -> u64 {
    ALL_PAGES_USED.load(Ordering::Relaxed)
}

impl Tmpfs {
    /// A tmpfs as `mount -t tmpfs` makes it: root directory `1777` owned by root, limited to
    /// half of RAM.
    pub fn new() -> Arc<Self> {
        Self::with_options(0o1777, Self::default_page_limit())
    }

    /// Half of RAM, in pages.
    pub fn default_page_limit() -> u64 {
        (crate::mm::frame_allocator::stats().total / 2).max(16)
    }

    /// A tmpfs with the given root permissions and page limit.
    pub fn with_options(root_permissions: u32, page_limit: u64) -> Arc<Self> {
        Arc::new_cyclic(|fs: &Weak<Tmpfs>| {
            let device = anonymous_device();
            let root = TmpfsInode::new(
                fs.clone(),
                device,
                1,
                NodeKind::Directory,
                root_permissions,
                Owner { uid: 0, gid: 0 },
                Weak::new(),
            );
            Self {
                device,
                next_ino: AtomicU64::new(2),
                tree: spin::Mutex::new(()),
                root,
                pages_used: AtomicU64::new(0),
                page_limit,
            }
        })
    }

    /// Pages of file data currently allocated.
    pub fn pages_used(&self) -> u64 {
        self.pages_used.load(Ordering::Relaxed)
    }

    fn reserve_page(&self) -> EResult<()> {
        self.pages_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < self.page_limit).then_some(used + 1)
            })
            .map(|_| ())
            .map_err(|_| Errno::ENOSPC)?;
        ALL_PAGES_USED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn release_pages(&self, count: u64) {
        self.pages_used.fetch_sub(count, Ordering::Relaxed);
        ALL_PAGES_USED.fetch_sub(count, Ordering::Relaxed);
    }
}

impl Drop for Tmpfs {
    /// Dismantles the tree level by level: dropping the root would otherwise drop each
    /// directory from inside its parent's drop, one nested call per level, and a tree a few
    /// thousand directories deep (which any user can make) would overflow the kernel stack.
    fn drop(&mut self) {
        let mut directories = alloc::vec![self.root.clone()];
        while let Some(dir) = directories.pop() {
            let children = dir
                .with_dir(|entries, _| {
                    entries.by_name.clear();
                    core::mem::take(&mut entries.by_cookie)
                })
                .unwrap_or_default();
            for child in children.into_values() {
                if child.inode.file_type == FileType::Directory {
                    directories.push(child.inode);
                }
            }
        }
    }
}

impl FileSystem for Tmpfs {
    fn type_name(&self) -> &'static str {
        "tmpfs"
    }

    fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    fn device(&self) -> DeviceId {
        self.device
    }
}

/// An inode of a tmpfs.
pub struct TmpfsInode {
    ino: u64,
    file_type: FileType,
    device: DeviceId,
    fs: Weak<Tmpfs>,
    this: Weak<TmpfsInode>,
    state: spin::Mutex<State>,
}

struct State {
    attrs: Attrs,
    body: Body,
}

struct Attrs {
    permissions: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    rdev: DeviceId,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    btime: Timespec,
}

enum Body {
    File(FileData),
    Dir(Directory),
    Symlink(String),
    /// Device nodes, FIFOs and sockets: metadata only.
    Special,
}

#[derive(Default)]
struct FileData {
    size: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
}

struct Directory {
    by_cookie: BTreeMap<u64, Child>,
    /// The same names, shared with `by_cookie`.
    by_name: BTreeMap<Arc<str>, u64>,
    next_cookie: u64,
    /// Empty for the root, whose `..` is itself.
    parent: Weak<TmpfsInode>,
    /// Set by rmdir: nothing may be created in it any more.
    removed: bool,
}

struct Child {
    name: Arc<str>,
    inode: Arc<TmpfsInode>,
}

impl Directory {
    fn new(parent: Weak<TmpfsInode>) -> Self {
        Self {
            by_cookie: BTreeMap::new(),
            by_name: BTreeMap::new(),
            // 0 and 1 are `.` and `..`.
            next_cookie: 2,
            parent,
            removed: false,
        }
    }

    fn get(&self, name: &str) -> Option<&Arc<TmpfsInode>> {
        let cookie = self.by_name.get(name)?;
        self.by_cookie.get(cookie).map(|child| &child.inode)
    }

    fn insert(&mut self, name: &str, inode: Arc<TmpfsInode>) {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let name: Arc<str> = Arc::from(name);
        self.by_name.insert(name.clone(), cookie);
        self.by_cookie.insert(cookie, Child { name, inode });
    }

    fn remove(&mut self, name: &str) -> Option<Arc<TmpfsInode>> {
        let cookie = self.by_name.remove(name)?;
        self.by_cookie.remove(&cookie).map(|child| child.inode)
    }

    /// Puts `inode` under the existing `name`, keeping its position.
    fn replace(&mut self, name: &str, inode: Arc<TmpfsInode>) {
        if let Some(cookie) = self.by_name.get(name)
            && let Some(child) = self.by_cookie.get_mut(cookie)
        {
            child.inode = inode;
        }
    }

    fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }
}

fn now() -> Timespec {
    clock()
}

/// A zeroed page, or `ENOSPC` if the heap cannot provide one.
fn zeroed_page() -> EResult<Box<[u8]>> {
    let mut page = Vec::new();
    page.try_reserve_exact(PAGE).map_err(|_| Errno::ENOSPC)?;
    page.resize(PAGE, 0);
    Ok(page.into_boxed_slice())
}

impl TmpfsInode {
    fn new(
        fs: Weak<Tmpfs>,
        device: DeviceId,
        ino: u64,
        kind: NodeKind<'_>,
        permissions: u32,
        owner: Owner,
        parent: Weak<TmpfsInode>,
    ) -> Arc<Self> {
        let time = now();
        let (body, rdev, nlink) = match kind {
            NodeKind::Regular => (Body::File(FileData::default()), DeviceId::default(), 1),
            NodeKind::Directory => (Body::Dir(Directory::new(parent)), DeviceId::default(), 2),
            NodeKind::Symlink { target } => {
                (Body::Symlink(String::from(target)), DeviceId::default(), 1)
            }
            NodeKind::CharDevice(dev) | NodeKind::BlockDevice(dev) => (Body::Special, dev, 1),
            NodeKind::Fifo | NodeKind::Socket => (Body::Special, DeviceId::default(), 1),
        };
        Arc::new_cyclic(|this| Self {
            ino,
            file_type: kind.file_type(),
            device,
            fs,
            this: this.clone(),
            state: spin::Mutex::new(State {
                attrs: Attrs {
                    permissions: permissions & PERMISSION_BITS,
                    nlink,
                    uid: owner.uid,
                    gid: owner.gid,
                    rdev,
                    atime: time,
                    mtime: time,
                    ctime: time,
                    btime: time,
                },
                body,
            }),
        })
    }

    fn fs(&self) -> EResult<Arc<Tmpfs>> {
        self.fs.upgrade().ok_or(Errno::EIO)
    }

    fn this(&self) -> Arc<TmpfsInode> {
        self.this
            .upgrade()
            .expect("an inode is only used through an Arc")
    }

    /// `other` as an inode of the same tmpfs, or `EXDEV`.
    fn same_fs(&self, other: &Arc<dyn Inode>) -> EResult<Arc<TmpfsInode>> {
        let any: Arc<dyn Any + Send + Sync> = other.clone();
        let other = any.downcast::<TmpfsInode>().map_err(|_| Errno::EXDEV)?;
        if Weak::ptr_eq(&self.fs, &other.fs) {
            Ok(other)
        } else {
            Err(Errno::EXDEV)
        }
    }

    /// Runs `f` on this directory's entries and attributes; `ENOTDIR` for other inodes.
    fn with_dir<R>(&self, f: impl FnOnce(&mut Directory, &mut Attrs) -> R) -> EResult<R> {
        let mut state = self.state.lock();
        let State { attrs, body } = &mut *state;
        match body {
            Body::Dir(dir) => Ok(f(dir, attrs)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn child(&self, name: &str) -> EResult<Option<Arc<TmpfsInode>>> {
        self.with_dir(|dir, _| dir.get(name).cloned())
    }

    fn touch_dir(&self) {
        let time = now();
        let mut state = self.state.lock();
        state.attrs.mtime = time;
        state.attrs.ctime = time;
    }

    fn touch_ctime(&self) {
        self.state.lock().attrs.ctime = now();
    }

    fn adjust_nlink(&self, delta: i32) -> EResult<()> {
        let mut state = self.state.lock();
        state.attrs.nlink = state
            .attrs
            .nlink
            .checked_add_signed(delta)
            .ok_or(Errno::EMLINK)?;
        Ok(())
    }

    fn set_parent(&self, parent: &Arc<TmpfsInode>) {
        let _ = self.with_dir(|dir, _| dir.parent = Arc::downgrade(parent));
    }

    /// Marks an emptied directory as gone (rmdir, or replaced by a rename).
    fn mark_removed(&self) {
        let _ = self.with_dir(|dir, attrs| {
            dir.removed = true;
            attrs.nlink = 0;
            attrs.ctime = now();
        });
    }

    fn is_empty_dir(&self) -> bool {
        self.with_dir(|dir, _| dir.is_empty()).unwrap_or(false)
    }

    fn parent_dir(&self) -> Option<Arc<TmpfsInode>> {
        self.with_dir(|dir, _| dir.parent.upgrade()).ok().flatten()
    }

    /// Whether `self` is `ancestor` or lies below it.
    fn is_within(&self, ancestor: &TmpfsInode) -> bool {
        let mut current = self.this();
        loop {
            if current.ino == ancestor.ino {
                return true;
            }
            match current.parent_dir() {
                Some(parent) => current = parent,
                None => return false,
            }
        }
    }

    fn file_write(&self, state: &mut State, offset: u64, buf: &[u8]) -> EResult<usize> {
        let Body::File(data) = &mut state.body else {
            return Err(self.not_a_file());
        };
        if buf.is_empty() {
            return Ok(0);
        }
        offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= MAX_FILE_SIZE)
            .ok_or(Errno::EFBIG)?;
        let fs = self.fs()?;
        let mut written = 0usize;
        while written < buf.len() {
            let position = offset + written as u64;
            let index = position / PAGE as u64;
            let within = (position % PAGE as u64) as usize;
            let chunk = (PAGE - within).min(buf.len() - written);
            let page = match data.pages.entry(index) {
                Entry::Occupied(page) => page.into_mut(),
                Entry::Vacant(slot) => {
                    let page = fs
                        .reserve_page()
                        .and_then(|()| zeroed_page().inspect_err(|_| fs.release_pages(1)));
                    match page {
                        Ok(page) => slot.insert(page),
                        // A short write if anything was written, as Linux reports a full disk.
                        Err(error) if written == 0 => return Err(error),
                        Err(_) => break,
                    }
                }
            };
            page[within..within + chunk].copy_from_slice(&buf[written..written + chunk]);
            written += chunk;
        }
        data.size = data.size.max(offset + written as u64);
        let time = now();
        state.attrs.mtime = time;
        state.attrs.ctime = time;
        Ok(written)
    }
}

impl Drop for TmpfsInode {
    fn drop(&mut self) {
        if let Body::File(data) = &self.state.get_mut().body
            && let Some(fs) = self.fs.upgrade()
        {
            fs.release_pages(data.pages.len() as u64);
        }
    }
}

impl Inode for TmpfsInode {
    fn metadata(&self) -> Metadata {
        let state = self.state.lock();
        let (size, blocks) = match &state.body {
            Body::File(data) => (data.size, data.pages.len() as u64 * (PAGE as u64 / 512)),
            Body::Dir(dir) => ((dir.by_cookie.len() as u64 + 2) * BOGO_DIRENT_SIZE, 0),
            Body::Symlink(target) => (target.len() as u64, 0),
            Body::Special => (0, 0),
        };
        Metadata {
            dev: self.device,
            ino: self.ino,
            file_type: self.file_type,
            permissions: state.attrs.permissions,
            nlink: state.attrs.nlink,
            uid: state.attrs.uid,
            gid: state.attrs.gid,
            rdev: state.attrs.rdev,
            size,
            blksize: BLOCK_SIZE,
            blocks,
            atime: state.attrs.atime,
            mtime: state.attrs.mtime,
            ctime: state.attrs.ctime,
            btime: state.attrs.btime,
        }
    }

    fn file_type(&self) -> FileType {
        self.file_type
    }

    fn set_attributes(&self, change: &AttrChange) -> EResult<()> {
        let mut state = self.state.lock();
        if let Some(permissions) = change.permissions {
            state.attrs.permissions = permissions & PERMISSION_BITS;
        }
        if let Some(uid) = change.uid {
            state.attrs.uid = uid;
        }
        if let Some(gid) = change.gid {
            state.attrs.gid = gid;
        }
        if let Some(time) = change.atime {
            state.attrs.atime = time;
        }
        if let Some(time) = change.mtime {
            state.attrs.mtime = time;
        }
        if let Some(time) = change.ctime {
            state.attrs.ctime = time;
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> EResult<usize> {
        let mut state = self.state.lock();
        let Body::File(data) = &state.body else {
            return Err(self.not_a_file());
        };
        if offset >= data.size || buf.is_empty() {
            return Ok(0);
        }
        let count = buf.len().min((data.size - offset) as usize);
        let mut done = 0;
        while done < count {
            let position = offset + done as u64;
            let within = (position % PAGE as u64) as usize;
            let chunk = (PAGE - within).min(count - done);
            let target = &mut buf[done..done + chunk];
            match data.pages.get(&(position / PAGE as u64)) {
                Some(page) => target.copy_from_slice(&page[within..within + chunk]),
                None => target.fill(0),
            }
            done += chunk;
        }
        // relatime: only when the last access predates the last change, or is a day old.
        let time = now();
        if state.attrs.atime <= state.attrs.mtime
            || state.attrs.atime <= state.attrs.ctime
            || time.sec - state.attrs.atime.sec >= 24 * 60 * 60
        {
            state.attrs.atime = time;
        }
        Ok(count)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> EResult<usize> {
        let mut state = self.state.lock();
        self.file_write(&mut state, offset, buf)
    }

    fn append(&self, buf: &[u8]) -> EResult<(usize, u64)> {
        let mut state = self.state.lock();
        let end = match &state.body {
            Body::File(data) => data.size,
            _ => return Err(self.not_a_file()),
        };
        let written = self.file_write(&mut state, end, buf)?;
        Ok((written, end + written as u64))
    }

    fn truncate(&self, size: u64) -> EResult<()> {
        if size > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let mut state = self.state.lock();
        let Body::File(data) = &mut state.body else {
            return Err(self.not_a_file());
        };
        if size < data.size {
            let first_dropped = size.div_ceil(PAGE as u64);
            let dropped = data.pages.split_off(&first_dropped);
            if let Ok(fs) = self.fs() {
                fs.release_pages(dropped.len() as u64);
            }
            // The kept part of a partial last page must read as zeros if the file grows again.
            let within = (size % PAGE as u64) as usize;
            if within != 0
                && let Some(page) = data.pages.get_mut(&(size / PAGE as u64))
            {
                page[within..].fill(0);
            }
        }
        data.size = size;
        let time = now();
        state.attrs.mtime = time;
        state.attrs.ctime = time;
        Ok(())
    }

    fn readlink(&self) -> EResult<String> {
        match &self.state.lock().body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, name: &str) -> EResult<Arc<dyn Inode>> {
        let found = self.with_dir(|dir, _| {
            if name == ".." {
                return Some(dir.parent.upgrade().unwrap_or_else(|| self.this()));
            }
            if dir.removed {
                return None;
            }
            dir.get(name).cloned()
        })?;
        found
            .map(|inode| inode as Arc<dyn Inode>)
            .ok_or(Errno::ENOENT)
    }

    fn create(
        &self,
        name: &str,
        kind: NodeKind<'_>,
        permissions: u32,
        owner: Owner,
    ) -> EResult<Arc<dyn Inode>> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let fs = self.fs()?;
        let _tree = fs.tree.lock();
        let parent = self.this.clone();
        let created = self.with_dir(|dir, attrs| {
            if dir.removed {
                return Err(Errno::ENOENT);
            }
            if dir.get(name).is_some() {
                return Err(Errno::EEXIST);
            }
            if kind == NodeKind::Directory {
                attrs.nlink = attrs.nlink.checked_add(1).ok_or(Errno::EMLINK)?;
            }
            let ino = fs.next_ino.fetch_add(1, Ordering::Relaxed);
            let inode = TmpfsInode::new(
                self.fs.clone(),
                self.device,
                ino,
                kind,
                permissions,
                owner,
                parent,
            );
            dir.insert(name, inode.clone());
            let time = now();
            attrs.mtime = time;
            attrs.ctime = time;
            Ok(inode)
        })??;
        Ok(created)
    }

    fn link(&self, name: &str, target: &Arc<dyn Inode>) -> EResult<()> {
        let target = self.same_fs(target)?;
        if target.file_type == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let fs = self.fs()?;
        let _tree = fs.tree.lock();
        self.with_dir(|dir, _| {
            if dir.removed {
                Err(Errno::ENOENT)
            } else if dir.get(name).is_some() {
                Err(Errno::EEXIST)
            } else {
                Ok(())
            }
        })??;
        {
            let mut state = target.state.lock();
            // An unlinked file cannot get a name again.
            if state.attrs.nlink == 0 {
                return Err(Errno::ENOENT);
            }
            state.attrs.nlink = state.attrs.nlink.checked_add(1).ok_or(Errno::EMLINK)?;
            state.attrs.ctime = now();
        }
        self.with_dir(|dir, _| dir.insert(name, target.clone()))?;
        self.touch_dir();
        Ok(())
    }

    fn unlink(&self, name: &str) -> EResult<()> {
        let fs = self.fs()?;
        let _tree = fs.tree.lock();
        let victim = self.child(name)?.ok_or(Errno::ENOENT)?;
        if victim.file_type == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        self.with_dir(|dir, _| dir.remove(name))?;
        self.touch_dir();
        victim.adjust_nlink(-1)?;
        victim.touch_ctime();
        Ok(())
    }

    fn rmdir(&self, name: &str) -> EResult<()> {
        let fs = self.fs()?;
        let _tree = fs.tree.lock();
        let victim = self.child(name)?.ok_or(Errno::ENOENT)?;
        if victim.file_type != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !victim.is_empty_dir() {
            return Err(Errno::ENOTEMPTY);
        }
        victim.mark_removed();
        self.with_dir(|dir, _| dir.remove(name))?;
        self.adjust_nlink(-1)?;
        self.touch_dir();
        Ok(())
    }

    fn rename(
        &self,
        old_name: &str,
        new_dir: &Arc<dyn Inode>,
        new_name: &str,
        flags: RenameFlags,
    ) -> EResult<()> {
        if flags.contains(RenameFlags::WHITEOUT)
            || flags.contains(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE)
        {
            return Err(Errno::EINVAL);
        }
        if new_name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let new_dir = self.same_fs(new_dir)?;
        if new_dir.file_type != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let fs = self.fs()?;
        let _tree = fs.tree.lock();
        let old_dir = self.this();
        let source = self.child(old_name)?.ok_or(Errno::ENOENT)?;
        let target = new_dir.with_dir(|dir, _| {
            if dir.removed {
                Err(Errno::ENOENT)
            } else {
                Ok(dir.get(new_name).cloned())
            }
        })??;
        let exchange = flags.contains(RenameFlags::EXCHANGE);
        if exchange && target.is_none() {
            return Err(Errno::ENOENT);
        }
        if flags.contains(RenameFlags::NOREPLACE) && target.is_some() {
            return Err(Errno::EEXIST);
        }
        if target.as_ref().is_some_and(|t| Arc::ptr_eq(t, &source)) {
            return Ok(());
        }
        let source_is_dir = source.file_type == FileType::Directory;
        let target_is_dir = target
            .as_ref()
            .is_some_and(|t| t.file_type == FileType::Directory);
        // A directory cannot move below itself.
        if source_is_dir && new_dir.is_within(&source) {
            return Err(Errno::EINVAL);
        }
        if exchange && target_is_dir && old_dir.is_within(target.as_ref().expect("checked")) {
            return Err(Errno::EINVAL);
        }
        if let (Some(target), false) = (&target, exchange) {
            if source_is_dir && !target_is_dir {
                return Err(Errno::ENOTDIR);
            }
            if !source_is_dir && target_is_dir {
                return Err(Errno::EISDIR);
            }
            if target_is_dir && !target.is_empty_dir() {
                return Err(Errno::ENOTEMPTY);
            }
        }
        let moves_between_dirs = !Arc::ptr_eq(&old_dir, &new_dir);
        if exchange {
            let target = target.expect("checked above");
            old_dir.with_dir(|dir, _| dir.replace(old_name, target.clone()))?;
            new_dir.with_dir(|dir, _| dir.replace(new_name, source.clone()))?;
            if moves_between_dirs {
                if source_is_dir {
                    source.set_parent(&new_dir);
                }
                if target_is_dir {
                    target.set_parent(&old_dir);
                }
                if source_is_dir != target_is_dir {
                    let delta = if source_is_dir { 1 } else { -1 };
                    new_dir.adjust_nlink(delta)?;
                    old_dir.adjust_nlink(-delta)?;
                }
            }
            target.touch_ctime();
        } else {
            if let Some(target) = &target {
                new_dir.with_dir(|dir, _| dir.remove(new_name))?;
                if target_is_dir {
                    target.mark_removed();
                    new_dir.adjust_nlink(-1)?;
                } else {
                    target.adjust_nlink(-1)?;
                    target.touch_ctime();
                }
            }
            old_dir.with_dir(|dir, _| dir.remove(old_name))?;
            new_dir.with_dir(|dir, _| dir.insert(new_name, source.clone()))?;
            if source_is_dir && moves_between_dirs {
                source.set_parent(&new_dir);
                old_dir.adjust_nlink(-1)?;
                new_dir.adjust_nlink(1)?;
            }
        }
        source.touch_ctime();
        old_dir.touch_dir();
        if moves_between_dirs {
            new_dir.touch_dir();
        }
        Ok(())
    }

    fn read_dir(&self, offset: u64, emit: &mut dyn FnMut(&DirEntry<'_>) -> bool) -> EResult<()> {
        let state = self.state.lock();
        let Body::Dir(dir) = &state.body else {
            return Err(Errno::ENOTDIR);
        };
        if offset == 0
            && !emit(&DirEntry {
                ino: self.ino,
                file_type: FileType::Directory,
                name: ".",
                next_offset: 1,
            })
        {
            return Ok(());
        }
        if offset <= 1 {
            let parent_ino = dir.parent.upgrade().map_or(self.ino, |p| p.ino);
            if !emit(&DirEntry {
                ino: parent_ino,
                file_type: FileType::Directory,
                name: "..",
                next_offset: 2,
            }) {
                return Ok(());
            }
        }
        for (&cookie, child) in dir.by_cookie.range(offset.max(2)..) {
            let entry = DirEntry {
                ino: child.inode.ino,
                file_type: child.inode.file_type,
                name: &child.name,
                next_offset: cookie + 1,
            };
            if !emit(&entry) {
                break;
            }
        }
        Ok(())
    }
}
