//! The OOM killer: when user pages run out, kill the process holding the most memory.
//!
//! User pages are served only above the low watermark (`frame_allocator::Urgency::User`), so
//! running out of them leaves the kernel its reserve. What then? A page fault cannot answer
//! `ENOMEM`, and giving the faulting process `SIGSEGV` punishes whoever touched memory last,
//! not whoever holds it. Linux's answer, taken here: pick the process with the largest
//! footprint (resident pages plus page tables; Linux's `oom_badness` with `oom_score_adj` 0),
//! never init unless nothing else is left, kill it with `SIGKILL`, log Linux's line
//! (`Out of memory: Killed process N (comm) total-vm:…kB, anon-rss:…kB, file-rss:…kB,
//! shmem-rss:…kB, UID:… pgtables:…kB oom_score_adj:0`), and let the faulting access retry once
//! the victim's memory is back (a victim frees its pages as it exits, not when reaped). While a
//! victim is still dying nobody else is killed (Linux's `oom_victims` wait), and the faulting
//! task yields so that the victim can run.
//!
//! A failed allocation inside a system call does not come here: it returns `ENOMEM`.
//!
//! Policy lives in `mm`; the process table lives in `task`. `mm` must not import `task` (the
//! project is removing those imports), so `task` registers a narrow `TaskHooks` at boot: list
//! the processes with their memory, send a kill, tell whether one is still alive, yield.

use core::sync::atomic::{AtomicU32, Ordering};

/// One process as the OOM killer sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidate {
    pub pid: u32,
    pub uid: u32,
    /// `comm`, as bytes (at most 16) and length: no allocation on this path.
    pub comm: [u8; 16],
    pub comm_len: u8,
    /// Bytes of all its regions.
    pub total_vm: u64,
    /// Resident bytes: anonymous (everything but file mappings) and file-mapping pages.
    pub anon_rss: u64,
    pub file_rss: u64,
    /// Bytes of page tables below its root (counted from the present pages' tables).
    pub page_tables: u64,
}

impl Candidate {
    pub fn comm(&self) -> &str {
        core::str::from_utf8(&self.comm[..usize::from(self.comm_len)]).unwrap_or("?")
    }

    /// Linux's `oom_badness` with `oom_score_adj` 0: what killing it gives back.
    fn badness(&self) -> u64 {
        self.anon_rss + self.file_rss + self.page_tables
    }
}

/// Visits each process (see `TaskHooks::for_each_process`).
pub type ProcessVisitor<'a> = &'a mut dyn FnMut(&Candidate);

/// What `mm` needs from the process table.
pub struct TaskHooks {
    /// Calls the visitor for every live process (one per thread group) with an address space.
    pub for_each_process: fn(ProcessVisitor<'_>),
    /// Sends `SIGKILL` to process `pid`.
    pub kill: fn(u32),
    /// Whether `pid` exists and has not finished exiting (still holds its memory).
    pub is_alive: fn(u32) -> bool,
    /// Lets other tasks run (the victim must, to exit).
    pub yield_now: fn(),
}

static HOOKS: spin::Once<TaskHooks> = spin::Once::new();
/// The last victim while it is dying (0: none).
static VICTIM: AtomicU32 = AtomicU32::new(0);
/// Processes killed so far.
static KILLS: AtomicU32 = AtomicU32::new(0);

pub fn register(hooks: TaskHooks) {
    HOOKS.call_once(|| hooks);
}

/// What `out_of_memory` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `pid` was killed (possibly the caller's own process).
    Killed(u32),
    /// An earlier victim is still exiting; the caller yielded and should retry.
    VictimDying,
    /// Nothing could be killed (no process at all, or no hooks).
    NothingToKill,
    /// Memory is not short after all (the failure was injected, or memory was freed since):
    /// retry without killing, as Linux retries a fault whose `VM_FAULT_OOM` did not come from
    /// the allocator's OOM path.
    Transient,
}

/// User memory ran out: kill the biggest process (or wait for the last victim). The caller
/// must hold no lock (the hooks take the process table's and address spaces' locks).
pub fn out_of_memory() -> Outcome {
    let Some(hooks) = HOOKS.get() else {
        return Outcome::NothingToKill;
    };
    // A user page plus the page tables to map it: more than that above the low watermark means
    // an allocation could succeed now.
    let frames = super::frame_allocator::stats();
    if frames.free > frames.low_watermark + 4 {
        (hooks.yield_now)();
        return Outcome::Transient;
    }
    let victim = VICTIM.load(Ordering::Relaxed);
    if victim != 0 && (hooks.is_alive)(victim) {
        (hooks.yield_now)();
        return Outcome::VictimDying;
    }
    let mut best: Option<Candidate> = None;
    let mut init: Option<Candidate> = None;
    (hooks.for_each_process)(&mut |candidate| {
        if candidate.pid == 1 {
            init = Some(*candidate);
        } else if best.is_none_or(|b| candidate.badness() > b.badness()) {
            best = Some(*candidate);
        }
    });
    let Some(chosen) = best.or(init) else {
        return Outcome::NothingToKill;
    };
    VICTIM.store(chosen.pid, Ordering::Relaxed);
    KILLS.fetch_add(1, Ordering::Relaxed);
    crate::kprintln!(
        "Out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, \
         shmem-rss:0kB, UID:{} pgtables:{}kB oom_score_adj:0",
        chosen.pid,
        chosen.comm(),
        chosen.total_vm / 1024,
        chosen.anon_rss / 1024,
        chosen.file_rss / 1024,
        chosen.uid,
        chosen.page_tables / 1024
    );
    (hooks.kill)(chosen.pid);
    (hooks.yield_now)();
    Outcome::Killed(chosen.pid)
}

/// Processes the OOM killer has killed since boot (`oom_kill` in Linux's /proc/vmstat).
pub fn kills() -> u32 {
    KILLS.load(Ordering::Relaxed)
}
