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
