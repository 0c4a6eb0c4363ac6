//! Futexes: the kernel half of every userspace lock, condition variable and `pthread_join`.
//!
//! A waiter registers (address space, address) before it re-checks the futex word, so a waker
//! that changes the word and then wakes can never slip between the check and the sleep.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{Pid, SharedSpace, WaitQueue, with_current};
use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::sync::IrqSpinLock;

struct Waiter {
    space: usize,
    address: u64,
    pid: Pid,
    woken: bool,
}

static WAITERS: IrqSpinLock<Vec<Waiter>> = IrqSpinLock::new(Vec::new());
static QUEUE: WaitQueue = WaitQueue::new();

fn key(space: &SharedSpace) -> usize {
    Arc::as_ptr(space) as usize
}

fn woken(pid: Pid) -> bool {
    WAITERS.lock().iter().any(|w| w.pid == pid && w.woken)
}

fn unregister(pid: Pid) {
    WAITERS.lock().retain(|w| w.pid != pid);
}

/// `FUTEX_WAIT`: sleeps while `*address == expected`, until woken, the deadline passes
/// (`ETIMEDOUT`) or a signal arrives (`EINTR`); `EAGAIN` if the word already differs.
pub fn futex_wait(address: u64, expected: u32, deadline_ns: Option<u64>) -> EResult<()> {
    if !address.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let (pid, space) = with_current(|p| (p.pid, Arc::clone(&p.space)))?;
    WAITERS.lock().push(Waiter {
        space: key(&space),
        address,
        pid,
        woken: false,
    });
    let mut word = [0u8; 4];
    let read = UserSlice::new(address, 4).and_then(|slice| space.lock().read(slice, &mut word));
    if let Err(error) = read {
        unregister(pid);
        return Err(error);
    }
    if u32::from_le_bytes(word) != expected {
        unregister(pid);
        return Err(Errno::EAGAIN);
    }
    let result = match QUEUE.wait_until_deadline(deadline_ns, || woken(pid)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Errno::ETIMEDOUT),
        Err(error) => Err(error),
    };
    let was_woken = woken(pid);
    unregister(pid);
    if was_woken { Ok(()) } else { result }
}

/// `FUTEX_WAKE` for the current process: wakes up to `count` waiters on `address`.
pub fn futex_wake(address: u64, count: u32) -> EResult<u32> {
    let space = with_current(|p| Arc::clone(&p.space))?;
    Ok(wake(&space, address, count))
}

/// Wakes up to `count` waiters on (`space`, `address`); returns how many.
pub fn wake(space: &SharedSpace, address: u64, count: u32) -> u32 {
    let key = key(space);
    let mut woken = 0;
    for waiter in WAITERS.lock().iter_mut() {
        if woken == count {
            break;
        }
        if waiter.space == key && waiter.address == address && !waiter.woken {
            waiter.woken = true;
            woken += 1;
        }
    }
    if woken > 0 {
        QUEUE.wake_all();
    }
    woken
}

const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Linux's `ROBUST_LIST_LIMIT`: a list longer than this (or a loop) is abandoned.
const ROBUST_LIST_LIMIT: usize = 2048;

/// A dying thread's robust futexes (Linux's `exit_robust_list`): every futex on the list it
/// registered with `set_robust_list` that it still owns gets `FUTEX_OWNER_DIED`, and a waiter
/// is woken, so a robust mutex's next locker sees `EOWNERDEAD` instead of waiting forever.
///
/// `struct robust_list_head { struct robust_list *next; long futex_offset;
/// struct robust_list *list_op_pending; }`; the list is circular through `head`. Any bad
/// pointer simply ends the walk, as in Linux.
pub fn release_robust_list(space: &SharedSpace, head: u64, tid: Pid) {
    let read = |address: u64| space.lock().read_u64(address).ok();
    let (Some(mut entry), Some(offset), Some(pending)) =
        (read(head), read(head + 8), read(head + 16))
    else {
        return;
    };
    let offset = offset as i64;
    let mut seen = 0;
    while entry != head && entry != 0 && seen < ROBUST_LIST_LIMIT {
        let next = read(entry);
        // The entry being locked or unlocked is handled last (after the list), as in Linux.
        if entry != pending {
            release_robust_futex(space, entry.wrapping_add_signed(offset), tid);
        }
        let Some(next) = next else {
            return;
        };
        entry = next;
        seen += 1;
    }
    if pending != 0 {
        release_robust_futex(space, pending.wrapping_add_signed(offset), tid);
    }
}

fn release_robust_futex(space: &SharedSpace, address: u64, tid: Pid) {
    if !address.is_multiple_of(4) {
        return;
    }
    let Ok(slice) = UserSlice::new(address, 4) else {
        return;
    };
    let mut word = [0u8; 4];
    if space.lock().read(slice, &mut word).is_err() {
        return;
    }
    let value = u32::from_le_bytes(word);
    if value & FUTEX_TID_MASK != tid {
        return;
    }
    let died = (value & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    let Ok(slice) = UserSlice::new(address, 4) else {
        return;
    };
    if space.lock().write(slice, &died.to_le_bytes()).is_ok() && value & FUTEX_WAITERS != 0 {
        wake(space, address, 1);
    }
}

crate::kernel_test!(a_dead_threads_robust_futexes_are_marked_owner_died, {
    use crate::mm::user::{AddressSpace, Protection, RegionKind};
    let fail = |what| crate::selftest::fail(what);
    let mut space = AddressSpace::new().map_err(|_| fail("address space"))?;
    let page = 0x10_0000u64;
    let rw = Protection {
        write: true,
        execute: false,
    };
    space
        .reserve(page, 4096, rw, RegionKind::Anonymous)
        .map_err(|_| fail("reserve"))?;
    // head at +0: next = entry (+64), futex_offset = 8, pending = 0; the entry's next is the
    // head; its futex word (+72) is owned by tid 7 with waiters; a second list entry would be
    // owned by someone else and must stay untouched.
    let (head, entry) = (page, page + 64);
    let mut bytes = [0u8; 128];
    bytes[0..8].copy_from_slice(&entry.to_le_bytes());
    bytes[8..16].copy_from_slice(&8u64.to_le_bytes());
    bytes[64..72].copy_from_slice(&head.to_le_bytes());
    bytes[72..76].copy_from_slice(&(7 | FUTEX_WAITERS).to_le_bytes());
    space.load(page, &bytes).map_err(|_| fail("load"))?;
    let space: SharedSpace = Arc::new(IrqSpinLock::new(space));
    release_robust_list(&space, head, 8);
    let word = |space: &SharedSpace| space.lock().read_u64(entry + 8).map(|w| w as u32);
    // Another owner's futex is left alone.
    crate::check_eq!(word(&space), Ok(7 | FUTEX_WAITERS));
    release_robust_list(&space, head, 7);
    crate::check_eq!(word(&space), Ok(FUTEX_WAITERS | FUTEX_OWNER_DIED));
    // A list that loops back on itself or points nowhere ends the walk.
    release_robust_list(&space, 0xdead_0000, 7);
});
