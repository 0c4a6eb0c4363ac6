//! Sleeping until something happens (input arrives, a pipe has room), interruptibly.
//!
//! A waiter registers and marks itself sleeping under the scheduler's lock, then re-checks its
//! condition before giving up the CPU, so a wake-up between the check and the sleep is never
//! lost: the waker finds it sleeping and makes it runnable again.
//!
//! Deadlines (`nanosleep`, timed `poll`, `futex` and `sigtimedwait`) use the same mechanism: a
//! timed waiter also registers on one kernel-wide timer queue and lowers the earliest deadline;
//! the timer tick wakes that queue once the earliest deadline has passed, and every waiter
//! re-checks its own. Sleepers therefore show as `S`, not `R`, and cost nothing between ticks.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Pid, SCHEDULER, State, schedule, signal_pending, with_current};
use crate::errno::{EResult, Errno};
use crate::sync::IrqSpinLock;

pub struct WaitQueue {
    waiters: IrqSpinLock<VecDeque<Pid>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        Self {
            waiters: IrqSpinLock::new(VecDeque::new()),
        }
    }

    /// Blocks the current task until `ready()` holds; `EINTR` if a signal arrives first.
    /// In the idle context (no task), it just halts between checks.
    pub fn wait_until(&self, ready: impl FnMut() -> bool) -> EResult<()> {
        self.wait(ready, signal_pending)
    }

    /// Like `wait_until`, but only a fatal signal ends the wait early (Linux's
    /// `TASK_KILLABLE`): for waits whose caller cannot be interrupted half-way.
    pub fn wait_killable(&self, ready: impl FnMut() -> bool) -> EResult<()> {
        self.wait(ready, || {
            with_current(|p| p.signals.fatal_pending()).unwrap_or(false)
        })
    }

    /// The waiter leaves the queue however the wait ends (Linux's `finish_wait`): one that a
    /// signal or a deadline took away must not stay registered, or a queue nobody wakes
    /// (`pause`, `nanosleep`) would collect every pid that ever slept on it.
    fn wait(&self, ready: impl FnMut() -> bool, interrupted: impl FnMut() -> bool) -> EResult<()> {
        let result = self.sleep_until(ready, interrupted);
        let me = SCHEDULER.lock().current;
        self.unregister(me);
        result
    }

    fn sleep_until(
        &self,
        mut ready: impl FnMut() -> bool,
        mut interrupted: impl FnMut() -> bool,
    ) -> EResult<()> {
        loop {
            if ready() {
                return Ok(());
            }
            if interrupted() {
                return Err(Errno::EINTR);
            }
            let me = {
                let mut scheduler = SCHEDULER.lock();
                let me = scheduler.current;
                if let Some(task) = scheduler.tasks.get_mut(&me) {
                    task.state = State::Sleeping;
                }
                me
            };
            if me == 0 {
                crate::arch::x86_64::cpu::enable_interrupts_and_halt();
                continue;
            }
            self.register(me);
            if ready() {
                let mut scheduler = SCHEDULER.lock();
                if let Some(task) = scheduler.tasks.get_mut(&me)
                    && task.state == State::Sleeping
                {
                    task.state = State::Running;
                }
                continue;
            }
            schedule();
        }
    }

    /// Like `wait_until`, but gives up at `deadline` (nanoseconds on `time::now_ns`):
    /// `Ok(true)` when `ready()` held, `Ok(false)` when the deadline passed first.
    pub fn wait_until_deadline(
        &self,
        deadline: Option<u64>,
        mut ready: impl FnMut() -> bool,
    ) -> EResult<bool> {
        let Some(deadline) = deadline else {
            return self.wait_until(ready).map(|()| true);
        };
        let mut timed_out = false;
        let waited = self.wait_until(|| {
            if ready() {
                return true;
            }
            if crate::time::now_ns() >= deadline {
                timed_out = true;
                return true;
            }
            arm_timer(deadline);
            false
        });
        // Off the timer queue too (the tick would drop it only at the next expiry).
        TIMED_WAITERS.unregister(SCHEDULER.lock().current);
        waited?;
        Ok(!timed_out)
    }

    fn unregister(&self, pid: Pid) {
        self.waiters.lock().retain(|&waiter| waiter != pid);
    }

    /// Adds `pid` unless it is already waiting here (a waiter woken spuriously re-registers).
    fn register(&self, pid: Pid) {
        let mut waiters = self.waiters.lock();
        if !waiters.contains(&pid) {
            waiters.push_back(pid);
        }
    }

    /// Makes every waiter runnable (each re-checks its condition).
    pub fn wake_all(&self) {
        let waiters: VecDeque<Pid> = core::mem::take(&mut *self.waiters.lock());
        if waiters.is_empty() {
            return;
        }
        let mut scheduler = SCHEDULER.lock();
        for pid in waiters {
            if let Some(task) = scheduler.tasks.get_mut(&pid)
                && task.state == State::Sleeping
            {
                task.state = State::Runnable;
                scheduler.run_queue.push_back(pid);
            }
        }
    }
}

/// Everyone waiting with a deadline.
static TIMED_WAITERS: WaitQueue = WaitQueue::new();
/// The earliest deadline of `TIMED_WAITERS` (`u64::MAX`: none).
static NEXT_DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The current task wants to run again at `deadline`.
fn arm_timer(deadline: u64) {
    let me = SCHEDULER.lock().current;
    if me != 0 {
        TIMED_WAITERS.register(me);
    }
    NEXT_DEADLINE.fetch_min(deadline, Ordering::Relaxed);
}

/// From the timer interrupt: wakes the timed waiters once the earliest deadline has passed.
/// Each re-arms its own deadline if it is still in the future.
pub(super) fn expire_timers() {
    if crate::time::now_ns() >= NEXT_DEADLINE.load(Ordering::Relaxed) {
        NEXT_DEADLINE.store(u64::MAX, Ordering::Relaxed);
        TIMED_WAITERS.wake_all();
    }
}
