//! `poll`, `ppoll`, `select`, `pselect6`: waiting for descriptors to become ready.
//!
//! Readiness comes from the object behind each descriptor (`OpenFile::poll`: terminals, pipes,
//! regular files). A wait with a timeout polls once per timer tick; one without sleeps on the objects'
//! wait queues, and a signal ends either with `EINTR`, as Linux does.

use alloc::vec;
use alloc::vec::Vec;

use super::Call;
use super::time_arg::{self, Format};
use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::task;

const POLLIN: u16 = 0x1;
const POLLOUT: u16 = 0x4;
const POLLNVAL: u16 = 0x20;
/// Linux's limit on `nfds` (RLIMIT_NOFILE).
const MAX_FDS: u64 = 1024;

/// POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not.
const ALWAYS: u16 = 0x8 | 0x10 | POLLNVAL;

/// What `fd` is ready for, among `events` (`POLLNVAL` for a bad descriptor).
fn ready(fd: i32, events: u16) -> u16 {
    match super::files::file(fd) {
        Ok(file) => file.poll().bits() & (events | ALWAYS),
        Err(_) => POLLNVAL,
    }
}

/// Waits until `check` reports something ready, the deadline passes (`None`: forever), or a
/// signal arrives.
fn wait(deadline_ns: Option<u64>, mut check: impl FnMut() -> EResult<usize>) -> EResult<usize> {
    let mut outcome = Ok(0);
    task::READINESS.wait_until_deadline(deadline_ns, || {
        outcome = check();
        !matches!(outcome, Ok(0))
    })?;
    outcome
}

fn poll_fds(address: u64, count: u64, deadline: Option<u64>) -> EResult<u64> {
    if count > MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let len = count as usize * 8;
    let mut raw = crate::mm::fallible::try_vec_zeroed(len)?;
    if len > 0 {
        let source = UserSlice::new(address, len)?;
        task::with_current(|p| p.space.lock().read(source, &mut raw))??;
    }
    let entries: Vec<(i32, u16)> = raw
        .chunks(8)
        .map(|e| {
            (
                i32::from_le_bytes(e[0..4].try_into().expect("4")),
                u16::from_le_bytes(e[4..6].try_into().expect("2")),
            )
        })
        .collect();
    let mut revents = vec![0u16; entries.len()];
    let ready_count = wait(deadline, || {
        let mut n = 0;
        for (i, &(fd, events)) in entries.iter().enumerate() {
            // Negative descriptors are skipped, as poll(2) says.
            revents[i] = if fd < 0 { 0 } else { ready(fd, events) };
            n += usize::from(revents[i] != 0);
        }
        Ok(n)
    })?;
    for (entry, &value) in raw.chunks_mut(8).zip(&revents) {
        entry[6..8].copy_from_slice(&value.to_le_bytes());
    }
    if len > 0 {
        let target = UserSlice::new(address, len)?;
        task::with_current(|p| p.space.lock().write(target, &raw))??;
    }
    Ok(ready_count as u64)
}

pub fn poll(call: &mut Call<'_>) -> EResult<u64> {
    let [fds, count, timeout_ms, ..] = call.args.0;
    let timeout_ms = timeout_ms as i32;
    let deadline = (timeout_ms >= 0)
        .then(|| crate::time::now_ns().saturating_add(timeout_ms as u64 * 1_000_000));
    poll_fds(fds, count, deadline)
}

pub fn ppoll(call: &mut Call<'_>) -> EResult<u64> {
    let [fds, count, timeout, _sigmask, _sigsetsize, ..] = call.args.0;
    let deadline = time_arg::deadline(timeout, Format::Timespec)?;
    poll_fds(fds, count, deadline)
}

/// `select`'s three `fd_set`s: which descriptors are ready, rewritten in place.
fn select_sets(call_args: [u64; 4], deadline: Option<u64>) -> EResult<u64> {
    let [nfds, read_set, write_set, except_set] = call_args;
    if nfds > MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let bytes = (nfds as usize).div_ceil(64) * 8;
    let load = |address: u64| -> EResult<Vec<u8>> {
        let mut set = crate::mm::fallible::try_vec_zeroed(bytes)?;
        if address != 0 && bytes > 0 {
            let source = UserSlice::new(address, bytes)?;
            task::with_current(|p| p.space.lock().read(source, &mut set))??;
        }
        Ok(set)
    };
    let (reads, writes, excepts) = (load(read_set)?, load(write_set)?, load(except_set)?);
    let is_set = |set: &[u8], fd: usize| set[fd / 8] & (1 << (fd % 8)) != 0;
    for fd in 0..nfds as usize {
        let wanted = is_set(&reads, fd) || is_set(&writes, fd) || is_set(&excepts, fd);
        if wanted && ready(fd as i32, 0) == POLLNVAL {
            return Err(Errno::EBADF);
        }
    }
    let mut out = (
        crate::mm::fallible::try_vec_zeroed(bytes)?,
        crate::mm::fallible::try_vec_zeroed(bytes)?,
    );
    let count = wait(deadline, || {
        out = (
            crate::mm::fallible::try_vec_zeroed(bytes)?,
            crate::mm::fallible::try_vec_zeroed(bytes)?,
        );
        let mut n = 0;
        for fd in 0..nfds as usize {
            if is_set(&reads, fd) && ready(fd as i32, POLLIN) & POLLIN != 0 {
                out.0[fd / 8] |= 1 << (fd % 8);
                n += 1;
            }
            if is_set(&writes, fd) && ready(fd as i32, POLLOUT) & POLLOUT != 0 {
                out.1[fd / 8] |= 1 << (fd % 8);
                n += 1;
            }
        }
        Ok(n)
    })?;
    let store = |address: u64, set: &[u8]| -> EResult<()> {
        if address != 0 && bytes > 0 {
            let target = UserSlice::new(address, bytes)?;
            task::with_current(|p| p.space.lock().write(target, set))??;
        }
        Ok(())
    };
    store(read_set, &out.0)?;
    store(write_set, &out.1)?;
    store(except_set, &crate::mm::fallible::try_vec_zeroed(bytes)?)?;
    Ok(count as u64)
}

pub fn select(call: &mut Call<'_>) -> EResult<u64> {
    let [nfds, reads, writes, excepts, timeout, ..] = call.args.0;
    let deadline = time_arg::deadline(timeout, Format::Timeval)?;
    select_sets([nfds, reads, writes, excepts], deadline)
}

pub fn pselect6(call: &mut Call<'_>) -> EResult<u64> {
    let [nfds, reads, writes, excepts, timeout, _sigmask] = call.args.0;
    let deadline = time_arg::deadline(timeout, Format::Timespec)?;
    select_sets([nfds, reads, writes, excepts], deadline)
}
