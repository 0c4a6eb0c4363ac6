//! The one description of a process that every view reads: `/proc/<pid>`, `ps` through procfs,
//! gdb's thread list and `monitor ps`, and the TUI's telemetry snapshot.
//!
//! `ProcessInfo` is a plain copy (no heap, no locks held), made under the scheduler's lock, so
//! an interrupt handler (telemetry, the debugger) can take it as safely as a system call, and
//! two views taken at the same moment cannot disagree. Memory figures need the address space's
//! lock as well; where that lock is held by the code that was interrupted they are `None`
//! instead of a wait that could deadlock.

use alloc::vec::Vec;

use super::{Comm, Pid, Process, SCHEDULER, SharedSpace, State};
use crate::fs::{FdTable, FsContext};
use crate::mm::user::MemoryUsage;
use crate::sync::IrqSpinLock;
use alloc::sync::Arc;

#[derive(Clone, Copy)]
pub struct ProcessInfo {
    pub pid: Pid,
    /// Thread group (the pid `getpid` returns); equal to `pid` for a group's first thread.
    pub tgid: Pid,
    pub ppid: Pid,
    pub pgid: Pid,
    pub sid: Pid,
    pub comm: Comm,
    pub state: State,
    /// Effective ids (what `/proc/<pid>` is owned by, `ps`'s USER).
    pub uid: u32,
    pub gid: u32,
    /// Real, effective, saved and file-system ids, as `/proc/<pid>/status` lists them.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    /// CPU time used so far, the current run included.
    pub cpu_ns: u64,
    /// When it was created, in nanoseconds since boot.
    pub start_ns: u64,
    /// `None` if the address space was locked by the interrupted code.
    pub memory: Option<MemoryUsage>,
    /// Signal sets, bit `n - 1` for signal `n`.
    pub signals_pending: u64,
    pub signals_blocked: u64,
    pub signals_ignored: u64,
    pub signals_caught: u64,
}

impl ProcessInfo {
    fn of(process: &Process, now: u64) -> Self {
        Self {
            pid: process.pid,
            tgid: process.tgid,
            ppid: process.ppid,
            pgid: process.pgid,
            sid: process.sid,
            comm: Comm::new(&process.name),
            state: process.state,
            uid: process.identity.uid.effective,
            gid: process.identity.gid.effective,
            uids: ids(&process.identity.uid),
            gids: ids(&process.identity.gid),
            cpu_ns: process.cpu_time_ns(now),
            start_ns: process.start_ns,
            memory: process.space.try_lock().map(|space| space.usage()),
            signals_pending: process.signals.pending_mask(),
            signals_blocked: process.signals.blocked,
            signals_ignored: process.signals.disposition_masks().0,
            signals_caught: process.signals.disposition_masks().1,
        }
    }

    /// Whether this is the first thread of its group (what `/proc` lists and `ps` shows).
    pub fn is_group_leader(&self) -> bool {
        self.pid == self.tgid
    }
}

fn ids(ids: &super::identity::Ids) -> [u32; 4] {
    [ids.real, ids.effective, ids.saved, ids.fs]
}

/// Calls `f` with every process in pid order, without allocating; nothing if the process table
/// is locked by the interrupted code (the debugger's and telemetry's case).
pub fn for_each(mut f: impl FnMut(&ProcessInfo)) {
    let now = crate::time::now_ns();
    if let Some(scheduler) = SCHEDULER.try_lock() {
        scheduler
            .tasks
            .values()
            .for_each(|p| f(&ProcessInfo::of(p, now)));
    }
}

/// Every process, in pid order.
pub fn all() -> Vec<ProcessInfo> {
    let mut infos = Vec::new();
    for_each(|info| infos.push(*info));
    infos
}

/// One process (or thread) by pid.
pub fn get(pid: Pid) -> Option<ProcessInfo> {
    let now = crate::time::now_ns();
    let scheduler = SCHEDULER.try_lock()?;
    scheduler.tasks.get(&pid).map(|p| ProcessInfo::of(p, now))
}

/// How many threads the group `tgid` has.
pub fn thread_count(tgid: Pid) -> usize {
    let mut count = 0;
    for_each(|info| count += usize::from(info.tgid == tgid));
    count
}

/// The shared parts of a process that its `/proc` files read: memory, file system view, open
/// files. Cloned out, so the reader holds no scheduler lock while it looks inside.
#[derive(Clone)]
pub struct Resources {
    pub space: SharedSpace,
    pub fs: Arc<IrqSpinLock<FsContext>>,
    pub files: Arc<IrqSpinLock<FdTable>>,
}

pub fn resources(pid: Pid) -> Option<Resources> {
    let scheduler = SCHEDULER.try_lock()?;
    scheduler.tasks.get(&pid).map(|p| Resources {
        space: p.space.clone(),
        fs: p.fs.clone(),
        files: p.files.clone(),
    })
}

/// Time no task ran: uptime less every task's CPU time (dead ones' included).
pub fn idle_ns() -> u64 {
    let now = crate::time::now_ns();
    let running = SCHEDULER.try_lock().map_or(0, |scheduler| {
        scheduler
            .tasks
            .get(&scheduler.current)
            .filter(|task| task.state == State::Running)
            .map_or(0, |task| now.saturating_sub(task.ran_since))
    });
    now.saturating_sub(super::BUSY_NS.load(core::sync::atomic::Ordering::Relaxed) + running)
}

/// Linux's load average: every 5 seconds the number of runnable tasks is folded into three
/// exponentially decaying averages (1, 5 and 15 minutes), in 11-bit fixed point.
static LOAD: [core::sync::atomic::AtomicU64; 3] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 3];
const FSHIFT: u32 = 11;
const FIXED_1: u64 = 1 << FSHIFT;
/// `FIXED_1 / exp(5 s / 1 min)`, and for 5 and 15 minutes.
const DECAY: [u64; 3] = [1884, 2014, 2037];
const LOAD_INTERVAL_TICKS: u64 = 5 * crate::arch::x86_64::lapic::TICK_HZ;

/// From the timer tick.
pub(super) fn sample_load() {
    use core::sync::atomic::Ordering;
    if !crate::time::ticks().is_multiple_of(LOAD_INTERVAL_TICKS) {
        return;
    }
    let Some(scheduler) = SCHEDULER.try_lock() else {
        return;
    };
    let active = scheduler
        .tasks
        .values()
        .filter(|t| matches!(t.state, State::Runnable | State::Running))
        .count() as u64;
    drop(scheduler);
    for (load, decay) in LOAD.iter().zip(DECAY) {
        let old = load.load(Ordering::Relaxed);
        let new = (old * decay + active * FIXED_1 * (FIXED_1 - decay)).div_ceil(FIXED_1);
        load.store(new, Ordering::Relaxed);
    }
}

/// The 1, 5 and 15 minute load averages in `FIXED_1` fixed point (`sysinfo`'s `loads` use
/// 16-bit fixed point: shift left by 5).
pub fn load_average() -> [u64; 3] {
    LOAD.each_ref()
        .map(|load| load.load(core::sync::atomic::Ordering::Relaxed))
}

/// `/proc/loadavg`'s `1.05` style: integer part and hundredths.
pub fn format_load(load: u64) -> (u64, u64) {
    let load = load + FIXED_1 / 200;
    (load >> FSHIFT, ((load & (FIXED_1 - 1)) * 100) >> FSHIFT)
}

/// Where a task that is not running sleeps in the kernel: the backtrace from its saved context
/// (`context::switch` saved r15, r14, r13, r12, rbx, rbp and the return address, in that order
/// from the saved stack pointer up). `None` for the running task or an unknown pid.
pub fn kernel_backtrace(pid: Pid) -> Option<crate::debug::backtrace::Backtrace> {
    let rsp = super::saved_kernel_context(pid)?;
    let mut words = [0u8; 16];
    if crate::mm::inspect::read(rsp + 40, &mut words) != words.len() {
        return None;
    }
    let (rbp, ret) = words.split_at(8);
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
    Some(crate::debug::backtrace::Backtrace::from_frame_pointer(
        Some(word(ret)),
        word(rbp),
    ))
}
