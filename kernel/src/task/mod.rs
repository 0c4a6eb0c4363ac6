//! Processes and the scheduler.
//!
//! A task is a user process with its own kernel stack, address space and FPU state. The
//! scheduler is round-robin with a 10 ms time slice: the timer tick asks for a reschedule, which
//! happens on the way back to user mode (kernel code is not preempted), and a task that waits
//! (`wait4`) gives up the CPU itself. The boot context becomes the idle task.
//!
//! Job control follows Linux: a stop signal taken with its default action stops every thread of
//! the process (`State::Stopped`, never scheduled) where it is — on its way back to user mode, or
//! inside a blocking call, which goes on waiting once continued, as Linux restarts it — and
//! SIGCONT (or SIGKILL) makes them runnable again when it is sent. The parent learns of both
//! through SIGCHLD and `wait4`'s `WUNTRACED`/`WCONTINUED`.
//!
//! A process ends the way Linux's does (`do_group_exit`, `zap_other_threads`, `de_thread`):
//! no thread is ever freed while its kernel stack may still hold something. `exit_group`, a
//! fatal signal or `execve` marks every other thread for death and wakes it from any wait;
//! each returns from its system call — dropping what its frames own — and exits itself on
//! the way back to user mode. The process is a zombie, and can be reaped, only once its last
//! thread is gone.
//!
//! Every view of a process — `/proc/<pid>`, gdb's thread list, `monitor ps`, the TUI snapshot —
//! reads it through `info::ProcessInfo`, so they cannot disagree.

mod futex;
pub mod identity;
pub mod info;
mod kernel_stack;
pub mod limits;
pub mod signal;
mod wait_queue;

pub use futex::{futex_wait, futex_wake};
mod oom_hooks;
pub use wait_queue::WaitQueue;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::x86_64::context::{self, FpuState};
use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::{cpu, usermode};
use crate::errno::{EResult, Errno};
use crate::exec::{self, Program};
use crate::fs::{Credentials, FdTable, FsContext};
use crate::kprintln;
use crate::mm::user::{AddressSpace, Resolution, UserSlice};
use crate::sync::IrqSpinLock;
use kernel_stack::KernelStack;

pub type Pid = u32;

/// An address space as threads share it.
pub type SharedSpace = Arc<IrqSpinLock<AddressSpace>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal { signal: u8, core: bool },
}

impl ExitStatus {
    /// The `wstatus` value `wait4` reports.
    pub fn wait_status(self) -> i32 {
        match self {
            Self::Code(code) => (code & 0xff) << 8,
            Self::Signal { signal, core } => i32::from(signal & 0x7f) | if core { 0x80 } else { 0 },
        }
    }
}

/// What `wait4` reports about a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEvent {
    Exited(ExitStatus),
    /// Stopped by this signal (`WUNTRACED`).
    Stopped(u8),
    /// Continued by SIGCONT (`WCONTINUED`).
    Continued,
}

impl WaitEvent {
    /// The `wstatus` value: `WIFSTOPPED` is `0x7f` with the signal above it, `WIFCONTINUED`
    /// is `0xffff`.
    pub fn wait_status(self) -> i32 {
        match self {
            Self::Exited(status) => status.wait_status(),
            Self::Stopped(signal) => i32::from(signal) << 8 | 0x7f,
            Self::Continued => 0xffff,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Runnable,
    Running,
    /// Blocked in `wait4` until a child changes state.
    WaitingForChild,
    /// Blocked on a `WaitQueue` (terminal input, ...); a signal wakes it.
    Sleeping,
    /// Stopped by job control until SIGCONT or SIGKILL (whatever it was doing resumes then).
    Stopped,
    Zombie(ExitStatus),
}

impl State {
    /// The letter `ps` and /proc/<pid>/stat use.
    pub fn letter(self) -> char {
        match self {
            Self::Runnable | Self::Running => 'R',
            Self::WaitingForChild | Self::Sleeping => 'S',
            Self::Stopped => 'T',
            Self::Zombie(_) => 'Z',
        }
    }
}

pub struct Process {
    pub pid: Pid,
    pub ppid: Pid,
    /// Process group and session (job control).
    pub pgid: Pid,
    pub sid: Pid,
    pub signals: signal::Signals,
    /// `comm`: the executable's base name, at most 15 bytes like Linux.
    pub name: String,
    pub state: State,
    /// Shared by the threads of a process (`CLONE_VM`).
    pub space: SharedSpace,
    /// Root, working directory, umask (`CLONE_FS` shares it).
    pub fs: Arc<IrqSpinLock<FsContext>>,
    /// Open files (`CLONE_FILES` shares the table).
    pub files: Arc<IrqSpinLock<FdTable>>,
    /// User and group ids (`identity::Identity`); the VFS sees `identity.credentials()`.
    pub identity: identity::Identity,
    /// Resource limits (`getrlimit` and friends).
    pub limits: limits::Limits,
    /// `PR_SET_PDEATHSIG`: the signal this process gets when its parent exits (0: none).
    pub parent_death_signal: u8,
    /// `PR_SET_DUMPABLE` and `PR_SET_NO_NEW_PRIVS`, kept for `PR_GET_*` (nothing here dumps
    /// core or gains privileges on exec yet).
    pub dumpable: bool,
    pub no_new_privs: bool,
    /// `set_robust_list`: the head of the thread's list of held robust futexes (0: none).
    pub robust_list: u64,
    /// Thread group id: the pid `getpid` returns (the first thread's pid).
    pub tgid: Pid,
    /// A thread other than its group's first: not waited for, freed as soon as it exits.
    pub is_thread: bool,
    /// On a group's first thread: a stop or continue `wait4` has not reported yet (Linux's
    /// `group_exit_code` and `SIGNAL_STOP_CONTINUED`); each is reported once.
    pub job_change: Option<WaitEvent>,
    /// On a group's first thread: the process is exiting with this status (Linux's
    /// `SIGNAL_GROUP_EXIT` and `group_exit_code`); its other threads are dying.
    group_exit: Option<ExitStatus>,
    /// On a group's first thread: the thread that is replacing the program (`execve`) and
    /// waits for the others to die (Linux's `group_exec_task`).
    group_exec: Option<Pid>,
    pub fs_base: u64,
    pub clear_child_tid: u64,
    pub start_ns: u64,
    /// CPU time used before the current run (accounted when it switches away).
    cpu_ns: u64,
    /// When it last started running.
    ran_since: u64,
    kernel_stack: KernelStack,
    kernel_rsp: u64,
    fpu: Box<FpuState>,
    /// Where a new task enters user mode the first time.
    entry_frame: TrapFrame,
}

impl Process {
    /// CPU time used so far (user and kernel), including the current run if it is running.
    pub fn cpu_time_ns(&self, now: u64) -> u64 {
        if self.state == State::Running {
            self.cpu_ns + now.saturating_sub(self.ran_since)
        } else {
            self.cpu_ns
        }
    }
}

struct Scheduler {
    tasks: BTreeMap<Pid, Box<Process>>,
    /// Exited threads, freed by the next context to run (never by themselves: they are still
    /// on their kernel stack when they switch away for the last time).
    #[allow(
        clippy::vec_box,
        reason = "the switch saves into the boxed task: its address must not move with the Vec"
    )]
    dead: alloc::vec::Vec<Box<Process>>,
    run_queue: VecDeque<Pid>,
    /// 0: the idle (boot) context.
    current: Pid,
    idle_rsp: u64,
    next_pid: Pid,
}

static SCHEDULER: IrqSpinLock<Scheduler> = IrqSpinLock::new(Scheduler {
    tasks: BTreeMap::new(),
    dead: alloc::vec::Vec::new(),
    run_queue: VecDeque::new(),
    current: 0,
    idle_rsp: 0,
    next_pid: 1,
});

static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
/// CPU time all tasks have used in finished runs (`/proc/uptime`'s idle time is the rest).
static BUSY_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The running task's pid, readable without the scheduler's lock (the allocator's leak tracker
/// reads it on every allocation, including ones the scheduler makes while holding its lock).
static CURRENT_PID: AtomicU32 = AtomicU32::new(0);

/// The running task's pid (0: idle), lock-free.
pub fn current_pid_fast() -> Pid {
    CURRENT_PID.load(Ordering::Relaxed)
}

/// A process name held inline (Linux's 16-byte `comm`), for reports that must not allocate.
#[derive(Clone, Copy)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    fn new(name: &str) -> Self {
        let mut comm = Self {
            bytes: [0; 16],
            len: 0,
        };
        let mut end = name.len().min(16);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        comm.bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        comm.len = end as u8;
        comm
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

/// The name of `pid` for reports: `swapper/0` for the idle context, `<exited>` for a process
/// that is gone, `?` if the process table is busy (we interrupted its owner).
pub fn comm(pid: Pid) -> Comm {
    if pid == 0 {
        return Comm::new("swapper/0");
    }
    match SCHEDULER.try_lock() {
        Some(scheduler) => match scheduler.tasks.get(&pid) {
            Some(task) => Comm::new(&task.name),
            None => Comm::new("<exited>"),
        },
        None => Comm::new("?"),
    }
}

/// Runs `f` on process (or thread) `pid` (`ESRCH` if there is none).
pub fn with_process<R>(pid: Pid, f: impl FnOnce(&mut Process) -> R) -> EResult<R> {
    let mut scheduler = SCHEDULER.lock();
    scheduler
        .tasks
        .get_mut(&pid)
        .map(|p| f(p))
        .ok_or(Errno::ESRCH)
}

/// Runs `f` on the current process (`ESRCH` in the idle context).
pub fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> EResult<R> {
    let mut scheduler = SCHEDULER.lock();
    let current = scheduler.current;
    scheduler
        .tasks
        .get_mut(&current)
        .map(|p| f(p))
        .ok_or(Errno::ESRCH)
}

/// The pid of the running task (0: the idle context); `None` if the scheduler is locked by the
/// interrupted code.
pub fn current_pid() -> Option<Pid> {
    SCHEDULER.try_lock().map(|s| s.current)
}

/// Where a task that is not running saved its kernel context (`context::switch` layout:
/// r15, r14, r13, r12, rbx, rbp, return address, from this address up). Pid 0 is idle.
pub fn saved_kernel_context(pid: Pid) -> Option<u64> {
    let scheduler = SCHEDULER.try_lock()?;
    if scheduler.current == pid {
        return None;
    }
    match pid {
        0 => (scheduler.idle_rsp != 0).then_some(scheduler.idle_rsp),
        pid => scheduler.tasks.get(&pid).map(|t| t.kernel_rsp),
    }
}

/// Calls `f` with the saved kernel stack pointer of every context that is not running (the idle
/// context's too): below it, that stack holds only dead frames. Nothing if the table is locked
/// by the interrupted code.
pub fn for_each_saved_stack_pointer(mut f: impl FnMut(u64)) {
    let Some(scheduler) = SCHEDULER.try_lock() else {
        return;
    };
    if scheduler.current != 0 && scheduler.idle_rsp != 0 {
        f(scheduler.idle_rsp);
    }
    for task in scheduler.tasks.values() {
        if task.pid != scheduler.current {
            f(task.kernel_rsp);
        }
    }
}

fn comm_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.chars().take(15).collect()
}

/// First code of every new task, on its own kernel stack: enter user mode.
extern "C" fn task_entry() -> ! {
    let mut frame = with_current(|p| p.entry_frame).unwrap_or_default();
    refuse_non_canonical_return(&mut frame);
    usermode::return_to_user(&frame)
}

#[allow(
    clippy::too_many_arguments,
    reason = "every field a new task must not be without"
)]
fn new_process(
    pid: Pid,
    ppid: Pid,
    name: String,
    space: SharedSpace,
    fs: Arc<IrqSpinLock<FsContext>>,
    files: Arc<IrqSpinLock<FdTable>>,
    frame: TrapFrame,
    fpu: Box<FpuState>,
) -> EResult<Box<Process>> {
    let kernel_stack = KernelStack::new()?;
    // SAFETY: the stack was just allocated for this task and nothing else uses it.
    let kernel_rsp = unsafe { context::prepare_stack(kernel_stack.top(), task_entry) };
    Ok(Box::new(Process {
        pid,
        ppid,
        // As on Linux, init starts in session 0, group 0 (it calls setsid itself); everyone
        // else inherits these from the parent at fork.
        pgid: 0,
        sid: 0,
        signals: signal::Signals::default(),
        name,
        state: State::Runnable,
        space,
        fs,
        files,
        identity: identity::Identity::root(),
        limits: limits::Limits::linux_defaults(),
        parent_death_signal: 0,
        dumpable: true,
        no_new_privs: false,
        robust_list: 0,
        tgid: pid,
        is_thread: false,
        job_change: None,
        group_exit: None,
        group_exec: None,
        fs_base: 0,
        clear_child_tid: 0,
        start_ns: crate::time::now_ns(),
        cpu_ns: 0,
        ran_since: 0,
        kernel_stack,
        kernel_rsp,
        fpu,
        entry_frame: frame,
    }))
}

/// Loads `image` as pid 1 and turns the boot context into the idle task; returns only if the
/// program could not be loaded.
pub fn start_init(path: &str, executable: exec::Executable, envp: &[&str]) -> Errno {
    oom_hooks::register();
    let loaded = {
        let argv: alloc::vec::Vec<&str> = executable.argv.iter().map(String::as_str).collect();
        exec::load_program(&executable.image, &argv, envp)
    };
    // The image and arguments are in init's address space now. This boot context never
    // returns (it becomes the idle loop), so anything it still owns would stay allocated.
    drop(executable);
    let Program { space, frame } = match loaded {
        Ok(program) => program,
        Err(error) => return error,
    };
    let context = match crate::fs::vfs::init_context() {
        Ok(context) => context,
        Err(error) => return error,
    };
    // Like Linux's kernel_init: stdin, stdout and stderr are /dev/console.
    let mut files = FdTable::new();
    match crate::fs::vfs::open(
        &context,
        &Credentials::root(),
        crate::fs::At::Cwd,
        "/dev/console",
        crate::fs::OpenFlags::RDWR,
        0,
    ) {
        Ok(console) => {
            for _ in 0..3 {
                let _ = files.insert(&console, false);
            }
        }
        Err(error) => kprintln!("init: cannot open an initial console: {error}"),
    }
    let mut init = match new_process(
        1,
        0,
        comm_of(path),
        Arc::new(IrqSpinLock::new(space)),
        Arc::new(IrqSpinLock::new(context)),
        Arc::new(IrqSpinLock::new(files)),
        frame,
        Box::new(FpuState::initial()),
    ) {
        Ok(init) => init,
        Err(error) => return error,
    };
    // Linux's SIGNAL_UNKILLABLE: signals init has no handler for do nothing to it.
    init.signals.unkillable = true;
    {
        let mut scheduler = SCHEDULER.lock();
        scheduler.tasks.insert(1, init);
        scheduler.run_queue.push_back(1);
        scheduler.next_pid = 2;
    }
    crate::arch::x86_64::trap::set_user_return_hook(user_return);
    kprintln!("Run {path} as init process");
    // Failures are injected from init's first instruction on: loading init is the kernel's own
    // boot (Linux panics when init cannot be run), not something a program asked for.
    crate::mm::fault_inject::arm();
    idle()
}

/// The idle task: run whatever is runnable, halt when nothing is.
fn idle() -> ! {
    loop {
        schedule();
        cpu::enable_interrupts_and_halt();
    }
}

/// Timer tick: the running task's slice is over.
pub fn tick() {
    NEED_RESCHED.store(true, Ordering::Relaxed);
    wait_queue::expire_timers();
    info::sample_load();
}

/// Called on every return to user mode (system calls and traps): switch tasks if the slice is
/// over, then act on pending signals.
fn user_return(frame: &mut TrapFrame) {
    if NEED_RESCHED.swap(false, Ordering::Relaxed) {
        schedule();
    }
    deliver_signals(frame);
    refuse_non_canonical_return(frame);
}

/// The last step before user mode: a non-canonical RIP (a signal handler, `rt_sigreturn` frame,
/// ELF entry point or `ptrace` that set one) would make `iretq` fault in kernel mode, with the
/// user's GS base already loaded. As Linux (whose #GP on that IRET becomes the task's own
/// fault), the task gets SIGSEGV (`SI_KERNEL`, as for a #GP) instead: delivered to its handler
/// if it has a usable one, else killing it. The loop ends: every turn either resumes at a
/// handler's canonical address, kills the task, or pushes another signal frame onto the user
/// stack, which runs out.
fn refuse_non_canonical_return(frame: &mut TrapFrame) {
    while !cpu::is_canonical(frame.rip) {
        let info = signal::Info {
            code: 0x80, // SI_KERNEL
            pid: 0,
            status: 0,
            address: 0,
        };
        if with_current(|p| p.signals.force(signal::SIGSEGV, info)).is_err() {
            return;
        }
        deliver_signals(frame);
    }
}

fn deliver_signals(frame: &mut TrapFrame) {
    loop {
        let delivery = with_current(|p| p.signals.take()).unwrap_or(signal::Delivery::None);
        if let signal::Delivery::Stop { signal } = delivery {
            // Once continued, what else is pending (SIGCONT's handler, SIGKILL) comes next.
            stop_current(signal);
            continue;
        }
        return deliver(frame, delivery);
    }
}

fn deliver(frame: &mut TrapFrame, delivery: signal::Delivery) {
    match delivery {
        signal::Delivery::None => {
            // A `rt_sigsuspend` that no handler ended: its mask goes now.
            let _ = with_current(|p| {
                if let Some(mask) = p.signals.restore_mask.take() {
                    p.signals.set_blocked(mask);
                }
            });
        }
        signal::Delivery::Stop { .. } => {}
        signal::Delivery::Terminate { signal, core } => {
            if signal == signal::SIGSEGV || signal == signal::SIGBUS {
                report_fault(frame);
            }
            exit_group(ExitStatus::Signal { signal, core });
        }
        signal::Delivery::Handle {
            signal,
            action,
            info,
        } => {
            let entered = with_current(|p| {
                p.fpu.save();
                signal::enter_handler(
                    &mut p.space.lock(),
                    &mut p.signals,
                    &p.fpu,
                    frame,
                    signal,
                    action,
                    info,
                )
            });
            if !matches!(entered, Ok(Ok(()))) {
                // No usable stack for the frame: Linux kills with SIGSEGV.
                exit_group(ExitStatus::Signal {
                    signal: signal::SIGSEGV,
                    core: false, // no core file is written (see `Signals::take`)
                });
            }
        }
    }
}

/// `rt_sigreturn`. A frame that cannot be read back is the program's fault, as if it had
/// touched the bad address itself: Linux (`signal_fault`) forces SIGSEGV, which kills it
/// unless a handler can still run. Whether the context was restored.
pub fn signal_return(frame: &mut TrapFrame) -> EResult<bool> {
    let (ip, sp) = (frame.rip, frame.rsp);
    let restored = with_current(|p| {
        match signal::restore(&mut p.space.lock(), &mut p.signals, &mut p.fpu, frame) {
            Ok(()) => {
                p.fpu.restore();
                true
            }
            Err(_) => {
                let info = signal::Info {
                    code: signal::SI_KERNEL,
                    ..signal::Info::default()
                };
                p.signals.force(signal::SIGSEGV, info);
                false
            }
        }
    })?;
    if !restored {
        let pid = current_pid_fast();
        kprintln!(
            "{}[{pid}] bad frame in rt_sigreturn ip:{ip:x} sp:{sp:x}",
            comm(pid).as_str()
        );
    }
    Ok(restored)
}

/// Sends `signal` to process `pid` (`kill`); 0 only checks that it exists.
///
/// `sender` is the sending process's identity (`None` when the kernel sends): it must be
/// allowed to signal the target (`EPERM`), even to probe it with signal 0.
pub fn send_signal(
    pid: Pid,
    signal: u8,
    info: signal::Info,
    sender: Option<&identity::Identity>,
) -> EResult<()> {
    let mut scheduler = SCHEDULER.lock();
    let task = scheduler.tasks.get(&pid).ok_or(Errno::ESRCH)?;
    if sender.is_some_and(|s| !s.may_signal(&task.identity)) {
        return Err(Errno::EPERM);
    }
    if signal != 0 {
        post_signal(&mut scheduler, pid, signal, info);
    }
    Ok(())
}

/// Sends `signal` to every process `select` picks that `sender` may signal; `ESRCH` if
/// `select` picks none, `EPERM` if it may signal none of them.
pub fn send_signal_to(
    select: impl Fn(&Process) -> bool,
    signal: u8,
    info: signal::Info,
    sender: Option<&identity::Identity>,
) -> EResult<()> {
    use core::ops::Bound;
    let mut scheduler = SCHEDULER.lock();
    let (mut found, mut permitted) = (false, false);
    // One target at a time, in pid order, so that signalling every process allocates
    // nothing however many there are (posting changes no process's selection).
    let mut after = None;
    loop {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let next = scheduler
            .tasks
            .range((from, Bound::Unbounded))
            .map(|(_, p)| p)
            .find(|p| !matches!(p.state, State::Zombie(_)) && select(p))
            .map(|p| (p.pid, sender.is_none_or(|s| s.may_signal(&p.identity))));
        let Some((pid, allowed)) = next else {
            break;
        };
        after = Some(pid);
        found = true;
        if allowed {
            permitted = true;
            if signal != 0 {
                post_signal(&mut scheduler, pid, signal, info);
            }
        }
    }
    if !found {
        return Err(Errno::ESRCH);
    }
    if !permitted {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Who takes a signal sent to task `pid`: itself, or — if it is a process's first thread that
/// has exited while others run on (its pid still names the process) — a thread still alive.
/// `None` if it is gone or the whole process has ended.
fn signal_target(scheduler: &Scheduler, pid: Pid) -> Option<Pid> {
    let task = scheduler.tasks.get(&pid)?;
    if !matches!(task.state, State::Zombie(_)) {
        return Some(pid);
    }
    if task.is_thread {
        return None;
    }
    scheduler
        .tasks
        .values()
        .find(|t| t.tgid == pid && !matches!(t.state, State::Zombie(_)))
        .map(|t| t.pid)
}

/// Makes `signal` pending for task `pid`, with the job-control effects Linux's `prepare_signal`
/// has at sending time: a stop signal discards a pending SIGCONT; SIGCONT discards pending stop
/// signals and continues a stopped process whatever its disposition (a handler then runs too,
/// a blocked SIGCONT stays pending); SIGKILL wakes a stopped process so that it can die.
fn post_signal(scheduler: &mut Scheduler, pid: Pid, signal: u8, info: signal::Info) {
    let Some(pid) = signal_target(scheduler, pid) else {
        return;
    };
    let Some(target) = scheduler.tasks.get(&pid) else {
        return;
    };
    let tgid = target.tgid;
    if signal::is_stop(signal) {
        // Init is never stopped by a default action (Linux: `SIGNAL_UNKILLABLE`): nothing
        // would be left to continue it.
        if tgid == 1 && target.signals.is_default(signal) {
            return;
        }
        for_each_thread(scheduler, tgid, |t| {
            t.signals.discard(1 << (signal::SIGCONT - 1))
        });
    } else if signal == signal::SIGCONT {
        for_each_thread(scheduler, tgid, |t| t.signals.discard(signal::STOP_SIGNALS));
        if resume_group(scheduler, tgid) {
            notify_parent_of_job_change(scheduler, tgid, WaitEvent::Continued);
        }
    } else if signal == signal::SIGKILL && resume_group(scheduler, tgid) {
        // It dies rather than continues: there is no stop left to report.
        if let Some(leader) = scheduler.tasks.get_mut(&tgid) {
            leader.job_change = None;
        }
    }
    if let Some(task) = scheduler.tasks.get_mut(&pid) {
        task.signals.post(signal, info);
    }
    wake_for_signal(scheduler, pid);
}

fn for_each_thread(scheduler: &mut Scheduler, tgid: Pid, mut f: impl FnMut(&mut Process)) {
    scheduler
        .tasks
        .values_mut()
        .filter(|t| t.tgid == tgid)
        .for_each(|t| f(t));
}

/// Makes the stopped threads of process `tgid` runnable; whether there were any.
fn resume_group(scheduler: &mut Scheduler, tgid: Pid) -> bool {
    let mut resumed = false;
    for task in scheduler.tasks.values_mut() {
        if task.tgid == tgid && task.state == State::Stopped {
            // Each resumes where it stopped: a blocking call re-checks its condition.
            task.state = State::Runnable;
            scheduler.run_queue.push_back(task.pid);
            resumed = true;
        }
    }
    resumed
}

/// The current process stops for job-control `signal`: every thread (Linux's group stop), and
/// the parent is told. Returns once SIGCONT or SIGKILL wakes it: `true`; `false` at once if the
/// signal is discarded because SIGTSTP, SIGTTIN and SIGTTOU do not stop an orphaned process
/// group (nobody would be left to continue it).
fn stop_current(signal: u8) -> bool {
    {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let Some((tgid, pgid)) = scheduler.tasks.get(&me).map(|t| (t.tgid, t.pgid)) else {
            return false;
        };
        if signal != signal::SIGSTOP && group_orphaned(&scheduler, pgid) {
            return false;
        }
        for_each_thread(&mut scheduler, tgid, |t| {
            if !matches!(t.state, State::Zombie(_)) {
                // Sleepers too: a wake-up while stopped is not lost, since continuing makes
                // them runnable and every wait re-checks its condition.
                t.state = State::Stopped;
            }
        });
        notify_parent_of_job_change(&mut scheduler, tgid, WaitEvent::Stopped(signal));
    }
    schedule();
    true
}

/// Tells the parent of process `tgid` that it stopped or continued (Linux's
/// `do_notify_parent_cldstop`): SIGCHLD with `CLD_STOPPED`/`CLD_CONTINUED` unless the parent's
/// SIGCHLD action has `SA_NOCLDSTOP`; its `wait4` wakes either way.
fn notify_parent_of_job_change(scheduler: &mut Scheduler, tgid: Pid, event: WaitEvent) {
    let (code, status) = match event {
        WaitEvent::Stopped(signal) => (signal::CLD_STOPPED, signal),
        WaitEvent::Continued => (signal::CLD_CONTINUED, signal::SIGCONT),
        WaitEvent::Exited(_) => return,
    };
    let Some(leader) = scheduler.tasks.get_mut(&tgid) else {
        return;
    };
    leader.job_change = Some(event);
    let parent = leader.ppid;
    let send = scheduler
        .tasks
        .get(&parent)
        .is_some_and(|p| p.signals.wants_child_stops());
    let info = signal::Info {
        code,
        pid: tgid,
        status: i32::from(status),
        address: 0,
    };
    signal_parent(scheduler, parent, send.then_some(info));
}

/// SIGCHLD (if `info` is given) to `parent`, and a wake-up for its `wait4`.
fn signal_parent(scheduler: &mut Scheduler, parent: Pid, info: Option<signal::Info>) {
    if let Some(info) = info {
        post_signal(scheduler, parent, signal::SIGCHLD, info);
    }
    // Any of its threads may be the one waiting (children belong to the whole process).
    let Scheduler {
        tasks, run_queue, ..
    } = scheduler;
    for task in tasks.values_mut() {
        if task.tgid == parent && task.state == State::WaitingForChild {
            task.state = State::Runnable;
            run_queue.push_back(task.pid);
        }
    }
}

/// POSIX's orphaned process group: no member has its parent in another group of the same
/// session. Linux also disregards parents that are init; here a shell running as init gets
/// job control on the console, and its jobs must stay stoppable.
fn group_orphaned(scheduler: &Scheduler, pgid: Pid) -> bool {
    !scheduler.tasks.values().any(|p| {
        !p.is_thread
            && p.pgid == pgid
            && !matches!(p.state, State::Zombie(_))
            && scheduler
                .tasks
                .get(&p.ppid)
                .is_some_and(|parent| parent.pgid != pgid && parent.sid == p.sid)
    })
}

/// Whether process group `pgid` is orphaned (the terminal's job control refuses it then).
pub fn group_is_orphaned(pgid: Pid) -> bool {
    group_orphaned(&SCHEDULER.lock(), pgid)
}

/// Acts on pending job-control stops (the lowest deliverable signal being a default-action
/// stop) where a blocking call may sleep; whether the process stopped.
pub fn stop_if_requested() -> bool {
    let mut stopped = false;
    while let Ok(Some(signal)) = with_current(|p| p.signals.take_stop()) {
        stopped |= stop_current(signal);
    }
    stopped
}

/// A task blocked in an interruptible wait runs again to notice a deliverable signal, or one it
/// waits for in `sigtimedwait`.
fn wake_for_signal(scheduler: &mut Scheduler, pid: Pid) {
    if let Some(task) = scheduler.tasks.get_mut(&pid)
        && matches!(task.state, State::WaitingForChild | State::Sleeping)
        && (task.signals.has_deliverable() || task.signals.has_awaited())
    {
        task.state = State::Runnable;
        scheduler.run_queue.push_back(pid);
    }
}

/// `setpgid(pid, pgid)` with Linux's rules: the caller or its child, within the same session,
/// not a session leader.
pub fn set_process_group(pid: Pid, pgid: Pid) -> EResult<()> {
    let mut scheduler = SCHEDULER.lock();
    let me = scheduler.current;
    let (my_sid, my_tgid) = scheduler
        .tasks
        .get(&me)
        .map(|t| (t.sid, t.tgid))
        .ok_or(Errno::ESRCH)?;
    let target_pid = if pid == 0 { me } else { pid };
    let target = scheduler.tasks.get(&target_pid).ok_or(Errno::ESRCH)?;
    if target_pid != me && target.ppid != my_tgid {
        return Err(Errno::ESRCH);
    }
    if target.sid != my_sid {
        return Err(Errno::EPERM);
    }
    if target.sid == target_pid {
        return Err(Errno::EPERM);
    }
    let group = if pgid == 0 { target_pid } else { pgid };
    if group != target_pid
        && !scheduler
            .tasks
            .values()
            .any(|p| p.pgid == group && p.sid == my_sid)
    {
        return Err(Errno::EPERM);
    }
    scheduler
        .tasks
        .get_mut(&target_pid)
        .ok_or(Errno::ESRCH)?
        .pgid = group;
    Ok(())
}

/// `setsid`: a new session and group led by the caller (EPERM for a group leader).
pub fn new_session() -> EResult<Pid> {
    let mut scheduler = SCHEDULER.lock();
    let me = scheduler.current;
    let task = scheduler.tasks.get_mut(&me).ok_or(Errno::ESRCH)?;
    if task.pgid == me {
        return Err(Errno::EPERM);
    }
    task.sid = me;
    task.pgid = me;
    Ok(me)
}

/// `getpgid`/`getsid` of `pid` (0: the caller).
pub fn group_and_session(pid: Pid) -> EResult<(Pid, Pid)> {
    let scheduler = SCHEDULER.lock();
    let pid = if pid == 0 { scheduler.current } else { pid };
    let task = scheduler.tasks.get(&pid).ok_or(Errno::ESRCH)?;
    Ok((task.pgid, task.sid))
}

/// Woken whenever a descriptor may have become ready (terminal input, pipe traffic): what
/// `poll` and `select` sleep on.
pub static READINESS: WaitQueue = WaitQueue::new();

pub fn readiness_changed() {
    READINESS.wake_all();
}

/// Whether the current task has a signal that should interrupt a blocking call (`EINTR`),
/// after stopping here if a stop signal comes first.
pub fn signal_pending() -> bool {
    stop_if_requested();
    with_current(|p| p.signals.has_deliverable()).unwrap_or(false)
}

/// Switches to the next runnable task (or idle). Returns when this context runs again.
pub fn schedule() {
    let were_enabled = cpu::interrupts_enabled();
    cpu::disable_interrupts();
    let (save, load) = {
        let mut scheduler = SCHEDULER.lock();
        let current = scheduler.current;
        if let Some(task) = scheduler.tasks.get_mut(&current)
            && task.state == State::Running
        {
            task.state = State::Runnable;
            scheduler.run_queue.push_back(current);
        }
        let mut next = 0;
        while let Some(pid) = scheduler.run_queue.pop_front() {
            if scheduler
                .tasks
                .get(&pid)
                .is_some_and(|t| t.state == State::Runnable)
            {
                next = pid;
                break;
            }
        }
        if next == current {
            if let Some(task) = scheduler.tasks.get_mut(&current) {
                task.state = State::Running;
            }
            drop(scheduler);
            if were_enabled {
                cpu::enable_interrupts();
            }
            return;
        }
        // Save the outgoing task's FPU state and CPU time, load the incoming one's world.
        let now = crate::time::now_ns();
        if let Some(task) = scheduler.tasks.get_mut(&current) {
            task.fpu.save();
            task.cpu_ns += now.saturating_sub(task.ran_since);
            BUSY_NS.fetch_add(now.saturating_sub(task.ran_since), Ordering::Relaxed);
        }
        let exited_thread = scheduler
            .tasks
            .get(&current)
            .is_some_and(|t| t.is_thread && matches!(t.state, State::Zombie(_)));
        if exited_thread && let Some(task) = scheduler.tasks.remove(&current) {
            scheduler.dead.push(task);
        }
        let save: *mut u64 = match scheduler.tasks.get_mut(&current) {
            Some(task) => &mut task.kernel_rsp,
            None if exited_thread => match scheduler.dead.last_mut() {
                Some(task) => &mut task.kernel_rsp,
                None => &mut scheduler.idle_rsp,
            },
            None => &mut scheduler.idle_rsp,
        };
        let load = match scheduler.tasks.get_mut(&next) {
            Some(task) => {
                task.state = State::Running;
                task.ran_since = now;
                task.space.lock().activate();
                usermode::set_kernel_stack(task.kernel_stack.top());
                usermode::set_user_fs_base(task.fs_base);
                task.fpu.restore();
                task.kernel_rsp
            }
            None => scheduler.idle_rsp,
        };
        scheduler.current = next;
        CURRENT_PID.store(next, Ordering::Relaxed);
        (save, load)
    };
    // SAFETY: interrupts are masked; `load` was saved by a previous switch or prepared for a
    // new task; `save` points into a boxed task or the scheduler static, both of which outlive
    // this switch (a task is freed only once reaped, after it last switched away).
    unsafe { context::switch(save, load) };
    // Whatever exited before we resumed is off its stack now.
    let dead = core::mem::take(&mut SCHEDULER.lock().dead);
    drop(dead);
    if were_enabled {
        cpu::enable_interrupts();
    }
}

/// `fork`: a copy of the current process whose user context is `frame` with 0 returned.
pub fn fork(frame: &TrapFrame) -> EResult<Pid> {
    clone(
        frame,
        CloneRequest {
            share_memory: false,
            share_files: false,
            share_fs: false,
            thread: false,
            share_signal_actions: false,
            stack: 0,
            tls: None,
            clear_child_tid: None,
            set_child_tid: None,
            set_parent_tid: None,
        },
    )
}

/// What `clone` was asked for, validated by the system-call layer.
#[derive(Clone, Copy, Debug)]
pub struct CloneRequest {
    pub share_memory: bool,
    pub share_files: bool,
    pub share_fs: bool,
    pub thread: bool,
    /// `CLONE_SIGHAND`: share the signal actions (threads must).
    pub share_signal_actions: bool,
    pub stack: u64,
    pub tls: Option<u64>,
    pub clear_child_tid: Option<u64>,
    pub set_child_tid: Option<u64>,
    pub set_parent_tid: Option<u64>,
}

/// Linux's `threads-max` (`set_max_threads`): at most an eighth of memory in kernel stacks,
/// and never fewer than 20 tasks. It stops root's fork bomb too, with `EAGAIN`.
fn max_tasks() -> usize {
    let frames = crate::mm::frame_allocator::stats().total as usize;
    (frames / (8 * kernel_stack::FRAMES)).max(20)
}

/// Linux's checks in `copy_process`: `RLIMIT_NPROC` counts every task (threads too, zombies
/// until reaped) of the caller's real user, and refuses one more when they are at the limit
/// unless the caller is root (or the user is); the kernel-wide `threads-max` applies to all.
/// Both are `EAGAIN`.
fn check_task_limits(scheduler: &Scheduler, parent_pid: Pid) -> EResult<()> {
    let parent = scheduler.tasks.get(&parent_pid).ok_or(Errno::ESRCH)?;
    let uid = parent.identity.uid.real;
    let limit = parent.limits.get(limits::RLIMIT_NPROC as u64)?.soft;
    if uid != 0 && !parent.identity.is_privileged() {
        let tasks = scheduler
            .tasks
            .values()
            .filter(|t| t.identity.uid.real == uid)
            .count() as u64;
        if tasks >= limit {
            return Err(Errno::EAGAIN);
        }
    }
    if scheduler.tasks.len() >= max_tasks() {
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// `clone`: a new thread (sharing the address space) or process (copy-on-write copy).
pub fn clone(frame: &TrapFrame, request: CloneRequest) -> EResult<Pid> {
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if request.stack != 0 {
        child_frame.rsp = request.stack;
    }
    let mut scheduler = SCHEDULER.lock();
    let parent_pid = scheduler.current;
    check_task_limits(&scheduler, parent_pid)?;
    let parent = scheduler.tasks.get_mut(&parent_pid).ok_or(Errno::ESRCH)?;
    let space = if request.share_memory {
        Arc::clone(&parent.space)
    } else {
        Arc::new(IrqSpinLock::new(parent.space.lock().duplicate()?))
    };
    let files = if request.share_files {
        Arc::clone(&parent.files)
    } else {
        Arc::new(IrqSpinLock::new(parent.files.lock().clone()))
    };
    let fs = if request.share_fs {
        Arc::clone(&parent.fs)
    } else {
        Arc::new(IrqSpinLock::new(parent.fs.lock().clone()))
    };
    let identity = parent.identity.clone();
    let (limits, dumpable, no_new_privs) =
        (parent.limits.clone(), parent.dumpable, parent.no_new_privs);
    let mut fpu = Box::new(FpuState::initial());
    fpu.save();
    let name = parent.name.clone();
    // A child belongs to the parent's process, not the thread that made it: any thread may
    // wait for it, and it outlives the thread (Linux reports the thread group in `getppid`).
    let (tgid, ppid) = if request.thread {
        (parent.tgid, parent.ppid)
    } else {
        (0, parent.tgid)
    };
    let (pgid, sid, fs_base) = (parent.pgid, parent.sid, parent.fs_base);
    let mut signals = parent.signals.clone();
    signals.clear_pending();
    // Init's immunity is its own (its threads share it), not its children's.
    signals.unkillable &= request.thread;
    if !request.share_signal_actions {
        signals.unshare_actions();
    }
    // A new thread shares the memory but not the alternate signal stack (Linux's sas_ss_reset).
    if request.thread {
        signals.alt_stack = signal::AltStack::default();
    }
    let pid = scheduler.next_pid;
    let mut child = new_process(
        pid,
        ppid,
        name,
        Arc::clone(&space),
        fs,
        files,
        child_frame,
        fpu,
    )?;
    child.identity = identity;
    (child.limits, child.dumpable, child.no_new_privs) = (limits, dumpable, no_new_privs);
    child.fs_base = request.tls.unwrap_or(fs_base);
    child.tgid = if request.thread { tgid } else { pid };
    child.is_thread = request.thread;
    (child.pgid, child.sid, child.signals) = (pgid, sid, signals);
    child.clear_child_tid = request.clear_child_tid.unwrap_or(0);
    scheduler.next_pid += 1;
    let parent_space = Arc::clone(&scheduler.tasks.get(&parent_pid).ok_or(Errno::ESRCH)?.space);
    scheduler.tasks.insert(pid, child);
    scheduler.run_queue.push_back(pid);
    drop(scheduler);
    let tid = pid.to_le_bytes();
    if let Some(address) = request.set_parent_tid {
        parent_space
            .lock()
            .write(UserSlice::new(address, 4)?, &tid)?;
    }
    if let Some(address) = request.set_child_tid {
        space.lock().write(UserSlice::new(address, 4)?, &tid)?;
    }
    Ok(pid)
}

/// `exit` of one thread (Linux's `do_exit`): the process ends only with its last thread.
pub fn exit_thread(code: i32) -> ! {
    finish_thread(ExitStatus::Code(code))
}

/// The calling thread ends, from the top of its kernel stack (everything below has been
/// unwound: its system call returned, or it never made one). Other threads free it once it
/// has switched away for the last time; the last thread of a process ends the process.
fn finish_thread(status: ExitStatus) -> ! {
    release_thread_memory();
    let last = {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let tgid = scheduler.tasks.get(&me).map_or(me, |t| t.tgid);
        let last = !scheduler
            .tasks
            .values()
            .any(|t| t.tgid == tgid && t.pid != me && !matches!(t.state, State::Zombie(_)));
        if !last && let Some(task) = scheduler.tasks.get_mut(&me) {
            // A first thread that leaves early stays (a zombie whose pid still names the
            // process) until the process ends and its parent reaps it.
            task.state = State::Zombie(status);
        }
        last
    };
    if last {
        exit_process(status);
    }
    // An `execve` in another thread may be waiting for this one to be gone.
    DE_THREAD.wake_all();
    schedule();
    unreachable!("an exited thread is never scheduled again")
}

/// Woken whenever a thread exits while others remain: what `execve`'s `de_thread` waits on.
static DE_THREAD: WaitQueue = WaitQueue::new();

/// A thread's last words to its address space: its robust futexes are marked owner-dead, and
/// (`CLONE_CHILD_CLEARTID`) its tid word is zeroed and whoever joins it woken.
fn release_thread_memory() {
    if let Ok((head, space, tid)) = with_current(|p| (p.robust_list, Arc::clone(&p.space), p.pid))
        && head != 0
    {
        futex::release_robust_list(&space, head, tid);
    }
    let target = with_current(|p| (p.clear_child_tid, Arc::clone(&p.space)));
    if let Ok((address, space)) = target
        && address != 0
        && let Ok(slice) = UserSlice::new(address, 4)
        && space.lock().write(slice, &[0; 4]).is_ok()
    {
        futex::wake(&space, address, 1);
    }
}

/// `exit_group` and fatal signals (Linux's `do_group_exit`). The first thread to get here
/// decides the process's status and marks every other thread for death
/// (`zap_other_threads`): each is woken from whatever it waits for, returns up its own kernel
/// stack to the way back to user mode — dropping everything it holds on the way — and exits
/// there. Nothing is freed under a thread that may still be using it, and the process ends
/// (and can be reaped) only when its last thread has.
pub fn exit_group(status: ExitStatus) -> ! {
    let status = {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let tgid = scheduler.tasks.get(&me).map_or(me, |t| t.tgid);
        match scheduler
            .tasks
            .get(&tgid)
            .map(|leader| (leader.group_exit, leader.group_exec))
        {
            // Another thread got here first: its status stands.
            Some((Some(decided), _)) => decided,
            // Killed by an `execve` in another thread: the process goes on without this one.
            Some((None, Some(exec))) if exec != me => status,
            _ => {
                if let Some(leader) = scheduler.tasks.get_mut(&tgid) {
                    leader.group_exit = Some(status);
                    leader.group_exec = None;
                }
                zap_other_threads(&mut scheduler, tgid, me);
                status
            }
        }
    };
    finish_thread(status)
}

/// Marks every other live thread of process `tgid` for death and wakes it from any sleep,
/// a job-control stop included; a stop that ends this way is not reported.
fn zap_other_threads(scheduler: &mut Scheduler, tgid: Pid, me: Pid) {
    let Scheduler {
        tasks, run_queue, ..
    } = scheduler;
    for task in tasks.values_mut() {
        if task.tgid != tgid || task.pid == me || matches!(task.state, State::Zombie(_)) {
            continue;
        }
        task.signals.zap();
        if matches!(
            task.state,
            State::Sleeping | State::WaitingForChild | State::Stopped
        ) {
            task.state = State::Runnable;
            run_queue.push_back(task.pid);
        }
    }
    if let Some(leader) = tasks.get_mut(&tgid) {
        leader.job_change = None;
    }
}

/// Linux's `de_thread`: before `execve` replaces the program, every other thread dies (each
/// unwinding its own stack as in `exit_group`) and the caller waits until they are gone; if
/// it is not the first thread, it takes over the process's pid. Only a fatal signal ends the
/// wait (`EINTR`; the caller then dies on its way out).
fn kill_other_threads_for_exec() -> EResult<()> {
    let alone = |scheduler: &Scheduler, me: Pid, tgid: Pid| {
        !scheduler
            .tasks
            .values()
            .any(|t| t.tgid == tgid && t.pid != me && !matches!(t.state, State::Zombie(_)))
    };
    let (me, tgid) = {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let tgid = scheduler.tasks.get(&me).ok_or(Errno::ESRCH)?.tgid;
        if me == tgid && alone(&scheduler, me, tgid) {
            return Ok(());
        }
        let leader = scheduler.tasks.get_mut(&tgid).ok_or(Errno::ESRCH)?;
        if leader.group_exit.is_some() || leader.group_exec.is_some() {
            return Err(Errno::EAGAIN); // the process is already dying
        }
        leader.group_exec = Some(me);
        zap_other_threads(&mut scheduler, tgid, me);
        (me, tgid)
    };
    let waited = DE_THREAD.wait_killable(|| alone(&SCHEDULER.lock(), me, tgid));
    let old_leader = {
        let mut scheduler = SCHEDULER.lock();
        if let Some(leader) = scheduler.tasks.get_mut(&tgid) {
            leader.group_exec = None;
        }
        waited?;
        if me == tgid {
            return Ok(());
        }
        // Take over the first thread's pid and place in the family; its zombie goes (it
        // switched away for the last time when it exited).
        let old_leader = scheduler.tasks.remove(&tgid);
        let mut task = scheduler.tasks.remove(&me).ok_or(Errno::ESRCH)?;
        if let Some(leader) = &old_leader {
            task.ppid = leader.ppid;
            task.pgid = leader.pgid;
            task.sid = leader.sid;
            task.start_ns = leader.start_ns;
            task.signals.unkillable = leader.signals.unkillable;
        }
        task.pid = tgid;
        task.is_thread = false;
        task.job_change = None;
        scheduler.tasks.insert(tgid, task);
        scheduler.current = tgid;
        CURRENT_PID.store(tgid, Ordering::Relaxed);
        old_leader
    };
    drop(old_leader);
    Ok(())
}

/// `execve` once the file is read: replace the current program, restart at `frame`.
pub fn exec(
    path: &str,
    image: &[u8],
    argv: &[&str],
    envp: &[&str],
    frame: &mut TrapFrame,
) -> EResult<()> {
    let Program {
        space,
        frame: entry,
    } = exec::load_program(image, argv, envp)?;
    kill_other_threads_for_exec()?;
    let files = with_current(|p| Arc::clone(&p.files))?;
    let closed = files.lock().close_for_exec();
    drop(closed);
    with_current(|p| {
        space.activate();
        p.space = Arc::new(IrqSpinLock::new(space)); // the old one is freed here (if unshared)
        p.name = comm_of(path);
        p.fs_base = 0;
        p.signals.reset_for_exec();
        *p.fpu = FpuState::initial();
        p.fpu.restore();
    })?;
    usermode::set_user_fs_base(0);
    *frame = entry;
    Ok(())
}

/// Which children `wait4` waits for.
#[derive(Clone, Copy, Debug)]
pub enum WaitFor {
    Any,
    Pid(Pid),
    /// Any child in this process group.
    Group(Pid),
}

/// What `wait4` and `waitid` report, and how.
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitOptions {
    /// `WNOHANG`: `None` rather than waiting.
    pub no_hang: bool,
    /// `WEXITED` (always, for `wait4`): a child that ended.
    pub exited: bool,
    /// `WUNTRACED`/`WSTOPPED`: a child that stopped.
    pub stopped: bool,
    /// `WCONTINUED`: a child that was continued.
    pub continued: bool,
    /// `WNOWAIT`: report the event but leave it to be reported again (the zombie unreaped).
    pub no_wait: bool,
}

/// A child's state change, as the wait calls report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildEvent {
    pub pid: Pid,
    /// The child's real user id (`waitid`'s `si_uid`).
    pub uid: u32,
    pub event: WaitEvent,
}

/// `wait4`/`waitid`: reaps a zombie child or reports a stop or continue (once each, as
/// `options` ask); `None` with `no_hang` if nothing is ready yet. `ECHILD` if no child matches
/// — where, as in Linux, a zombie does not count unless exits are asked for.
pub fn wait_child(which: WaitFor, options: WaitOptions) -> EResult<Option<ChildEvent>> {
    loop {
        let interrupted = {
            let mut scheduler = SCHEDULER.lock();
            let me = scheduler.current;
            let tgid = scheduler.tasks.get(&me).map_or(me, |t| t.tgid);
            let matches = |p: &Process| {
                !p.is_thread
                    && p.ppid == tgid
                    && (options.exited || !matches!(p.state, State::Zombie(_)))
                    && match which {
                        WaitFor::Any => true,
                        WaitFor::Pid(pid) => p.pid == pid,
                        WaitFor::Group(pgid) => p.pgid == pgid,
                    }
            };
            if !scheduler.tasks.values().any(|p| matches(p)) {
                return Err(Errno::ECHILD);
            }
            let ready = scheduler
                .tasks
                .values()
                .filter(|p| matches(p))
                .find_map(|p| {
                    let event = match (p.state, p.job_change) {
                        // A first thread that exited early is not the end of the process
                        // while other threads run (Linux's `delay_group_leader`).
                        (State::Zombie(_), _)
                            if scheduler
                                .tasks
                                .values()
                                .any(|t| t.tgid == p.pid && t.pid != p.pid) =>
                        {
                            return None;
                        }
                        (State::Zombie(status), _) => WaitEvent::Exited(status),
                        (_, Some(event @ WaitEvent::Stopped(_))) if options.stopped => event,
                        (_, Some(WaitEvent::Continued)) if options.continued => {
                            WaitEvent::Continued
                        }
                        _ => return None,
                    };
                    Some(ChildEvent {
                        pid: p.pid,
                        uid: p.identity.uid.real,
                        event,
                    })
                });
            match ready {
                Some(found) if options.no_wait => return Ok(Some(found)),
                Some(
                    found @ ChildEvent {
                        event: WaitEvent::Exited(_),
                        ..
                    },
                ) => {
                    let child = scheduler.tasks.remove(&found.pid);
                    drop(scheduler);
                    drop(child); // frees its kernel stack and address space
                    return Ok(Some(found));
                }
                Some(found) => {
                    if let Some(child) = scheduler.tasks.get_mut(&found.pid) {
                        child.job_change = None;
                    }
                    return Ok(Some(found));
                }
                None => {}
            }
            if options.no_hang {
                return Ok(None);
            }
            match scheduler.tasks.get_mut(&me) {
                Some(task) if task.signals.has_deliverable() => true,
                Some(task) => {
                    task.state = State::WaitingForChild;
                    false
                }
                None => false,
            }
        };
        if !interrupted {
            schedule();
        } else if signal_pending() {
            return Err(Errno::EINTR);
        }
        // A stop and continue here, or a signal that turned out to be ignored: look again.
    }
}

/// The process groups that `pid`'s exit may orphan (its own and its children's), those that are
/// not orphaned yet.
fn groups_linked_by(scheduler: &Scheduler, pid: Pid) -> alloc::vec::Vec<Pid> {
    let mut groups: alloc::vec::Vec<Pid> = scheduler
        .tasks
        .values()
        .filter(|t| !t.is_thread && (t.pid == pid || t.ppid == pid))
        .map(|t| t.pgid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups.retain(|&group| !group_orphaned(scheduler, group));
    groups
}

/// POSIX (Linux's `kill_orphaned_pgrp`): a process group that an exit orphaned while some of
/// it is stopped gets SIGHUP then SIGCONT, since no job-control shell is left to continue it.
fn hang_up_orphaned(scheduler: &mut Scheduler, groups: &[Pid]) {
    for &group in groups {
        let members = |t: &Process| t.pgid == group && !matches!(t.state, State::Zombie(_));
        if !group_orphaned(scheduler, group)
            || !scheduler
                .tasks
                .values()
                .any(|t| members(t) && t.state == State::Stopped)
        {
            continue;
        }
        let targets: alloc::vec::Vec<Pid> = scheduler
            .tasks
            .values()
            .filter(|t| !t.is_thread && members(t))
            .map(|t| t.pid)
            .collect();
        for signal in [signal::SIGHUP, signal::SIGCONT] {
            for &pid in &targets {
                let info = signal::Info {
                    code: signal::SI_KERNEL,
                    ..signal::Info::default()
                };
                post_signal(scheduler, pid, signal, info);
            }
        }
    }
}

/// The last thread of the current process has ended (`status`, unless the process's status
/// was decided before): the process becomes a zombie for its parent; init ending ends the
/// machine.
fn exit_process(status: ExitStatus) -> ! {
    // Linux's `exit_mm`: the memory goes back now, not when the parent reaps the zombie (the
    // OOM killer's victim makes room by exiting). Not while a live task of another process
    // shares it (vfork); this process's exited threads only keep their reference.
    let space = {
        let scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        scheduler.tasks.get(&me).and_then(|task| {
            let shared = scheduler.tasks.values().any(|t| {
                t.tgid != task.tgid
                    && !matches!(t.state, State::Zombie(_))
                    && Arc::ptr_eq(&t.space, &task.space)
            });
            (!shared).then(|| Arc::clone(&task.space))
        })
    };
    if let Some(space) = space {
        space.lock().release_user_memory();
    }
    // Linux's `exit_files`: the descriptors close now, not when the parent reaps the zombie,
    // so a pipe's reader sees end-of-file as soon as its last writer has exited (a shell
    // reads `$(...)` to the end before it waits for the command). A first thread that exited
    // earlier holds the table too.
    let (mine, leaders) = {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let tgid = scheduler.tasks.get(&me).map_or(me, |t| t.tgid);
        let mut take = |pid: Pid| {
            scheduler.tasks.get_mut(&pid).map(|p| {
                core::mem::replace(&mut p.files, Arc::new(IrqSpinLock::new(FdTable::new())))
            })
        };
        (take(me), take(tgid))
    };
    drop(mine);
    drop(leaders);
    let (pid, name, status) = {
        let mut scheduler = SCHEDULER.lock();
        let me = scheduler.current;
        let tgid = scheduler.tasks.get(&me).map_or(me, |t| t.tgid);
        let linked = groups_linked_by(&scheduler, tgid);
        if let Some(task) = scheduler.tasks.get_mut(&me) {
            task.state = State::Zombie(status);
        }
        // The process's status: a group exit's, else that of its first thread if it left
        // earlier (Linux's `wait_task_zombie`), else this thread's.
        let (pid, name, ppid, status) = match scheduler.tasks.get_mut(&tgid) {
            Some(leader) => {
                let status = match (leader.group_exit, leader.state) {
                    (Some(decided), _) => decided,
                    (None, State::Zombie(own)) if leader.pid != me => own,
                    (None, _) => status,
                };
                leader.state = State::Zombie(status);
                (leader.pid, leader.name.clone(), leader.ppid, status)
            }
            None => (0, String::new(), 0, status),
        };
        // Orphans go to init; those that asked (`PR_SET_PDEATHSIG`) get their signal.
        let mut bereaved = alloc::vec::Vec::new();
        for task in scheduler.tasks.values_mut() {
            if task.ppid == pid {
                task.ppid = 1;
                if task.parent_death_signal != 0 {
                    bereaved.push((task.pid, task.parent_death_signal));
                }
            }
        }
        for (child, signal) in bereaved {
            let info = signal::Info {
                code: signal::SI_USER,
                pid,
                ..signal::Info::default()
            };
            post_signal(&mut scheduler, child, signal, info);
        }
        hang_up_orphaned(&mut scheduler, &linked);
        let (code, value) = match status {
            ExitStatus::Code(code) => (signal::CLD_EXITED, code),
            ExitStatus::Signal {
                signal,
                core: false,
            } => (signal::CLD_KILLED, i32::from(signal)),
            ExitStatus::Signal { signal, core: true } => (signal::CLD_DUMPED, i32::from(signal)),
        };
        let info = signal::Info {
            code,
            pid,
            status: value,
            address: 0,
        };
        signal_parent(&mut scheduler, ppid, Some(info));
        (pid, name, status)
    };
    // Like Linux, only init's end and deaths by a fault signal are worth a console line.
    match status {
        ExitStatus::Code(code) if pid == 1 => kprintln!("{name}[{pid}]: exited with status {code}"),
        ExitStatus::Signal { signal, core } if pid == 1 || core => kprintln!(
            "{name}[{pid}]: killed by signal {signal} ({}){}",
            signal::name(signal),
            if core { " (core dumped)" } else { "" }
        ),
        _ => {}
    }
    // Nothing owned may be left on this stack: the task never returns from `schedule`.
    drop(name);
    if pid == 1 {
        final_report();
        kprintln!("init has exited; powering off");
        crate::arch::x86_64::power::exit(crate::arch::x86_64::power::ExitCode::Success);
    }
    schedule();
    unreachable!("a zombie is never scheduled again")
}

/// What the machine leaves behind when init ends: live heap and, with the leak tracker on, a
/// scan — so "did this workload leak?" is answered by the last lines of every boot.
fn final_report() {
    let heap = crate::mm::heap::stats();
    kprintln!(
        "heap: {} live allocations, {} bytes at shutdown",
        heap.live_allocations,
        heap.live_bytes
    );
    kprintln!(
        "fault injection: {} failslab and {} fail_page_alloc failures injected; oom-killer: {} \
         processes killed",
        crate::mm::fault_inject::FAILSLAB.injected(),
        crate::mm::fault_inject::FAIL_PAGE_ALLOC.injected(),
        crate::mm::oom::kills()
    );
    if let Ok(scan) = crate::mm::leak::scan() {
        kprintln!(
            "kmemleak: {} new suspected memory leaks ({} unreferenced of {} objects)",
            scan.new,
            scan.unreferenced,
            scan.objects
        );
        if scan.new > 0 {
            // The first few, in kmemleak's format: enough to name the leaking code.
            let mut out = String::new();
            crate::mm::leak::write_leaks(&mut out, false);
            for line in out.lines().take(40) {
                kprintln!("{line}");
            }
        }
    }
}

/// A CPU exception in user mode becomes a signal for the process (delivered on the way back to
/// user mode). Like Linux's `force_sig_fault`, a blocked or ignored fault signal is unblocked
/// and reset to its default action: a program cannot ignore its own segfault.
pub fn user_exception(frame: &TrapFrame) {
    const PF_PRESENT: u64 = 1;
    const PF_WRITE: u64 = 2;
    if frame.vector == 14 && frame.error_code & (PF_PRESENT | PF_WRITE) == PF_PRESENT | PF_WRITE {
        let address = cpu::read_cr2();
        match with_current(|p| p.space.lock().resolve_write_fault(address)) {
            // A copy-on-write page, now private: retry the write.
            Ok(Resolution::Resolved) => return,
            Ok(Resolution::OutOfMemory) if out_of_memory_at_fault() => return,
            _ => {}
        }
    }
    if frame.vector == 14 && frame.error_code & PF_PRESENT == 0 {
        let address = cpu::read_cr2();
        match with_current(|p| p.space.lock().resolve_missing_page(address)) {
            // First touch of a lazily allocated page.
            Ok(Resolution::Resolved) => return,
            Ok(Resolution::OutOfMemory) if out_of_memory_at_fault() => return,
            _ => {}
        }
    }
    let (signal, code, address) = match frame.vector {
        14 => {
            let code = if frame.error_code & 1 == 0 {
                signal::SEGV_MAPERR
            } else {
                signal::SEGV_ACCERR
            };
            (signal::SIGSEGV, code, cpu::read_cr2())
        }
        0 | 16 | 19 => (signal::SIGFPE, 1, frame.rip),
        1 | 3 => (signal::SIGTRAP, 1, frame.rip),
        6 => (signal::SIGILL, 2, frame.rip),
        17 => (signal::SIGBUS, 1, frame.rip),
        _ => (signal::SIGSEGV, 0x80, 0),
    };
    let _ = with_current(|p| {
        p.signals.force(
            signal,
            signal::Info {
                code,
                pid: 0,
                status: 0,
                address,
            },
        )
    });
}

/// A user fault found no frame: run the OOM killer. True if the access should be retried (a
/// victim was killed, maybe this process — its `SIGKILL` is delivered before the retry — or an
/// earlier victim is still exiting); false if nothing could be killed, and the fault becomes a
/// signal as before.
fn out_of_memory_at_fault() -> bool {
    crate::mm::oom::out_of_memory() != crate::mm::oom::Outcome::NothingToKill
}

/// The kernel log line Linux prints for an unhandled fault (`show_signal_msg`).
fn report_fault(frame: &TrapFrame) {
    if frame.vector >= 32 {
        return; // not a CPU exception: the signal was sent, or forced by a system call
    }
    let (pid, name) = with_current(|p| (p.pid, p.name.clone())).unwrap_or((0, String::new()));
    let mut line = String::new();
    if frame.vector == 14 {
        let _ = write!(
            line,
            "{name}[{pid}]: segfault at {:x} ip {:016x} sp {:016x} error {:x}",
            cpu::read_cr2(),
            frame.rip,
            frame.rsp,
            frame.error_code
        );
    } else {
        let (mnemonic, description) = crate::arch::x86_64::trap::exception_name(frame.vector);
        let _ = write!(
            line,
            "{name}[{pid}]: {description} ({mnemonic}) ip {:016x} sp {:016x}",
            frame.rip, frame.rsp
        );
    }
    kprintln!("{line}");
}

crate::kernel_test!(wait_statuses_and_states_match_linux, {
    // <sys/wait.h>: WIFSTOPPED is 0x7f in the low byte, WSTOPSIG above it; WIFCONTINUED 0xffff.
    crate::check_eq!(WaitEvent::Stopped(signal::SIGTSTP).wait_status(), 0x147f);
    crate::check_eq!(WaitEvent::Stopped(signal::SIGSTOP).wait_status(), 0x137f);
    crate::check_eq!(WaitEvent::Continued.wait_status(), 0xffff);
    crate::check_eq!(WaitEvent::Exited(ExitStatus::Code(3)).wait_status(), 0x300);
    crate::check_eq!(State::Stopped.letter(), 'T');
});
