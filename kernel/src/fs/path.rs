//! Path resolution with Linux's rules (fs/namei.c): where a walk starts, `.` and `..` (across
//! mount points, never above the caller's root), symlinks (at most 40 per resolution, `ELOOP`
//! beyond), trailing slashes (the result must be a directory; a trailing symlink is followed),
//! `ENAMETOOLONG` for a component over 255 bytes or a path of 4096 or more, and the search
//! permission every directory on the way needs.
//!
//! The walk is iterative — a stack of pending path strings, one per symlink being expanded —
//! because it runs on 32 KiB kernel stacks with untrusted input.
//!
//! Operations that create or remove the last component (`mkdir`, `unlink`, `rename`, ...)
//! resolve only the parent (`resolve_parent`) and get the last component back as a `Last`,
//! as Linux's `filename_parentat` does; each decides for itself what `.`, `..`, `/` and a
//! trailing slash mean.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::credentials::{Access, Credentials, check_access};
use super::metadata::FileType;
use super::mount::{Location, cross_mounts};
use crate::errno::{EResult, Errno};

/// Longest path, including its terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest name in a directory (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Symlinks one resolution may follow (`MAXSYMLINKS`).
pub const MAX_SYMLINK_FOLLOWS: u32 = 40;

/// A process's view of the tree (Linux's `fs_struct`): root, working directory and umask.
/// `fork` clones it; `chdir` and `chroot` replace a field.
#[derive(Clone, Debug)]
pub struct FsContext {
    pub root: Location,
    pub cwd: Location,
    pub umask: u32,
}

impl FsContext {
    /// Root and working directory at `root`, umask 022 (Linux's for init).
    pub fn new(root: Location) -> Self {
        Self {
            cwd: root.clone(),
            root,
            umask: 0o022,
        }
    }
}

/// Where a relative path starts: the working directory (`AT_FDCWD`) or a directory file
/// descriptor's location.
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    Cwd,
    Dir(&'a Location),
}

/// Whether a symlink in the last component is followed (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`,
/// `lstat` say no). Symlinks elsewhere in a path are always followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
}

/// What the last component of a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastKind {
    /// A name to look up or create.
    Normal,
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// The path is `/` (or only slashes).
    Root,
}

/// The last component of a path whose parent was resolved; the name borrows from the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Last<'p> {
    pub name: Cow<'p, str>,
    pub kind: LastKind,
    /// The path ended in `/`: the result must be (or become) a directory.
    pub trailing_slash: bool,
}

impl Last<'_> {
    /// The same, owning its name (when the path it came from is about to go away).
    pub fn into_owned(self) -> Last<'static> {
        Last {
            name: Cow::Owned(self.name.into_owned()),
            kind: self.kind,
            trailing_slash: self.trailing_slash,
        }
    }
}

/// One resolution: the caller's context and the running count of symlinks followed (shared by
/// every step, so `open(O_CREAT)` through symlinks obeys the same limit).
pub struct Walker<'a> {
    ctx: &'a FsContext,
    creds: &'a Credentials,
    links: u32,
}

/// A path still to be walked: the caller's (borrowed) or a symlink's target (owned).
struct Pending<'p> {
    text: Cow<'p, str>,
    pos: usize,
}

impl<'p> Pending<'p> {
    fn new(text: Cow<'p, str>) -> Self {
        Self { text, pos: 0 }
    }

    /// The next component's byte range.
    fn next_component(&mut self) -> Option<(usize, usize)> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos] == b'/' {
            self.pos += 1;
        }
        if self.pos == bytes.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < bytes.len() && bytes[self.pos] != b'/' {
            self.pos += 1;
        }
        Some((start, self.pos))
    }

    fn is_exhausted(&self) -> bool {
        self.text.as_bytes()[self.pos..].iter().all(|&b| b == b'/')
    }

    fn has_trailing_slash(&self) -> bool {
        self.text.ends_with('/')
    }
}

/// Checks a path given by userspace (or a symlink target) before walking it.
pub fn check_path(path: &str) -> EResult<()> {
    if path.is_empty() {
        Err(Errno::ENOENT)
    } else if path.len() >= PATH_MAX {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(())
    }
}

impl<'a> Walker<'a> {
    pub fn new(ctx: &'a FsContext, creds: &'a Credentials) -> Self {
        Self {
            ctx,
            creds,
            links: 0,
        }
    }

    /// The location a walk starting `at` begins from for a relative path.
    pub fn start(&self, at: At<'_>) -> Location {
        match at {
            At::Cwd => self.ctx.cwd.clone(),
            At::Dir(location) => location.clone(),
        }
    }

    /// Resolves the whole path.
    pub fn resolve(&mut self, start: Location, path: &str, follow: Follow) -> EResult<Location> {
        check_path(path)?;
        self.walk(start, path, follow, false)
    }

    /// Resolves everything but the last component, which must then be searched for in (or
    /// created in) the returned directory.
    pub fn resolve_parent<'p>(
        &mut self,
        start: Location,
        path: &'p str,
    ) -> EResult<(Location, Last<'p>)> {
        check_path(path)?;
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            let last = Last {
                name: Cow::Borrowed("/"),
                kind: LastKind::Root,
                trailing_slash: false,
            };
            return Ok((self.ctx.root.clone(), last));
        }
        let trailing_slash = trimmed.len() != path.len();
        let (dir_part, name) = match trimmed.rfind('/') {
            Some(slash) => (&trimmed[..=slash], &trimmed[slash + 1..]),
            None => ("", trimmed),
        };
        let parent = if dir_part.is_empty() {
            start
        } else {
            self.walk(start, dir_part, Follow::Yes, true)?
        };
        if !parent.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let kind = match name {
            "." => LastKind::Dot,
            ".." => LastKind::DotDot,
            _ => LastKind::Normal,
        };
        let last = Last {
            name: Cow::Borrowed(name),
            kind,
            trailing_slash,
        };
        Ok((parent, last))
    }

    /// Looks `name` up in `dir` the way a walk step does — directory check, search permission,
    /// name length — and crosses mounts on the result. `.` and `..` are handled.
    pub fn lookup(&self, dir: &Location, name: &str) -> EResult<Location> {
        match name {
            "." => {
                self.may_search(dir)?;
                Ok(dir.clone())
            }
            ".." => {
                self.may_search(dir)?;
                parent_of(dir, &self.ctx.root)
            }
            _ => Ok(cross_mounts(self.lookup_here(dir, name)?)),
        }
    }

    /// Like `lookup` for a normal name, but without crossing into what is mounted on the
    /// result: the entry itself, as unlink and rename see it.
    pub fn lookup_here(&self, dir: &Location, name: &str) -> EResult<Location> {
        self.may_search(dir)?;
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let inode = dir.inode.lookup(name)?;
        Ok(Location {
            mount: dir.mount.clone(),
            inode,
        })
    }

    /// `lookup_here`, with `ENOENT` as `None`.
    pub fn lookup_optional(&self, dir: &Location, name: &str) -> EResult<Option<Location>> {
        match self.lookup_here(dir, name) {
            Ok(location) => Ok(Some(location)),
            Err(Errno::ENOENT) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn may_search(&self, dir: &Location) -> EResult<()> {
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        check_access(self.creds, &dir.metadata(), Access::EXEC)
    }

    /// Counts one symlink and returns its target.
    pub fn follow_link(&mut self, link: &Location) -> EResult<String> {
        self.count_link()?;
        let target = link.inode.readlink()?;
        check_path(&target)?;
        Ok(target)
    }

    /// Counts one symlink; if it is a magic one (`Inode::jump`), where it lands.
    pub fn jump_link(&mut self, link: &Location) -> Option<EResult<Location>> {
        let jump = link.inode.jump()?;
        Some(self.count_link().and(jump))
    }

    fn count_link(&mut self) -> EResult<()> {
        self.links += 1;
        if self.links > MAX_SYMLINK_FOLLOWS {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }

    /// The core walk. `must_be_dir` is a directory requirement on the result inherited from a
    /// trailing slash further out (a followed symlink that ended a path with `/`).
    fn walk(
        &mut self,
        start: Location,
        path: &str,
        follow: Follow,
        mut must_be_dir: bool,
    ) -> EResult<Location> {
        let mut current = if path.starts_with('/') {
            self.ctx.root.clone()
        } else {
            start
        };
        // The caller's path, and on top of it the symlink targets being expanded.
        let mut base = Pending::new(Cow::Borrowed(path));
        let mut base_live = true;
        let mut links: Vec<Pending<'_>> = Vec::new();
        loop {
            let top = match links.last_mut() {
                Some(top) => top,
                None if base_live => &mut base,
                None => break,
            };
            let Some((from, to)) = top.next_component() else {
                if links.pop().is_none() {
                    base_live = false;
                }
                continue;
            };
            let trailing = top.has_trailing_slash();
            let top_done = top.is_exhausted();
            let name = &top.text[from..to];
            let is_dot = matches!(name, "." | "..");
            let mut next = self.lookup(&current, name)?;
            if top_done && links.pop().is_none() {
                base_live = false;
            }
            let is_final = top_done && links.is_empty() && !base_live;
            let dir_required = is_final && (must_be_dir || trailing);
            let follows = !is_dot
                && next.file_type() == FileType::Symlink
                && (!is_final || follow == Follow::Yes || dir_required);
            if follows && let Some(landed) = self.jump_link(&next) {
                next = landed?;
            } else if follows {
                let target = self.follow_link(&next)?;
                if target.starts_with('/') {
                    current = self.ctx.root.clone();
                }
                if is_final {
                    must_be_dir = dir_required;
                }
                links.push(Pending::new(Cow::Owned(target)));
                continue;
            }
            current = next;
            if dir_required && !current.is_dir() {
                return Err(Errno::ENOTDIR);
            }
        }
        if must_be_dir && !current.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(current)
    }
}

/// `..` of a directory: the caller's root stays put; the root of a mount leaves through its
/// mount point first; what is mounted on the parent is crossed into.
pub fn parent_of(dir: &Location, root: &Location) -> EResult<Location> {
    let mut current = dir.clone();
    loop {
        if current.same_as(root) {
            return Ok(current);
        }
        if !current.is_mount_root() {
            break;
        }
        match current.mount.mountpoint() {
            Some(point) => current = point.clone(),
            None => return Ok(current),
        }
    }
    let parent = current.inode.lookup("..")?;
    Ok(cross_mounts(Location {
        mount: current.mount,
        inode: parent,
    }))
}

/// The absolute path of the directory `dir` as seen from `root` (`getcwd`, `/proc/mounts`):
/// `ENOENT` if it was removed or is not below `root`, `ENOTDIR` for a non-directory,
/// `ENAMETOOLONG` if the path would not fit in `PATH_MAX`.
/// `path` taken relative to the absolute directory path `base`, with `.`, `..` and repeated
/// slashes resolved by name only (symlinks are not followed): a description of where a file
/// was opened, not a path to resolve.
pub fn lexical_join(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let whole = if path.starts_with('/') { "" } else { base };
    for part in whole.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let mut joined = String::new();
    for part in &parts {
        joined.push('/');
        joined.push_str(part);
    }
    if joined.is_empty() {
        joined.push('/');
    }
    joined
}

pub fn path_of(dir: &Location, root: &Location) -> EResult<String> {
    if !dir.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let mut names: Vec<String> = Vec::new();
    let mut length = 0;
    let mut current = dir.clone();
    loop {
        if current.same_as(root) {
            let mut path = String::with_capacity(length.max(1));
            for name in names.iter().rev() {
                path.push('/');
                path.push_str(name);
            }
            if path.is_empty() {
                path.push('/');
            }
            return Ok(path);
        }
        if current.is_mount_root() {
            match current.mount.mountpoint() {
                Some(point) => {
                    current = point.clone();
                    continue;
                }
                None => return Err(Errno::ENOENT),
            }
        }
        let meta = current.metadata();
        if meta.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let parent = current.inode.lookup("..")?;
        let mut found = None;
        parent.read_dir(2, &mut |entry| {
            if entry.ino == meta.ino && entry.file_type == FileType::Directory {
                found = Some(String::from(entry.name));
                false
            } else {
                true
            }
        })?;
        let name = found.ok_or(Errno::ENOENT)?;
        // Every step adds at least "/x", so this also ends the walk.
        length += name.len() + 1;
        if length >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        names.push(name);
        current = Location {
            mount: current.mount,
            inode: parent,
        };
    }
}
