//! The process table's side of the OOM killer: `mm::oom` holds the policy and calls out
//! through these hooks, so `mm` needs no import of `task`.

use super::{NEED_RESCHED, SCHEDULER, State, post_signal, signal};
use crate::mm::oom::{Candidate, TaskHooks};
use core::sync::atomic::Ordering;

pub fn register() {
    crate::mm::oom::register(TaskHooks {
        for_each_process,
        kill,
        is_alive,
        yield_now,
    });
}

fn for_each_process(visit: &mut dyn FnMut(&Candidate)) {
    let scheduler = SCHEDULER.lock();
    for task in scheduler.tasks.values() {
        if task.is_thread || matches!(task.state, State::Zombie(_)) {
            continue;
        }
        let (total_vm, anon_rss, file_rss, page_tables) = task.space.lock().footprint();
        let mut candidate = Candidate {
            pid: task.pid,
            uid: task.identity.uid.real,
            total_vm,
            anon_rss,
            file_rss,
            page_tables,
            ..Candidate::default()
        };
        let name = task.name.as_bytes();
        let len = name.len().min(15);
        candidate.comm[..len].copy_from_slice(&name[..len]);
        candidate.comm_len = len as u8;
        visit(&candidate);
    }
}

fn kill(pid: u32) {
    let mut scheduler = SCHEDULER.lock();
    let info = signal::Info {
        code: signal::SI_KERNEL,
        ..signal::Info::default()
    };
    post_signal(&mut scheduler, pid, signal::SIGKILL, info);
}

fn is_alive(pid: u32) -> bool {
    SCHEDULER
        .lock()
        .tasks
        .get(&pid)
        .is_some_and(|t| !matches!(t.state, State::Zombie(_)))
}

/// The faulting task returns to user mode through `user_return`, which switches tasks.
fn yield_now() {
    NEED_RESCHED.store(true, Ordering::Relaxed);
}
