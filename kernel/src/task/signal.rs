//! POSIX signals with Linux's numbers, actions and x86_64 signal frame.
//!
//! A signal is made pending by `kill`/`tgkill`, a child's exit, stop or continue (SIGCHLD) or a
//! fault (SIGSEGV, SIGILL, SIGFPE, SIGTRAP with the faulting address in `siginfo`), and acted on
//! when the task next returns to user mode: the default action (terminate, terminate with
//! "core", ignore, stop), or the handler, entered through an `rt_sigframe` laid out exactly as
//! Linux lays it out, so that libc's `sigaction` and `SA_RESTORER` trampolines work unchanged.
//! `rt_sigreturn` undoes it.
//!
//! This module is one task's bookkeeping; what a signal does to the process as a whole (a stop
//! takes every thread, SIGCONT continues them whatever its disposition) is the scheduler's, in
//! `task`.

use alloc::sync::Arc;

use crate::arch::x86_64::context::FpuState;
use crate::arch::x86_64::gdt::{USER_CODE, USER_DATA};
use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::{EResult, Errno};
use crate::mm::user::{AddressSpace, UserSlice};
use crate::sync::IrqSpinLock;

pub const SIGHUP: u8 = 1;
pub const SIGINT: u8 = 2;
pub const SIGQUIT: u8 = 3;
pub const SIGILL: u8 = 4;
pub const SIGTRAP: u8 = 5;
pub const SIGABRT: u8 = 6;
pub const SIGBUS: u8 = 7;
pub const SIGFPE: u8 = 8;
pub const SIGKILL: u8 = 9;
pub const SIGUSR1: u8 = 10;
pub const SIGSEGV: u8 = 11;
pub const SIGUSR2: u8 = 12;
pub const SIGPIPE: u8 = 13;
pub const SIGALRM: u8 = 14;
pub const SIGTERM: u8 = 15;
pub const SIGCHLD: u8 = 17;
pub const SIGCONT: u8 = 18;
pub const SIGSTOP: u8 = 19;
pub const SIGTSTP: u8 = 20;
pub const SIGTTIN: u8 = 21;
pub const SIGTTOU: u8 = 22;
pub const SIGURG: u8 = 23;
pub const SIGWINCH: u8 = 28;
/// Signals are 1..=64.
pub const MAX_SIGNAL: u8 = 64;

const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
/// In the SIGCHLD action: no SIGCHLD when a child stops or continues.
const SA_NOCLDSTOP: u64 = 0x1;
const SA_SIGINFO: u64 = 0x4;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;

pub fn name(signal: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(usize::from(signal)).copied().unwrap_or("SIGRT")
}

fn bit(signal: u8) -> u64 {
    1u64 << (signal - 1)
}

/// What the default action of a signal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate "with core dump": the exit status says so (128 + n in shells).
    CoreDump,
    Ignore,
    /// Job control: the process stops until SIGCONT (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU).
    Stop,
    /// SIGCONT: continuing happens when it is sent, whatever the disposition; taking it with the
    /// default action does nothing more.
    Continue,
}

pub fn default_action(signal: u8) -> DefaultAction {
    match signal {
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGCONT => DefaultAction::Continue,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | 24 | 25 | 31 => {
            DefaultAction::CoreDump
        }
        _ => DefaultAction::Terminate,
    }
}

/// Whether `signal` stops the process by default (`sig_kernel_stop`).
pub fn is_stop(signal: u8) -> bool {
    default_action(signal) == DefaultAction::Stop
}

/// SIGSTOP, SIGTSTP, SIGTTIN and SIGTTOU as a set.
pub const STOP_SIGNALS: u64 =
    1 << (SIGSTOP - 1) | 1 << (SIGTSTP - 1) | 1 << (SIGTTIN - 1) | 1 << (SIGTTOU - 1);

/// Whether the default action does nothing (`sig_kernel_ignore`: SIGCONT's continuing is done
/// when it is sent).
fn ignored_by_default(signal: u8) -> bool {
    matches!(
        default_action(signal),
        DefaultAction::Ignore | DefaultAction::Continue
    )
}

/// `struct k_sigaction` as the kernel sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl Action {
    pub fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (i, word) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
        Self {
            handler: word(0),
            flags: word(1),
            restorer: word(2),
            mask: word(3),
        }
    }
}

/// The parts of `siginfo_t` we fill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub code: i32,
    pub pid: u32,
    pub status: i32,
    /// `si_addr` for faults.
    pub address: u64,
}

pub const SI_USER: i32 = 0;
pub const SI_TKILL: i32 = -6;
/// Sent by the kernel (the terminal's signal characters, job control).
pub const SI_KERNEL: i32 = 0x80;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
/// Killed by a signal that dumped core.
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// The signal actions of a process (Linux's `sighand_struct`): threads made with
/// `CLONE_SIGHAND` share one table, so a handler one thread installs is the one every thread
/// runs; `fork` and `execve` give the process a copy of its own (`unshared`).
#[derive(Clone)]
pub struct Dispositions(Arc<IrqSpinLock<[Action; MAX_SIGNAL as usize]>>);

impl Dispositions {
    fn new() -> Self {
        Self(Arc::new(IrqSpinLock::new(
            [Action::default(); MAX_SIGNAL as usize],
        )))
    }

    fn get(&self, signal: u8) -> Action {
        self.0.lock()[usize::from(signal - 1)]
    }

    fn set(&self, signal: u8, action: Action) {
        self.0.lock()[usize::from(signal - 1)] = action;
    }

    fn all(&self) -> [Action; MAX_SIGNAL as usize] {
        *self.0.lock()
    }

    fn update(&self, f: impl FnOnce(&mut [Action; MAX_SIGNAL as usize])) {
        f(&mut self.0.lock());
    }

    /// A private copy (`fork`, `execve`).
    pub fn unshared(&self) -> Self {
        Self(Arc::new(IrqSpinLock::new(self.all())))
    }
}

/// A process's signal dispositions, mask and pending set.
#[derive(Clone)]
pub struct Signals {
    /// What each signal does: shared by threads made with `CLONE_SIGHAND`, as in Linux.
    actions: Dispositions,
    pub blocked: u64,
    pending: u64,
    /// The set a `sigtimedwait` in progress waits for (0 otherwise): these signals are queued
    /// even when ignored by default, and their arrival wakes the waiter.
    pub awaited: u64,
    /// The mask to go back to after a `rt_sigsuspend` (Linux's `saved_sigmask`): the handler
    /// that ends the suspension runs with the temporary mask and restores this one on return.
    pub restore_mask: Option<u64>,
    /// Init (Linux's `SIGNAL_UNKILLABLE`): a signal it has no handler for is discarded, even
    /// SIGKILL, so no user can take the system down by killing pid 1 — except a fault, which
    /// `force` delivers (and then init dies, as on Linux).
    pub unkillable: bool,
    /// The thread must die (Linux's `zap_other_threads`: its process is exiting, or another
    /// thread is replacing the program): SIGKILL comes before anything else, whatever the
    /// process's immunity, and interrupts every blocking call.
    zapped: bool,
    /// `sigaltstack`: where `SA_ONSTACK` handlers run (per thread, as in Linux).
    pub alt_stack: AltStack,
    info: [Info; MAX_SIGNAL as usize],
}

/// `stack_t` flags.
pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const SS_AUTODISARM: u32 = 1 << 31;
/// Linux's `MINSIGSTKSZ` on x86_64: a smaller alternate stack is `ENOMEM`.
pub const MIN_ALT_STACK: u64 = 2048;

/// An alternate signal stack (`stack_t`): `size == 0` means none (`SS_DISABLE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    /// `SS_AUTODISARM`: disarmed while a handler runs on it, re-armed by `rt_sigreturn`.
    pub autodisarm: bool,
}

impl AltStack {
    pub fn contains(&self, sp: u64) -> bool {
        self.size != 0 && sp > self.sp && sp - self.sp <= self.size
    }

    /// `stack_t` as `sigaltstack` reports it for a thread whose stack pointer is `sp`.
    pub fn to_bytes(self, sp: u64) -> [u8; 24] {
        let mut flags = if self.size == 0 {
            SS_DISABLE
        } else if self.contains(sp) {
            SS_ONSTACK
        } else {
            0
        };
        if self.autodisarm {
            flags |= SS_AUTODISARM;
        }
        let mut bytes = [0u8; 24];
        bytes[0..8].copy_from_slice(&self.sp.to_le_bytes());
        bytes[8..12].copy_from_slice(&flags.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.size.to_le_bytes());
        bytes
    }

    /// A new setting from a user `stack_t` (Linux's `do_sigaltstack`): `EINVAL` for unknown
    /// flags, `ENOMEM` below `MINSIGSTKSZ`; `SS_DISABLE` clears it.
    pub fn from_bytes(bytes: &[u8; 24]) -> EResult<Self> {
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let flags = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or([0; 4]));
        let autodisarm = flags & SS_AUTODISARM != 0;
        match flags & !SS_AUTODISARM {
            SS_DISABLE => Ok(Self::default()),
            0 | SS_ONSTACK => {
                let (sp, size) = (word(0), word(16));
                if size < MIN_ALT_STACK {
                    return Err(Errno::ENOMEM);
                }
                Ok(Self {
                    sp,
                    size,
                    autodisarm,
                })
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            actions: Dispositions::new(),
            blocked: 0,
            pending: 0,
            awaited: 0,
            restore_mask: None,
            unkillable: false,
            zapped: false,
            alt_stack: AltStack::default(),
            info: [Info::default(); MAX_SIGNAL as usize],
        }
    }
}

/// What to do with the next deliverable signal.
pub enum Delivery {
    None,
    Terminate {
        signal: u8,
        core: bool,
    },
    Handle {
        signal: u8,
        action: Action,
        info: Info,
    },
    /// Stop the process (a default-action job-control signal).
    Stop {
        signal: u8,
    },
}

fn valid(signal: u64) -> EResult<u8> {
    u8::try_from(signal)
        .ok()
        .filter(|s| (1..=MAX_SIGNAL).contains(s))
        .ok_or(Errno::EINVAL)
}

pub fn check_signal(signal: u64) -> EResult<u8> {
    valid(signal)
}

impl Signals {
    /// After `execve`: handlers reset to default (ignored signals stay ignored), mask kept.
    pub fn reset_for_exec(&mut self) {
        // A new program starts without an alternate stack (its memory is gone).
        self.alt_stack = AltStack::default();
        // The new program's handlers are its own, whatever threads shared before.
        self.actions = self.actions.unshared();
        self.actions.update(|actions| {
            for action in actions.iter_mut() {
                if action.handler != SIG_IGN {
                    *action = Action::default();
                }
            }
        });
    }

    /// A private copy of the actions (a new process made without `CLONE_SIGHAND`).
    pub fn unshare_actions(&mut self) {
        self.actions = self.actions.unshared();
    }

    pub fn action(&self, signal: u8) -> Action {
        self.actions.get(signal)
    }

    /// `rt_sigaction`: SIGKILL and SIGSTOP cannot be caught or ignored.
    pub fn set_action(&mut self, signal: u8, action: Action) -> EResult<()> {
        if signal == SIGKILL || signal == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut action = action;
        action.mask &= !(bit(SIGKILL) | bit(SIGSTOP));
        self.actions.set(signal, action);
        if self.ignores(signal) {
            self.pending &= !bit(signal);
        }
        Ok(())
    }

    /// Whether taking `signal` would do nothing (`sig_handler_ignored`, and for init
    /// `sig_task_ignored`'s `SIGNAL_UNKILLABLE` rule: no default action at all).
    fn ignores(&self, signal: u8) -> bool {
        let handler = self.action(signal).handler;
        handler == SIG_IGN
            || (handler == SIG_DFL && (ignored_by_default(signal) || self.unkillable))
    }

    /// Whether `signal` is blocked or set to SIG_IGN: the terminal's job control does not stop a
    /// process that does either (Linux's `is_ignored` in the TTY layer).
    pub fn ignores_or_blocks(&self, signal: u8) -> bool {
        self.blocked & bit(signal) != 0 || self.action(signal).handler == SIG_IGN
    }

    /// Whether the parent wants SIGCHLD when a child stops or continues (no `SA_NOCLDSTOP`).
    pub fn wants_child_stops(&self) -> bool {
        self.action(SIGCHLD).flags & SA_NOCLDSTOP == 0
    }

    /// Whether the default action is in force: a stop signal sent to init is discarded then.
    pub fn is_default(&self, signal: u8) -> bool {
        self.action(signal).handler == SIG_DFL
    }

    /// Drops the pending signals of `set` (SIGCONT and the stop signals cancel each other).
    pub fn discard(&mut self, set: u64) {
        self.pending &= !set;
    }

    pub fn set_blocked(&mut self, mask: u64) {
        self.blocked = mask & !(bit(SIGKILL) | bit(SIGSTOP));
    }

    /// Makes `signal` pending unless it would be ignored anyway. As in Linux's `sig_ignored`,
    /// a blocked or awaited signal is kept: its disposition may change before it is taken.
    pub fn post(&mut self, signal: u8, info: Info) {
        let held = (self.blocked | self.awaited) & bit(signal) != 0;
        if self.ignores(signal) && !held {
            return;
        }
        self.pending |= bit(signal);
        self.info[usize::from(signal - 1)] = info;
    }

    /// Marks the thread for death (see `zapped`): SIGKILL, which nothing blocks or ignores.
    pub fn zap(&mut self) {
        self.zapped = true;
        self.pending |= bit(SIGKILL);
        self.info[usize::from(SIGKILL - 1)] = Info {
            code: SI_KERNEL,
            ..Info::default()
        };
    }

    /// Whether the thread is dying: zapped, or SIGKILL is pending (Linux's
    /// `fatal_signal_pending`), so a wait that only a fatal signal may end must end.
    pub fn fatal_pending(&self) -> bool {
        self.zapped || (self.pending & bit(SIGKILL) != 0 && !self.ignores(SIGKILL))
    }

    /// A fault signal: unblocked and reset to default if the program blocks or ignores it.
    pub fn force(&mut self, signal: u8, info: Info) {
        let action = self.action(signal);
        if self.blocked & bit(signal) != 0 || action.handler == SIG_IGN {
            self.actions.set(signal, Action::default());
            self.blocked &= !bit(signal);
        }
        // A fault init cannot handle kills it (Linux's `force_sig_info_to_task`).
        if self.action(signal).handler == SIG_DFL {
            self.unkillable = false;
        }
        self.pending |= bit(signal);
        self.info[usize::from(signal - 1)] = info;
    }

    /// `sigtimedwait`: takes the lowest pending signal of `set` (whether blocked or not).
    pub fn take_from(&mut self, set: u64) -> Option<(u8, Info)> {
        let ready = self.pending & set;
        if ready == 0 {
            return None;
        }
        let signal = ready.trailing_zeros() as u8 + 1;
        self.pending &= !bit(signal);
        Some((signal, self.info[usize::from(signal - 1)]))
    }

    /// Encodes `info` for `signal` as a `siginfo_t` (128 bytes).
    pub fn encode_info(signal: u8, info: &Info) -> [u8; 128] {
        siginfo(signal, info)
    }

    /// A new child starts with nothing pending.
    pub fn clear_pending(&mut self) {
        self.pending = 0;
        self.zapped = false;
    }

    /// The signals set to be ignored and those with a handler (`SigIgn`/`SigCgt` in
    /// `/proc/<pid>/status`; bit `n - 1` for signal `n`).
    pub fn disposition_masks(&self) -> (u64, u64) {
        let (mut ignored, mut caught) = (0, 0);
        for (index, action) in self.actions.all().iter().enumerate() {
            let bit = 1u64 << index;
            match action.handler {
                SIG_DFL => {}
                SIG_IGN => ignored |= bit,
                _ => caught |= bit,
            }
        }
        (ignored, caught)
    }

    pub fn pending_mask(&self) -> u64 {
        self.pending
    }

    /// Whether a signal the current `sigtimedwait` waits for is pending.
    pub fn has_awaited(&self) -> bool {
        self.pending & self.awaited != 0
    }

    /// Whether a signal that would interrupt a blocking call is pending.
    pub fn has_deliverable(&self) -> bool {
        self.pending & !self.blocked != 0
    }

    /// The lowest deliverable signal that does something, left pending (signals that are
    /// ignored, by disposition or by default, are consumed on the way).
    fn next_deliverable(&mut self) -> Option<u8> {
        if self.zapped {
            return Some(SIGKILL);
        }
        loop {
            let ready = self.pending & !self.blocked;
            if ready == 0 {
                return None;
            }
            let signal = ready.trailing_zeros() as u8 + 1;
            if !self.ignores(signal) {
                return Some(signal);
            }
            self.pending &= !bit(signal);
        }
    }

    /// Takes the lowest deliverable signal that does something and says what.
    pub fn take(&mut self) -> Delivery {
        let Some(signal) = self.next_deliverable() else {
            return Delivery::None;
        };
        self.pending &= !bit(signal);
        let info = self.info[usize::from(signal - 1)];
        let action = self.action(signal);
        if action.handler != SIG_DFL {
            if action.flags & SA_RESETHAND != 0 {
                self.actions.set(signal, Action::default());
            }
            return Delivery::Handle {
                signal,
                action,
                info,
            };
        }
        match default_action(signal) {
            DefaultAction::Terminate => Delivery::Terminate {
                signal,
                core: false,
            },
            // No core file is written yet, so the status does not say one was (`WCOREDUMP`
            // clear, `CLD_KILLED`), exactly as Linux with `RLIMIT_CORE` 0, Debian's default.
            DefaultAction::CoreDump => Delivery::Terminate {
                signal,
                core: false,
            },
            DefaultAction::Stop => Delivery::Stop { signal },
            DefaultAction::Ignore | DefaultAction::Continue => Delivery::None,
        }
    }

    /// Takes the lowest deliverable signal only if it stops the process: a blocking call acts on
    /// a stop where it sleeps and goes on waiting once continued (Linux restarts the call), while
    /// any other signal still interrupts it.
    pub fn take_stop(&mut self) -> Option<u8> {
        let signal = self.next_deliverable()?;
        if self.action(signal).handler != SIG_DFL || !is_stop(signal) {
            return None;
        }
        self.pending &= !bit(signal);
        Some(signal)
    }
}

// Offsets in Linux's x86_64 `struct rt_sigframe` (arch/x86/include/asm/sigframe.h).
const UC_OFFSET: u64 = 8; // after pretcode
const UC_STACK: u64 = 16; // after uc_flags and uc_link
const UC_MCONTEXT: u64 = 40; // uc_flags, uc_link, uc_stack (24)
const UC_SIGMASK: u64 = UC_MCONTEXT + 256;
const UC_SIZE: u64 = UC_SIGMASK + 8;
const INFO_OFFSET: u64 = UC_OFFSET + UC_SIZE;
const FRAME_SIZE: u64 = INFO_OFFSET + 128;
const FPSTATE_SIZE: u64 = 512;

fn sigcontext(frame: &TrapFrame, old_mask: u64, fpstate: u64, info: &Info) -> [u8; 256] {
    let mut bytes = [0u8; 256];
    let words = [
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rdi,
        frame.rsi,
        frame.rbp,
        frame.rbx,
        frame.rdx,
        frame.rax,
        frame.rcx,
        frame.rsp,
        frame.rip,
        frame.rflags,
    ];
    for (i, word) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    bytes[144..146].copy_from_slice(&(frame.cs as u16).to_le_bytes());
    bytes[150..152].copy_from_slice(&(frame.ss as u16).to_le_bytes());
    bytes[152..160].copy_from_slice(&frame.error_code.to_le_bytes());
    bytes[160..168].copy_from_slice(&frame.vector.min(31).to_le_bytes());
    bytes[168..176].copy_from_slice(&old_mask.to_le_bytes());
    bytes[176..184].copy_from_slice(&info.address.to_le_bytes());
    bytes[184..192].copy_from_slice(&fpstate.to_le_bytes());
    bytes
}

fn siginfo(signal: u8, info: &Info) -> [u8; 128] {
    let mut bytes = [0u8; 128];
    bytes[0..4].copy_from_slice(&i32::from(signal).to_le_bytes());
    bytes[8..12].copy_from_slice(&info.code.to_le_bytes());
    if matches!(signal, SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP) {
        bytes[16..24].copy_from_slice(&info.address.to_le_bytes());
    } else {
        bytes[16..20].copy_from_slice(&info.pid.to_le_bytes());
        if signal == SIGCHLD {
            bytes[24..28].copy_from_slice(&info.status.to_le_bytes());
        }
    }
    bytes
}

/// Builds the signal frame on the user stack and points `frame` at the handler.
pub fn enter_handler(
    space: &mut AddressSpace,
    signals: &mut Signals,
    fpu: &FpuState,
    frame: &mut TrapFrame,
    signal: u8,
    action: Action,
    info: Info,
) -> EResult<()> {
    if action.flags & SA_RESTORER == 0 {
        // x86_64 has no kernel-provided trampoline: libc always supplies one.
        return Err(Errno::EFAULT);
    }
    // `SA_ONSTACK` handlers start at the top of the alternate stack, unless already on it
    // (a nested signal continues below the current frame).
    let stack = signals.alt_stack;
    let on_alt_stack =
        action.flags & SA_ONSTACK != 0 && stack.size != 0 && !stack.contains(frame.rsp);
    let user_sp = if on_alt_stack {
        stack.sp + stack.size
    } else {
        frame.rsp
    };
    // Below the red zone, FP state 64-aligned, then the frame with (rsp + 8) 16-aligned.
    let fpstate = user_sp
        .checked_sub(128 + FPSTATE_SIZE)
        .ok_or(Errno::EFAULT)?
        & !63;
    let base = ((fpstate - FRAME_SIZE) & !15) - 8;
    let old_mask = signals.restore_mask.take().unwrap_or(signals.blocked);
    let mut bytes = [0u8; FRAME_SIZE as usize];
    bytes[0..8].copy_from_slice(&action.restorer.to_le_bytes());
    let mcontext = sigcontext(frame, old_mask, fpstate, &info);
    // uc_stack: the alternate stack as it was, which `rt_sigreturn` puts back.
    let at = (UC_OFFSET + UC_STACK) as usize;
    bytes[at..at + 24].copy_from_slice(&stack.to_bytes(frame.rsp));
    let at = (UC_OFFSET + UC_MCONTEXT) as usize;
    bytes[at..at + 256].copy_from_slice(&mcontext);
    let at = (UC_OFFSET + UC_SIGMASK) as usize;
    bytes[at..at + 8].copy_from_slice(&old_mask.to_le_bytes());
    let at = INFO_OFFSET as usize;
    bytes[at..at + 128].copy_from_slice(&siginfo(signal, &info));
    space.write(
        UserSlice::new(fpstate, FPSTATE_SIZE as usize)?,
        fpu.as_bytes(),
    )?;
    space.write(UserSlice::new(base, bytes.len())?, &bytes)?;

    let mut blocked = signals.blocked | action.mask;
    if action.flags & SA_NODEFER == 0 {
        blocked |= bit(signal);
    }
    signals.set_blocked(blocked);
    if on_alt_stack && stack.autodisarm {
        signals.alt_stack = AltStack::default();
    }
    frame.rsp = base;
    frame.rip = action.handler;
    frame.rdi = u64::from(signal);
    frame.rsi = if action.flags & SA_SIGINFO != 0 {
        base + INFO_OFFSET
    } else {
        0
    };
    frame.rdx = base + UC_OFFSET;
    frame.rax = 0;
    frame.rflags &= !(1 << 8 | 1 << 10); // TF, DF clear on entry, as Linux does
    Ok(())
}

/// `rt_sigreturn`: restores the context saved by `enter_handler` (the handler returned to the
/// restorer, which popped `pretcode`, so the frame starts 8 bytes below RSP).
pub fn restore(
    space: &mut AddressSpace,
    signals: &mut Signals,
    fpu: &mut FpuState,
    frame: &mut TrapFrame,
) -> EResult<()> {
    let base = frame.rsp.checked_sub(8).ok_or(Errno::EFAULT)?;
    let mut bytes = [0u8; UC_SIZE as usize];
    space.read(UserSlice::new(base + UC_OFFSET, bytes.len())?, &mut bytes)?;
    let mc = &bytes[UC_MCONTEXT as usize..UC_MCONTEXT as usize + 256];
    let word = |i: usize| u64::from_le_bytes(mc[i * 8..i * 8 + 8].try_into().expect("8"));
    let restored = TrapFrame {
        r8: word(0),
        r9: word(1),
        r10: word(2),
        r11: word(3),
        r12: word(4),
        r13: word(5),
        r14: word(6),
        r15: word(7),
        rdi: word(8),
        rsi: word(9),
        rbp: word(10),
        rbx: word(11),
        rdx: word(12),
        rax: word(13),
        rcx: word(14),
        rsp: word(15),
        rip: word(16),
        // Only the flags a user program may change; IF stays on.
        rflags: (word(17) & 0x0000_0000_0004_0dd5) | (1 << 9) | (1 << 1),
        cs: u64::from(USER_CODE),
        ss: u64::from(USER_DATA),
        vector: frame.vector,
        error_code: 0,
    };
    if restored.rip >= crate::mm::user::USER_END || restored.rsp >= crate::mm::user::USER_END {
        return Err(Errno::EFAULT);
    }
    let fpstate = word(23);
    if fpstate != 0 {
        let mut state = [0u8; FPSTATE_SIZE as usize];
        space.read(UserSlice::new(fpstate, state.len())?, &mut state)?;
        fpu.load_bytes(&state);
    }
    let mask = u64::from_le_bytes(
        bytes[UC_SIGMASK as usize..UC_SIGMASK as usize + 8]
            .try_into()
            .expect("8"),
    );
    signals.set_blocked(mask);
    // The alternate stack saved in the frame comes back (re-arming an `SS_AUTODISARM` one);
    // a bad one is ignored, as Linux's `restore_altstack` ignores it.
    let mut stack = [0u8; 24];
    stack.copy_from_slice(&bytes[UC_STACK as usize..UC_STACK as usize + 24]);
    if let Ok(saved) = AltStack::from_bytes(&stack) {
        signals.alt_stack = saved;
    }
    *frame = restored;
    Ok(())
}

crate::kernel_test!(signal_defaults_and_masks_follow_linux, {
    use DefaultAction::*;
    for (signal, expected) in [
        (SIGHUP, Terminate),
        (SIGINT, Terminate),
        (SIGTERM, Terminate),
        (SIGUSR1, Terminate),
        (SIGUSR2, Terminate),
        (SIGPIPE, Terminate),
        (SIGALRM, Terminate),
        (SIGSEGV, CoreDump),
        (SIGABRT, CoreDump),
        (SIGCHLD, Ignore),
        (SIGTSTP, Stop),
        (SIGCONT, Continue),
    ] {
        crate::check_eq!(default_action(signal), expected);
    }
    let mut signals = Signals::default();
    crate::check!(signals.set_action(SIGKILL, Action::default()).is_err());
    signals.set_blocked(u64::MAX);
    crate::check!(
        signals.blocked & bit(SIGKILL) == 0,
        "SIGKILL cannot be blocked"
    );
    signals.post(SIGUSR1, Info::default());
    crate::check!(!signals.has_deliverable(), "blocked signals wait");
    signals.set_blocked(0);
    crate::check!(matches!(
        signals.take(),
        Delivery::Terminate {
            signal: SIGUSR1,
            core: false
        }
    ));
    signals.post(SIGCHLD, Info::default());
    crate::check!(
        matches!(signals.take(), Delivery::None),
        "SIGCHLD is ignored by default"
    );
    crate::check_eq!(name(SIGSEGV), "SIGSEGV");
});

crate::kernel_test!(job_control_signals_stop_continue_and_cancel, {
    let mut signals = Signals::default();
    // A default-action stop is a stop; blocking calls may take it without consuming others.
    signals.post(SIGTSTP, Info::default());
    crate::check_eq!(signals.take_stop(), Some(SIGTSTP));
    signals.post(SIGSTOP, Info::default());
    crate::check!(matches!(signals.take(), Delivery::Stop { signal: SIGSTOP }));
    // A lower signal with a handler comes first and is not a stop: the call is interrupted.
    let handler = Action {
        handler: 0x1000,
        flags: SA_RESTORER,
        ..Action::default()
    };
    crate::check!(signals.set_action(SIGINT, handler).is_ok());
    signals.post(SIGINT, Info::default());
    signals.post(SIGTTIN, Info::default());
    crate::check_eq!(signals.take_stop(), None);
    crate::check!(matches!(
        signals.take(),
        Delivery::Handle { signal: SIGINT, .. }
    ));
    crate::check_eq!(signals.take_stop(), Some(SIGTTIN));
    // SIGTSTP with a handler is caught, not a stop.
    crate::check!(signals.set_action(SIGTSTP, handler).is_ok());
    signals.post(SIGTSTP, Info::default());
    crate::check_eq!(signals.take_stop(), None);
    crate::check!(matches!(
        signals.take(),
        Delivery::Handle {
            signal: SIGTSTP,
            ..
        }
    ));
    // SIGSTOP cannot be caught or blocked; SIGCONT's default is not queued unless blocked.
    crate::check!(signals.set_action(SIGSTOP, handler).is_err());
    signals.set_blocked(bit(SIGSTOP));
    crate::check_eq!(signals.blocked, 0);
    signals.post(SIGCONT, Info::default());
    crate::check_eq!(signals.pending_mask(), 0);
    signals.set_blocked(bit(SIGCONT));
    signals.post(SIGCONT, Info::default());
    crate::check_eq!(signals.pending_mask(), bit(SIGCONT));
    signals.discard(bit(SIGCONT));
    crate::check_eq!(signals.pending_mask(), 0);
    crate::check!(is_stop(SIGTTOU) && !is_stop(SIGCONT));
    crate::check_eq!(STOP_SIGNALS.count_ones(), 4);
    // SA_NOCLDSTOP on SIGCHLD silences stop and continue reports.
    crate::check!(signals.wants_child_stops());
    let quiet = Action {
        flags: SA_NOCLDSTOP | SA_RESTORER,
        ..handler
    };
    crate::check!(signals.set_action(SIGCHLD, quiet).is_ok());
    crate::check!(!signals.wants_child_stops());
    // The terminal's job control treats blocked and ignored alike.
    crate::check!(!signals.ignores_or_blocks(SIGTTIN));
    signals.set_blocked(bit(SIGTTIN));
    crate::check!(signals.ignores_or_blocks(SIGTTIN));
});
