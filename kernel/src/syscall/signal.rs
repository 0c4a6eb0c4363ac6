//! Signal system calls: dispositions, masks, sending, and returning from handlers.

use super::Call;
use super::time_arg::{self, Format};
use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::task::{self, signal};

/// Linux's kernel `sigset_t` is 8 bytes; anything else is EINVAL.
const SIGSET_SIZE: u64 = 8;

pub fn rt_sigaction(call: &mut Call<'_>) -> EResult<u64> {
    let [number, new, old, size, ..] = call.args.0;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let number = signal::check_signal(number)?;
    let new_action = if new != 0 {
        let mut bytes = [0u8; 32];
        let source = UserSlice::new(new, 32)?;
        task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
        Some(signal::Action::from_bytes(&bytes))
    } else {
        None
    };
    let previous = task::with_current(|p| p.signals.action(number))?;
    if old != 0 {
        let target = UserSlice::new(old, 32)?;
        task::with_current(|p| p.space.lock().write(target, &previous.to_bytes()))??;
    }
    if let Some(action) = new_action {
        task::with_current(|p| p.signals.set_action(number, action))??;
    }
    Ok(0)
}

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

pub fn rt_sigprocmask(call: &mut Call<'_>) -> EResult<u64> {
    let [how, new, old, size, ..] = call.args.0;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new_mask = if new != 0 {
        if how > SIG_SETMASK {
            return Err(Errno::EINVAL);
        }
        let mut bytes = [0u8; 8];
        let source = UserSlice::new(new, 8)?;
        task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
        Some(u64::from_le_bytes(bytes))
    } else {
        None
    };
    let current = task::with_current(|p| p.signals.blocked)?;
    if old != 0 {
        let target = UserSlice::new(old, 8)?;
        task::with_current(|p| p.space.lock().write(target, &current.to_le_bytes()))??;
    }
    if let Some(mask) = new_mask {
        let blocked = match how {
            SIG_BLOCK => current | mask,
            SIG_UNBLOCK => current & !mask,
            _ => mask,
        };
        task::with_current(|p| p.signals.set_blocked(blocked))?;
    }
    Ok(0)
}

/// `rt_sigsuspend(mask, size)`: waits for a signal with `mask` as the blocked set; the old mask
/// comes back once the signal's handler returns (or at once if no handler runs).
pub fn rt_sigsuspend(call: &mut Call<'_>) -> EResult<u64> {
    let [mask, size, ..] = call.args.0;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut bytes = [0u8; 8];
    let source = UserSlice::new(mask, 8)?;
    task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
    let mask = u64::from_le_bytes(bytes);
    task::with_current(|p| {
        let old = p.signals.blocked;
        // `set_blocked` keeps SIGKILL and SIGSTOP unblockable.
        p.signals.set_blocked(mask);
        p.signals.restore_mask = Some(old);
    })?;
    super::process::wait_for_signal()
}

/// `sigaltstack(ss, old_ss)`: the thread's alternate signal stack for `SA_ONSTACK` handlers.
/// Changing it while running on it is `EPERM`; `old_ss` shows `SS_ONSTACK` then.
pub fn sigaltstack(call: &mut Call<'_>) -> EResult<u64> {
    let [new, old, ..] = call.args.0;
    let sp = call.frame.rsp;
    let requested = match new {
        0 => None,
        address => {
            let mut bytes = [0u8; 24];
            let source = UserSlice::new(address, 24)?;
            task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
            Some(bytes)
        }
    };
    let current = task::with_current(|p| p.signals.alt_stack)?;
    if let Some(bytes) = requested {
        if current.contains(sp) {
            return Err(Errno::EPERM);
        }
        let stack = signal::AltStack::from_bytes(&bytes)?;
        task::with_current(|p| p.signals.alt_stack = stack)?;
    }
    if old != 0 {
        let target = UserSlice::new(old, 24)?;
        task::with_current(|p| p.space.lock().write(target, &current.to_bytes(sp)))??;
    }
    Ok(0)
}

pub fn rt_sigpending(call: &mut Call<'_>) -> EResult<u64> {
    let [target, size, ..] = call.args.0;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let target = UserSlice::new(target, 8)?;
    task::with_current(|p| {
        let pending = p.signals.pending_mask() & p.signals.blocked;
        p.space.lock().write(target, &pending.to_le_bytes())
    })??;
    Ok(0)
}

pub fn rt_sigreturn(call: &mut Call<'_>) -> EResult<u64> {
    if task::signal_return(call.frame)? {
        Ok(call.frame.rax)
    } else {
        Ok(0) // as Linux's `badframe`: the forced SIGSEGV follows
    }
}

fn sender_info(code: i32) -> EResult<signal::Info> {
    Ok(signal::Info {
        code,
        pid: task::with_current(|p| p.pid)?,
        status: 0,
        address: 0,
    })
}

/// Signal 0 only checks the target exists.
fn check_signal_or_zero(number: u64) -> EResult<u8> {
    if number == 0 {
        Ok(0)
    } else {
        signal::check_signal(number)
    }
}

pub fn kill(call: &mut Call<'_>) -> EResult<u64> {
    let [pid, number, ..] = call.args.0;
    let signal = check_signal_or_zero(number)?;
    let info = sender_info(signal::SI_USER)?;
    let pid = pid as i32;
    let (me, my_group, sender) = task::with_current(|p| (p.tgid, p.pgid, p.identity.clone()))?;
    let sender = Some(&sender);
    match pid {
        p if p > 0 => task::send_signal(p as u32, signal, info, sender)?,
        0 => task::send_signal_to(|p| p.pgid == my_group, signal, info, sender)?,
        // Everyone it may signal but init and itself; `EPERM` for the others is not an error.
        -1 => match task::send_signal_to(|p| p.tgid != 1 && p.tgid != me, signal, info, sender) {
            Err(Errno::EPERM) => {}
            other => other?,
        },
        group => task::send_signal_to(|p| p.pgid == group.unsigned_abs(), signal, info, sender)?,
    }
    Ok(0)
}

pub fn tkill(call: &mut Call<'_>) -> EResult<u64> {
    let [tid, number, ..] = call.args.0;
    let signal = check_signal_or_zero(number)?;
    let tid = u32::try_from(tid as i64).map_err(|_| Errno::EINVAL)?;
    let sender = task::with_current(|p| p.identity.clone())?;
    task::send_signal(tid, signal, sender_info(signal::SI_TKILL)?, Some(&sender))?;
    Ok(0)
}

/// `tgkill(tgid, tid, sig)`: the thread `tid`, only if it belongs to process `tgid` (`ESRCH`
/// otherwise, so a recycled thread id is never hit by mistake).
pub fn tgkill(call: &mut Call<'_>) -> EResult<u64> {
    let [tgid, tid, number, ..] = call.args.0;
    let signal = check_signal_or_zero(number)?;
    let (tgid, tid) = (tgid as i64, tid as i64);
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let tid = u32::try_from(tid).map_err(|_| Errno::EINVAL)?;
    if crate::task::info::get(tid).is_none_or(|t| i64::from(t.tgid) != tgid) {
        return Err(Errno::ESRCH);
    }
    let sender = task::with_current(|p| p.identity.clone())?;
    task::send_signal(tid, signal, sender_info(signal::SI_TKILL)?, Some(&sender))?;
    Ok(0)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: waits for one of `set` to be pending and
/// takes it without running its handler (what busybox init's main loop does).
pub fn rt_sigtimedwait(call: &mut Call<'_>) -> EResult<u64> {
    let [set, info, timeout, size, ..] = call.args.0;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut bytes = [0u8; 8];
    let source = UserSlice::new(set, 8)?;
    task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
    // SIGKILL and SIGSTOP cannot be waited for (Linux removes them from the set): taken here,
    // they would be handed to the caller instead of killing or stopping it.
    let unwaitable = (1u64 << (signal::SIGKILL - 1)) | (1u64 << (signal::SIGSTOP - 1));
    let wanted = u64::from_le_bytes(bytes) & !unwaitable;
    let deadline = time_arg::deadline(timeout, Format::Timespec)?;
    // While it waits, the set counts as awaited: such a signal is queued even if ignored by
    // default (SIGCHLD for busybox init) and wakes the sleeper even though it is blocked.
    task::with_current(|p| p.signals.awaited = wanted)?;
    let mut taken = None;
    let waited = SIGWAIT.wait_until_deadline(deadline, || {
        taken = task::with_current(|p| p.signals.take_from(wanted))
            .ok()
            .flatten();
        taken.is_some()
    });
    task::with_current(|p| p.signals.awaited = 0)?;
    match (waited?, taken) {
        (true, Some((signal, details))) => {
            if info != 0 {
                let target = UserSlice::new(info, 128)?;
                let encoded = signal::Signals::encode_info(signal, &details);
                task::with_current(|p| p.space.lock().write(target, &encoded))??;
            }
            Ok(u64::from(signal))
        }
        _ => Err(Errno::EAGAIN),
    }
}

/// What `rt_sigtimedwait` sleeps on; posting a signal wakes the task directly.
static SIGWAIT: task::WaitQueue = task::WaitQueue::new();
