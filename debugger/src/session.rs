//! The KGDB-style debugging session: when the machine stops, talk to gdb until it says go.
//!
//! The kernel cannot run gdb's conversation in a thread of its own: when a breakpoint, a step, a
//! watchpoint, a fatal fault or gdb's Ctrl-C stops the kernel, the whole machine is stopped
//! inside that trap, and the trap handler calls `Session::stopped`, which serves gdb's packets
//! (polling the UART) until gdb resumes, detaches or kills. While the kernel runs, bytes from
//! gdb arrive by interrupt and go to `Session::incoming_while_running`; a Ctrl-C, or any packet
//! when no gdb is attached (a fresh `target remote`), stops the kernel right there.
//!
//! A protocol error (a corrupt or unexpected packet) must not end debugging: the `gdbstub` state
//! machine is rebuilt around a clone of the connection and keeps serving.

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};

use crate::machine::{Machine, Registers};
use crate::target::{DebugTarget, ResumeKind};

/// Why the machine stopped, as the kernel's trap handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// An `int3` executed; the trapped context's PC is just past it.
    Int3,
    /// A debug exception (`#DB`) with this DR6 value.
    Debug { dr6: u64 },
    /// gdb interrupted the machine (Ctrl-C, or a new connection).
    Interrupted,
    /// A fatal fault or a panic, as a POSIX signal number (`SIGSEGV`, `SIGABRT`, ...).
    Fatal { signal: u8 },
}

/// What the machine does after `stopped` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    Continue,
    Step,
    /// gdb detached: breakpoints were removed and the machine runs on.
    Detached,
    /// gdb said `kill` (and `Machine::kill` returned, if it does).
    Killed,
}

const DR6_SINGLE_STEP: u64 = 1 << 14;

type Stub<M, C> = GdbStubStateMachine<'static, DebugTarget<M>, C>;

pub struct Session<M: Machine, C: ConnectionExt + Clone + 'static>
where
    C::Error: core::fmt::Debug,
{
    target: DebugTarget<M>,
    connection: C,
    stub: Option<Stub<M, C>>,
    /// Protocol errors survived, for diagnostics and tests.
    errors: usize,
    last_error: ErrorText,
}

/// The last protocol error, formatted into a fixed buffer (no allocation on error paths).
struct ErrorText {
    bytes: [u8; 160],
    len: usize,
}

impl core::fmt::Write for ErrorText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl<M: Machine, C: ConnectionExt + Clone + 'static> Session<M, C>
where
    C::Error: core::fmt::Debug,
{
    /// A session waiting for gdb. Allocates the packet buffer (once, here).
    pub fn new(machine: M, connection: C) -> Self {
        let mut session = Self {
            target: DebugTarget::new(machine),
            connection,
            stub: None,
            errors: 0,
            last_error: ErrorText {
                bytes: [0; 160],
                len: 0,
            },
        };
        session.stub = session.fresh_stub();
        session
    }

    pub fn machine(&mut self) -> &mut M {
        &mut self.target.machine
    }

    /// How many protocol errors were recovered from.
    pub fn protocol_errors(&self) -> usize {
        self.errors
    }

    /// The last protocol error recovered from.
    pub fn last_protocol_error(&self) -> &str {
        core::str::from_utf8(&self.last_error.bytes[..self.last_error.len]).unwrap_or("?")
    }

    fn record_error(&mut self, error: &dyn core::fmt::Debug) {
        use core::fmt::Write;
        self.errors += 1;
        self.last_error.len = 0;
        let _ = write!(self.last_error, "{error:?}");
    }

    /// Whether gdb is attached and waiting for the machine to stop.
    pub fn gdb_waiting(&self) -> bool {
        matches!(self.stub, Some(GdbStubStateMachine::Running(_)))
    }

    fn fresh_stub(&mut self) -> Option<Stub<M, C>> {
        let stub = GdbStub::new(self.connection.clone());
        match stub.run_state_machine(&mut self.target) {
            Ok(stub) => Some(stub),
            Err(error) => {
                self.record_error(&error);
                None
            }
        }
    }

    /// Turns a trap into gdb's stop reason, fixing up the PC after a software breakpoint.
    fn stop_reason(&mut self, trap: Trap) -> MultiThreadStopReason<u64> {
        let tid = self.target.current_tid();
        let signal = |signal| MultiThreadStopReason::SignalWithThread { tid, signal };
        match trap {
            Trap::Int3 => {
                let mut regs = Registers::default();
                let current = self.target.machine.current_thread();
                if self
                    .target
                    .machine
                    .read_registers(current, &mut regs)
                    .is_ok()
                {
                    let address = regs.rip.wrapping_sub(1);
                    if self.target.breakpoints.software_at(address).is_some() {
                        // gdb's `swbreak` contract: report the breakpoint's own address.
                        regs.rip = address;
                        let _ = self.target.machine.write_registers(current, &regs);
                        return MultiThreadStopReason::SwBreak(tid);
                    }
                }
                // A breakpoint compiled into the kernel (kgdbwait, panics).
                signal(Signal::SIGTRAP)
            }
            Trap::Debug { dr6 } => match self.target.breakpoints.hit(dr6) {
                Some((_, crate::breakpoints::SlotKind::Execute)) => {
                    MultiThreadStopReason::HwBreak(tid)
                }
                Some((addr, crate::breakpoints::SlotKind::Watch(kind))) => {
                    MultiThreadStopReason::Watch { tid, kind, addr }
                }
                None if dr6 & DR6_SINGLE_STEP != 0 => MultiThreadStopReason::DoneStep,
                None => signal(Signal::SIGTRAP),
            },
            Trap::Interrupted => signal(Signal::SIGINT),
            Trap::Fatal { signal: number } => signal(Signal(number)),
        }
    }

    /// The machine stopped: report it to gdb (if gdb waits for that) and serve gdb until it
    /// resumes the machine. Blocks on the connection.
    pub fn stopped(&mut self, trap: Trap) -> Resume {
        let reason = self.stop_reason(trap);
        let stub = match self.stub.take() {
            Some(GdbStubStateMachine::Running(running)) => {
                running.report_stop(&mut self.target, reason).ok()
            }
            Some(GdbStubStateMachine::CtrlCInterrupt(interrupt)) => interrupt
                .interrupt_handled(&mut self.target, Some(reason))
                .ok(),
            // A new gdb starts from scratch (ack mode and all).
            Some(GdbStubStateMachine::Disconnected(_)) => self.fresh_stub(),
            // gdb is not waiting for a stop (not attached yet): it will ask with `?`.
            Some(idle) => Some(idle),
            None => None,
        };
        self.serve(stub)
    }

    /// A byte from gdb while the machine runs. Returns `None` if the machine may run on, or
    /// what happened if the byte stopped it (Ctrl-C, or a new gdb attaching) — by then gdb has
    /// already resumed it again.
    pub fn incoming_while_running(&mut self, byte: u8) -> Option<Resume> {
        match self.stub.take() {
            Some(GdbStubStateMachine::Running(running)) => {
                match running.incoming_data(&mut self.target, byte) {
                    Ok(GdbStubStateMachine::CtrlCInterrupt(interrupt)) => {
                        self.stub = Some(GdbStubStateMachine::CtrlCInterrupt(interrupt));
                        Some(self.stopped(Trap::Interrupted))
                    }
                    Ok(GdbStubStateMachine::Disconnected(gone)) => {
                        Some(self.disconnected(gone.get_reason()))
                    }
                    Ok(other) => {
                        self.stub = Some(other);
                        None
                    }
                    Err(error) => {
                        self.record_error(&error);
                        self.stub = self.fresh_stub();
                        None
                    }
                }
            }
            // No gdb waiting for us: gdb is (re)attaching. Stop here and let it look around.
            other => {
                let stub = match other {
                    Some(GdbStubStateMachine::Idle(idle)) => {
                        self.feed(GdbStubStateMachine::Idle(idle), byte)
                    }
                    _ => self.fresh_stub().and_then(|stub| self.feed(stub, byte)),
                };
                Some(self.serve(stub))
            }
        }
    }

    fn feed(&mut self, stub: Stub<M, C>, byte: u8) -> Option<Stub<M, C>> {
        let result = match stub {
            GdbStubStateMachine::Idle(idle) => idle.incoming_data(&mut self.target, byte),
            GdbStubStateMachine::Running(running) => running.incoming_data(&mut self.target, byte),
            other => return Some(other),
        };
        match result {
            Ok(stub) => Some(stub),
            Err(error) => {
                self.record_error(&error);
                self.fresh_stub()
            }
        }
    }

    /// Serves gdb while the machine is stopped.
    fn serve(&mut self, mut stub: Option<Stub<M, C>>) -> Resume {
        loop {
            stub = match stub {
                None => self.fresh_stub(),
                Some(GdbStubStateMachine::Idle(mut idle)) => match idle.borrow_conn().read() {
                    Ok(byte) => self.feed(GdbStubStateMachine::Idle(idle), byte),
                    // The connection itself failed: nothing more to serve; let the machine run.
                    Err(error) => {
                        self.record_error(&error);
                        self.stub = Some(GdbStubStateMachine::Idle(idle));
                        self.target.machine.prepare_resume(false);
                        return Resume::Continue;
                    }
                },
                Some(GdbStubStateMachine::Running(running)) => {
                    // gdb resumed the machine.
                    self.stub = Some(GdbStubStateMachine::Running(running));
                    let step = self.target.resume.take() == Some(ResumeKind::Step);
                    self.target.machine.prepare_resume(step);
                    return if step { Resume::Step } else { Resume::Continue };
                }
                Some(GdbStubStateMachine::CtrlCInterrupt(interrupt)) => {
                    // Ctrl-C while already stopped: just say so again.
                    let reason = MultiThreadStopReason::SignalWithThread {
                        tid: self.target.current_tid(),
                        signal: Signal::SIGINT,
                    };
                    interrupt
                        .interrupt_handled(&mut self.target, Some(reason))
                        .ok()
                }
                Some(GdbStubStateMachine::Disconnected(gone)) => {
                    return self.disconnected(gone.get_reason());
                }
            };
        }
    }

    /// gdb left: clean up and get ready for the next one (a fresh stub: the next gdb negotiates
    /// ack mode and features anew).
    fn disconnected(&mut self, reason: DisconnectReason) -> Resume {
        self.stub = self.fresh_stub();
        self.target.breakpoints.clear(&mut self.target.machine);
        self.target.resume = None;
        if reason == DisconnectReason::Kill {
            self.target.machine.kill();
            self.target.machine.prepare_resume(false);
            return Resume::Killed;
        }
        self.target.machine.prepare_resume(false);
        Resume::Detached
    }
}
