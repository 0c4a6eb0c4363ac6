//! Sleeping until something happens (input arrives, a pipe has room), interruptibly.
//!
//! A waiter registers and marks itself sleeping under the scheduler's lock, then re-checks its
//! condition before giving up the CPU, so a wake-up between the check and the sleep is never
//! lost: the waker finds it sleeping and makes it runnable again.

use alloc::collections::VecDeque;

use super::{Pid, SCHEDULER, State, schedule, signal_pending};
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
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool) -> EResult<()> {
        loop {
            if ready() {
                return Ok(());
            }
            if signal_pending() {
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
            self.waiters.lock().push_back(me);
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
