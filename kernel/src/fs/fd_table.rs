//! A process's file descriptor table: small integers naming shared open files.
//!
//! Linux's rules: a new descriptor is the lowest free number; each descriptor has its own
//! close-on-exec flag while offset and status flags belong to the shared `OpenFile`; `dup2`
//! onto itself is a validity check; numbers at or over the limit (`RLIMIT_NOFILE`, 1024 by
//! default) are `EMFILE` when allocating and `EBADF` when named.
//!
//! Operations that close a file return it instead of dropping it, so the caller can release
//! its own locks first (closing a device can call into its driver).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::file::OpenFile;
use crate::errno::{EResult, Errno};

/// Linux's default soft `RLIMIT_NOFILE`.
pub const DEFAULT_FD_LIMIT: usize = 1024;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    close_on_exec: bool,
}

/// `fork` clones it: the child's descriptors name the parent's open files.
#[derive(Clone)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
    limit: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FdTable {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_FD_LIMIT)
    }

    pub fn with_limit(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// `setrlimit(RLIMIT_NOFILE)`: existing descriptors above it stay open, as on Linux.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn slot(&self, fd: i32) -> EResult<&Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|index| self.slots.get(index))
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    fn slot_mut(&mut self, fd: i32) -> EResult<&mut Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|index| self.slots.get_mut(index))
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// The open file behind `fd`, or `EBADF`.
    pub fn get(&self, fd: i32) -> EResult<Arc<OpenFile>> {
        self.slot(fd).map(|slot| slot.file.clone())
    }

    /// Puts `file` at the lowest free descriptor; `EMFILE` if none is below the limit.
    ///
    /// The table takes a reference of its own and never drops the caller's: callers hold the
    /// scheduler's lock here (`with_current`), and when a failed insert dropped the last
    /// reference to a new pipe end, its release woke the other side, which takes that lock:
    /// the machine deadlocked (found by sysfuzz, seed 1002). The caller drops its reference
    /// after the lock is released.
    pub fn insert(&mut self, file: &Arc<OpenFile>, close_on_exec: bool) -> EResult<i32> {
        self.insert_from(0, file, close_on_exec)
    }

    /// `F_DUPFD`: the lowest free descriptor at or above `min` (`EINVAL` if `min` is over the
    /// limit, `EMFILE` if nothing is free).
    pub fn insert_from(
        &mut self,
        min: i32,
        file: &Arc<OpenFile>,
        close_on_exec: bool,
    ) -> EResult<i32> {
        let min = usize::try_from(min).map_err(|_| Errno::EINVAL)?;
        if min >= self.limit {
            return Err(Errno::EINVAL);
        }
        let index = (min..self.limit)
            .find(|&i| self.slots.get(i).is_none_or(Option::is_none))
            .ok_or(Errno::EMFILE)?;
        self.put(index, file.clone(), close_on_exec);
        Ok(index as i32)
    }

    /// Stores into `index`, growing the table; returns what was there.
    fn put(&mut self, index: usize, file: Arc<OpenFile>, close_on_exec: bool) -> Option<Slot> {
        if self.slots.len() <= index {
            self.slots.resize(index + 1, None);
        }
        self.slots[index].replace(Slot {
            file,
            close_on_exec,
        })
    }

    /// `close`: frees the descriptor and returns its file.
    pub fn close(&mut self, fd: i32) -> EResult<Arc<OpenFile>> {
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|index| self.slots.get_mut(index))
            .and_then(Option::take)
            .ok_or(Errno::EBADF)?;
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        Ok(slot.file)
    }

    /// `dup`: the lowest free descriptor, close-on-exec clear.
    pub fn dup(&mut self, fd: i32) -> EResult<i32> {
        let file = self.get(fd)?;
        self.insert(&file, false)
    }

    /// `dup2(old, new)`: `new` names `old`'s file (close-on-exec clear), closing what `new` named
    /// (returned). `old == new` only checks that `old` is open. `EBADF` for a bad `old` or a
    /// `new` outside the limit.
    pub fn dup2(&mut self, old: i32, new: i32) -> EResult<Option<Arc<OpenFile>>> {
        let file = self.get(old)?;
        if old == new {
            return Ok(None);
        }
        self.replace(new, file, false)
    }

    /// `dup3(old, new, flags)`: like `dup2` but `old == new` is `EINVAL`, and `O_CLOEXEC` in the
    /// flags becomes `close_on_exec`.
    pub fn dup3(
        &mut self,
        old: i32,
        new: i32,
        close_on_exec: bool,
    ) -> EResult<Option<Arc<OpenFile>>> {
        if old == new {
            return Err(Errno::EINVAL);
        }
        let file = self.get(old)?;
        self.replace(new, file, close_on_exec)
    }

    fn replace(
        &mut self,
        fd: i32,
        file: Arc<OpenFile>,
        close_on_exec: bool,
    ) -> EResult<Option<Arc<OpenFile>>> {
        let index = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        if index >= self.limit {
            return Err(Errno::EBADF);
        }
        Ok(self
            .put(index, file, close_on_exec)
            .map(|previous| previous.file))
    }

    /// `F_GETFD`.
    pub fn close_on_exec(&self, fd: i32) -> EResult<bool> {
        self.slot(fd).map(|slot| slot.close_on_exec)
    }

    /// `F_SETFD`.
    pub fn set_close_on_exec(&mut self, fd: i32, close_on_exec: bool) -> EResult<()> {
        self.slot_mut(fd)?.close_on_exec = close_on_exec;
        Ok(())
    }

    /// `execve`: closes every close-on-exec descriptor; returns their files.
    pub fn close_for_exec(&mut self) -> Vec<Arc<OpenFile>> {
        let closed = self
            .slots
            .iter_mut()
            .filter(|slot| slot.as_ref().is_some_and(|s| s.close_on_exec))
            .filter_map(|slot| slot.take().map(|s| s.file))
            .collect();
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        closed
    }

    /// `close_range(first, last, flags)`: closes the open descriptors in `first..=last`, or
    /// with `cloexec_only` (`CLOSE_RANGE_CLOEXEC`) marks them close-on-exec instead.
    pub fn close_range(&mut self, first: u32, last: u32, cloexec_only: bool) -> Vec<Arc<OpenFile>> {
        let mut closed = Vec::new();
        let end = (last as usize).saturating_add(1).min(self.slots.len());
        for slot in self.slots.iter_mut().take(end).skip(first as usize) {
            if cloexec_only {
                if let Some(slot) = slot {
                    slot.close_on_exec = true;
                }
            } else if let Some(slot) = slot.take() {
                closed.push(slot.file);
            }
        }
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        closed
    }

    /// The open descriptors in order: (fd, file, close-on-exec).
    pub fn iter(&self) -> impl Iterator<Item = (i32, &Arc<OpenFile>, bool)> {
        self.slots.iter().enumerate().filter_map(|(fd, slot)| {
            slot.as_ref()
                .map(|slot| (fd as i32, &slot.file, slot.close_on_exec))
        })
    }

    /// How many descriptors are open.
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }
}
