//! What the stub needs from the machine it debugs.
//!
//! Kept deliberately small so that a fake is easy to write: everything gdb-specific (packets,
//! breakpoint bookkeeping, DR7 encoding, stop reasons) is done by this crate on top of it.
//! Optional abilities (`monitor` commands, killing the machine) have default implementations.

use core::fmt;

/// x86_64 general, segment, x87 and SSE registers as gdb numbers them.
pub type Registers = gdbstub_arch::x86::reg::X86_64CoreRegs;

/// One schedulable context, as gdb's `info threads` shows it.
#[derive(Clone, Copy, Debug)]
pub struct ThreadInfo<'a> {
    /// gdb thread id: non-zero (the kernel uses the pid; 1 before processes exist).
    pub id: usize,
    pub name: &'a str,
    /// Free text such as `running` or `sleeping`.
    pub state: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineError {
    /// Nothing is mapped at this address (or it may not be touched, e.g. MMIO).
    Unmapped(u64),
    /// No such thread.
    NoThread(usize),
    /// The thread's registers cannot be changed (only the trapped context's can).
    ReadOnlyThread(usize),
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unmapped(address) => write!(f, "nothing mapped at {address:#x}"),
            Self::NoThread(id) => write!(f, "no thread {id}"),
            Self::ReadOnlyThread(id) => write!(f, "registers of thread {id} are read-only"),
        }
    }
}

pub trait Machine {
    /// The thread whose context trapped into the debugger.
    fn current_thread(&self) -> usize;

    /// Calls `each` for every thread.
    fn threads(&self, each: &mut dyn FnMut(&ThreadInfo<'_>));

    fn read_registers(&mut self, thread: usize, regs: &mut Registers) -> Result<(), MachineError>;

    /// Only the current thread's registers need to be writable.
    fn write_registers(&mut self, thread: usize, regs: &Registers) -> Result<(), MachineError>;

    /// Copies bytes from `address` on until the first unreadable one; returns how many were
    /// copied. Must never fault.
    fn read_memory(&mut self, address: u64, buf: &mut [u8]) -> usize;

    /// Writes `data` at `address`, including into read-only kernel text (breakpoints live there).
    /// Nothing is written if any byte is unwritable.
    fn write_memory(&mut self, address: u64, data: &[u8]) -> Result<(), MachineError>;

    /// Loads DR0–DR3 and DR7 (the encoding is done by this crate).
    fn set_debug_registers(&mut self, addresses: &[u64; 4], dr7: u64);

    /// Makes the trapped context run on when the trap returns: one instruction then a debug
    /// trap (`step`, x86's TF), or freely. Either way instruction breakpoints must not fire again
    /// on the first instruction (x86's RF).
    fn prepare_resume(&mut self, step: bool);

    /// Runs a `monitor` command; returns false if the command is unknown.
    fn monitor(&mut self, command: &str, out: &mut dyn fmt::Write) -> bool {
        let _ = (command, out);
        false
    }

    /// Names and one-line help of the `monitor` commands, for `monitor help`.
    fn monitor_commands(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// gdb's `kill`: end the machine. The default does nothing (the stub just resumes).
    fn kill(&mut self) {}
}
