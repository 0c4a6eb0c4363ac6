//! Who a process is: Linux's real, effective, saved and file-system user and group ids and the
//! supplementary groups, with kernel/sys.c's rules for changing them.
//!
//! Root (effective uid 0) stands for the capabilities Linux would check (`CAP_SETUID`,
//! `CAP_SETGID`, `CAP_KILL`). Everyone else may only move between the ids they already hold,
//! which is what lets a daemon drop privileges for good and a set-uid program switch back and
//! forth. The file-system ids follow the effective ones; the VFS sees them as `Credentials`.

use alloc::vec::Vec;

use crate::errno::{EResult, Errno};
use crate::fs::Credentials;

/// Linux's `NGROUPS_MAX`.
pub const MAX_GROUPS: usize = 65536;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub fs: u32,
}

impl Ids {
    const fn all(id: u32) -> Self {
        Self {
            real: id,
            effective: id,
            saved: id,
            fs: id,
        }
    }

    fn holds(&self, id: u32) -> bool {
        id == self.real || id == self.effective || id == self.saved
    }

    /// `setuid`/`setgid`: with privilege all four change; without, only the effective (and
    /// file-system) id, to the real or saved one.
    fn set(&mut self, id: u32, privileged: bool) -> EResult<()> {
        if privileged {
            *self = Self::all(id);
        } else if id == self.real || id == self.saved {
            self.effective = id;
            self.fs = id;
        } else {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// `setreuid`/`setregid` (`None`: unchanged). The saved id follows the new effective one
    /// when the real id is set or the effective one moves away from the old real id.
    fn set_real_effective(
        &mut self,
        real: Option<u32>,
        effective: Option<u32>,
        privileged: bool,
    ) -> EResult<()> {
        if !privileged {
            if real.is_some_and(|r| r != self.real && r != self.effective) {
                return Err(Errno::EPERM);
            }
            if effective.is_some_and(|e| !self.holds(e)) {
                return Err(Errno::EPERM);
            }
        }
        let old_real = self.real;
        if let Some(r) = real {
            self.real = r;
        }
        if let Some(e) = effective {
            self.effective = e;
        }
        if real.is_some() || effective.is_some_and(|e| e != old_real) {
            self.saved = self.effective;
        }
        self.fs = self.effective;
        Ok(())
    }

    /// `setresuid`/`setresgid`: without privilege each new id must be one already held.
    fn set_all(
        &mut self,
        real: Option<u32>,
        effective: Option<u32>,
        saved: Option<u32>,
        privileged: bool,
    ) -> EResult<()> {
        if !privileged
            && [real, effective, saved]
                .iter()
                .flatten()
                .any(|&id| !self.holds(id))
        {
            return Err(Errno::EPERM);
        }
        if let Some(r) = real {
            self.real = r;
        }
        if let Some(e) = effective {
            self.effective = e;
        }
        if let Some(s) = saved {
            self.saved = s;
        }
        self.fs = self.effective;
        Ok(())
    }
}

/// A user-space id argument: `-1` (as a 32-bit value) means "leave unchanged".
pub fn optional_id(raw: u64) -> Option<u32> {
    let id = raw as u32;
    (id != u32::MAX).then_some(id)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub uid: Ids,
    pub gid: Ids,
    pub groups: Vec<u32>,
}

impl Identity {
    pub fn root() -> Self {
        Self::default()
    }

    /// Root's powers (`capable(CAP_SETUID)` and friends).
    pub fn is_privileged(&self) -> bool {
        self.uid.effective == 0
    }

    /// The identity the VFS checks permissions against.
    pub fn credentials(&self) -> Credentials {
        Credentials::user(self.uid.fs, self.gid.fs, &self.groups)
    }

    pub fn set_uid(&mut self, uid: u32) -> EResult<()> {
        let privileged = self.is_privileged();
        self.uid.set(uid, privileged)
    }

    pub fn set_gid(&mut self, gid: u32) -> EResult<()> {
        let privileged = self.is_privileged();
        self.gid.set(gid, privileged)
    }

    pub fn set_reuid(&mut self, real: Option<u32>, effective: Option<u32>) -> EResult<()> {
        let privileged = self.is_privileged();
        self.uid.set_real_effective(real, effective, privileged)
    }

    pub fn set_regid(&mut self, real: Option<u32>, effective: Option<u32>) -> EResult<()> {
        let privileged = self.is_privileged();
        self.gid.set_real_effective(real, effective, privileged)
    }

    pub fn set_resuid(&mut self, ids: [Option<u32>; 3]) -> EResult<()> {
        let privileged = self.is_privileged();
        self.uid.set_all(ids[0], ids[1], ids[2], privileged)
    }

    pub fn set_resgid(&mut self, ids: [Option<u32>; 3]) -> EResult<()> {
        let privileged = self.is_privileged();
        self.gid.set_all(ids[0], ids[1], ids[2], privileged)
    }

    /// `setgroups`: root only.
    pub fn set_groups(&mut self, groups: Vec<u32>) -> EResult<()> {
        if !self.is_privileged() {
            return Err(Errno::EPERM);
        }
        self.groups = groups;
        Ok(())
    }

    /// Whether this process may send a signal to one with identity `target`
    /// (`check_kill_permission`): root may signal anyone, others only processes whose real or
    /// saved uid is their real or effective uid.
    pub fn may_signal(&self, target: &Identity) -> bool {
        self.is_privileged()
            || [self.uid.real, self.uid.effective]
                .iter()
                .any(|&id| id == target.uid.real || id == target.uid.saved)
    }
    /// Whether this process may look into another one's private state (its memory map,
    /// environment, open files, working and root directories): Linux's `__ptrace_may_access`
    /// for `PTRACE_MODE_READ_FSCREDS`, the rule procfs applies. The reader's file-system uid and
    /// gid must be the target's real, effective and saved ones, and the target dumpable (not
    /// `PR_SET_DUMPABLE` 0, not changed credentials since), unless the reader is root
    /// (`CAP_SYS_PTRACE`). A process's own threads are always allowed; the caller checks that,
    /// as it knows the thread groups.
    pub fn may_read_process(&self, target: &Identity, target_dumpable: bool) -> bool {
        if self.is_privileged() {
            return true;
        }
        let same = |ids: &Ids, id: u32| ids.real == id && ids.effective == id && ids.saved == id;
        same(&target.uid, self.uid.fs) && same(&target.gid, self.gid.fs) && target_dumpable
    }

    /// Whether a change from `self` to `new` makes the process undumpable, as Linux's
    /// `commit_creds` does (with `fs.suid_dumpable` 0) when the effective or file-system ids
    /// change: memory read while privileged must not become readable to the new user.
    pub fn change_clears_dumpable(&self, new: &Identity) -> bool {
        self.uid.effective != new.uid.effective
            || self.uid.fs != new.uid.fs
            || self.gid.effective != new.gid.effective
            || self.gid.fs != new.gid.fs
    }
}

crate::kernel_test!(uid_changes_follow_linux_rules, {
    let mut id = Identity::root();
    // setresuid by root, then unprivileged moves among the held ids only.
    crate::check!(id.set_resuid([Some(1000), Some(1000), Some(0)]).is_ok());
    crate::check!(!id.is_privileged());
    crate::check_eq!(id.set_uid(2000), Err(Errno::EPERM));
    crate::check!(
        id.set_reuid(None, Some(0)).is_ok(),
        "back to the saved root"
    );
    crate::check!(id.is_privileged());
    // Root's setuid drops everything for good.
    crate::check!(id.set_uid(1000).is_ok());
    crate::check_eq!(id.uid, Ids::all(1000));
    crate::check_eq!(id.set_reuid(None, Some(0)), Err(Errno::EPERM));
    crate::check_eq!(id.set_groups(alloc::vec![1]), Err(Errno::EPERM));
    // setreuid: changing the real id makes the saved id follow the effective one.
    let mut id = Identity::root();
    crate::check!(id.set_reuid(Some(5), Some(6)).is_ok());
    crate::check_eq!(
        (id.uid.real, id.uid.effective, id.uid.saved, id.uid.fs),
        (5, 6, 6, 6)
    );
    crate::check!(id.set_reuid(None, Some(5)).is_ok());
    // Effective back to real: the saved id stays.
    crate::check_eq!(id.uid.saved, 6);
    // Signals: same real/saved uid or root.
    let (mut a, mut b) = (Identity::root(), Identity::root());
    crate::check!(a.set_uid(1).is_ok() && b.set_uid(2).is_ok());
    crate::check!(!a.may_signal(&b) && Identity::root().may_signal(&b) && a.may_signal(&a));
    crate::check_eq!(optional_id(u64::from(u32::MAX)), None);
    crate::check_eq!(optional_id(0xffff_ffff_ffff_ffff), None);
    crate::check_eq!(optional_id(7), Some(7));
});

crate::kernel_test!(reading_another_process_needs_its_ids_and_dumpable, {
    let user = |uid: u32, gid: u32| {
        let mut id = Identity::root();
        let _ = id.set_gid(gid);
        let _ = id.set_uid(uid);
        id
    };
    let reader = user(1000, 1000);
    crate::check!(reader.may_read_process(&user(1000, 1000), true));
    crate::check!(
        !reader.may_read_process(&user(1000, 1000), false),
        "undumpable"
    );
    crate::check!(
        !reader.may_read_process(&user(1000, 0), true),
        "another group"
    );
    crate::check!(!reader.may_read_process(&Identity::root(), true));
    // A saved uid of root is enough to refuse: the target could switch back to it.
    let mut setuid_like = user(0, 1000);
    crate::check!(
        setuid_like
            .set_resuid([Some(1000), Some(1000), Some(0)])
            .is_ok()
    );
    crate::check!(!reader.may_read_process(&setuid_like, true));
    crate::check!(Identity::root().may_read_process(&setuid_like, false));
    crate::check!(Identity::root().change_clears_dumpable(&reader));
    crate::check!(!reader.change_clears_dumpable(&reader.clone()));
});
