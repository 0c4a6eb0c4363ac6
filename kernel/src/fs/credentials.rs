//! Who is asking, and Linux's rules for what they may do with an inode.
//!
//! The checks are `generic_permission` and friends from fs/namei.c and fs/attr.c, with root
//! standing for the capabilities Linux gives it (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, `CAP_CHOWN`,
//! `CAP_FSETID`, `CAP_MKNOD`): root may read and write anything and search any directory, but
//! executes a file only if some execute bit is set.

use alloc::vec::Vec;

use super::metadata::{FileType, Metadata, S_ISGID, S_ISUID, S_ISVTX, S_IXGRP};
use crate::errno::{EResult, Errno};

/// The identity file-system checks use: Linux's fsuid, fsgid and supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Credentials {
    pub fn root() -> Self {
        Self {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }

    pub fn user(uid: u32, gid: u32, groups: &[u32]) -> Self {
        Self {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Owner of the inode, or root (`inode_owner_or_capable`).
    pub fn owns(&self, meta: &Metadata) -> bool {
        self.is_root() || self.uid == meta.uid
    }
}

bitflags::bitflags! {
    /// What an access asks for; the values are `access(2)`'s `R_OK`, `W_OK`, `X_OK`
    /// (`F_OK` is the empty set).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Access: u32 {
        const READ = 4;
        const WRITE = 2;
        const EXEC = 1;
    }
}

/// Linux's `generic_permission`: `EACCES` unless `creds` may do all of `wanted` to the inode.
pub fn check_access(creds: &Credentials, meta: &Metadata, wanted: Access) -> EResult<()> {
    let perm = meta.permissions;
    let granted = if creds.uid == meta.uid {
        perm >> 6
    } else if creds.in_group(meta.gid) {
        perm >> 3
    } else {
        perm
    } & 0o7;
    if granted & wanted.bits() == wanted.bits() {
        return Ok(());
    }
    if creds.is_root() {
        // CAP_DAC_OVERRIDE: everything except executing a file no one may execute.
        let executes_file = wanted.contains(Access::EXEC) && !meta.is_dir();
        if !executes_file || perm & 0o111 != 0 {
            return Ok(());
        }
    }
    Err(Errno::EACCES)
}

/// Linux's `may_linkat` with `fs.protected_hardlinks = 1` (Debian's default): a hard link
/// pins its target, so a user may not make one to a file of someone else's that a later
/// security update would want gone (a set-uid program) or that it could not read and write
/// itself — unless it owns the file or is root (`CAP_FOWNER`). Anyone may link a regular file
/// that is neither set-uid nor executable set-gid and that they may read and write. `EPERM`
/// otherwise.
pub fn may_link_to(creds: &Credentials, target: &Metadata) -> EResult<()> {
    let mode = target.permissions;
    let harmless = target.file_type == FileType::Regular
        && mode & S_ISUID == 0
        && mode & (S_ISGID | S_IXGRP) != S_ISGID | S_IXGRP
        && check_access(creds, target, Access::READ | Access::WRITE).is_ok();
    if harmless || creds.owns(target) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// The sticky-directory rule (`check_sticky`): in a sticky directory only the victim's owner,
/// the directory's owner or root may delete or rename the victim; `EPERM` otherwise.
pub fn check_sticky(creds: &Credentials, dir: &Metadata, victim: &Metadata) -> EResult<()> {
    if dir.permissions & S_ISVTX == 0
        || creds.is_root()
        || creds.uid == victim.uid
        || creds.uid == dir.uid
    {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `chown` rules (`chown_ok`/`chgrp_ok`): only root gives a file away; the owner may change its
/// group to one of their own groups. Asking for the current value still needs the right.
pub fn check_chown(
    creds: &Credentials,
    meta: &Metadata,
    uid: Option<u32>,
    gid: Option<u32>,
) -> EResult<()> {
    if creds.is_root() {
        return Ok(());
    }
    let owner = creds.uid == meta.uid;
    let uid_ok = uid.is_none_or(|uid| owner && uid == meta.uid);
    let gid_ok = gid.is_none_or(|gid| owner && (gid == meta.gid || creds.in_group(gid)));
    if uid_ok && gid_ok {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Whether an inode of this type gets `EROFS` for writes on a read-only mount (device nodes
/// and FIFOs do not: writing to them does not change the file system).
pub fn write_needs_writable_mount(file_type: FileType) -> bool {
    matches!(
        file_type,
        FileType::Regular | FileType::Directory | FileType::Symlink
    )
}
