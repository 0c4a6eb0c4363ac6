//! `gdbstub`'s `Target` over a `Machine`: gdb's requests mapped onto the trait, plus the state
//! gdb expects a stub to keep (breakpoints, the pending resume action).

use core::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints as BreakpointsExt, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint,
    HwWatchpointOps, SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;

use crate::breakpoints::{Breakpoints, SlotKind};
use crate::machine::{Machine, Registers};

const EFAULT: u8 = 14;
const ESRCH: u8 = 3;
const EPERM: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeKind {
    Continue,
    Step,
}

pub struct DebugTarget<M> {
    pub machine: M,
    pub breakpoints: Breakpoints,
    pub resume: Option<ResumeKind>,
}

impl<M: Machine> DebugTarget<M> {
    pub fn new(machine: M) -> Self {
        Self {
            machine,
            breakpoints: Breakpoints::new(),
            resume: None,
        }
    }

    pub fn current_tid(&self) -> Tid {
        tid(self.machine.current_thread())
    }
}

/// gdb thread ids are non-zero; a machine reporting 0 is mapped to 1.
pub fn tid(id: usize) -> Tid {
    NonZeroUsize::new(id).unwrap_or(NonZeroUsize::MIN)
}

impl<M: Machine> Target for DebugTarget<M> {
    type Arch = X86_64_SSE;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> MultiThreadBase for DebugTarget<M> {
    fn read_registers(&mut self, regs: &mut Registers, tid: Tid) -> TargetResult<(), Self> {
        self.machine
            .read_registers(tid.get(), regs)
            .map_err(|_| TargetError::Errno(ESRCH))
    }

    fn write_registers(&mut self, regs: &Registers, tid: Tid) -> TargetResult<(), Self> {
        self.machine
            .write_registers(tid.get(), regs)
            .map_err(|_| TargetError::Errno(EPERM))
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _tid: Tid) -> TargetResult<usize, Self> {
        let read = self.machine.read_memory(start, data);
        if read == 0 && !data.is_empty() {
            return Err(TargetError::Errno(EFAULT));
        }
        self.breakpoints.unpatch(start, &mut data[..read]);
        Ok(read)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], _tid: Tid) -> TargetResult<(), Self> {
        self.machine
            .write_memory(start, data)
            .map_err(|_| TargetError::Errno(EFAULT))
    }

    fn list_active_threads(&mut self, each: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        self.machine.threads(&mut |thread| each(tid(thread.id)));
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> MultiThreadResume for DebugTarget<M> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.resume.get_or_insert(ResumeKind::Continue);
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.resume = None;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        _tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        // A step requested for any thread wins: there is one CPU, stepping the trapped context.
        self.resume.get_or_insert(ResumeKind::Continue);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> MultiThreadSchedulerLocking for DebugTarget<M> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        // The whole machine is stopped while gdb looks at it, and a step runs exactly the
        // trapped context's next instruction: nothing else is scheduled in between anyway.
        Ok(())
    }
}

impl<M: Machine> MultiThreadSingleStep for DebugTarget<M> {
    fn set_resume_action_step(
        &mut self,
        _tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.resume = Some(ResumeKind::Step);
        Ok(())
    }
}

impl<M: Machine> BreakpointsExt for DebugTarget<M> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> SwBreakpoint for DebugTarget<M> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.add_software(&mut self.machine, addr))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.remove_software(&mut self.machine, addr))
    }
}

impl<M: Machine> HwBreakpoint for DebugTarget<M> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .breakpoints
            .add_hardware(&mut self.machine, addr, 1, SlotKind::Execute))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .breakpoints
            .remove_hardware(&mut self.machine, addr, SlotKind::Execute))
    }
}

impl<M: Machine> HwWatchpoint for DebugTarget<M> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self
            .breakpoints
            .add_hardware(&mut self.machine, addr, len, SlotKind::Watch(kind)))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        _len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self
            .breakpoints
            .remove_hardware(&mut self.machine, addr, SlotKind::Watch(kind)))
    }
}

impl<M: Machine> ThreadExtraInfo for DebugTarget<M> {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut written = 0;
        self.machine.threads(&mut |thread| {
            if thread.id != tid.get() {
                return;
            }
            let mut text = FixedWriter::new(buf);
            let _ = core::fmt::write(
                &mut text,
                format_args!("{} ({})", thread.name, thread.state),
            );
            written = text.len;
        });
        Ok(written)
    }
}

impl<M: Machine> MonitorCmd for DebugTarget<M> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        use core::fmt::Write;
        let Ok(command) = core::str::from_utf8(cmd) else {
            let _ = writeln!(out, "monitor: the command is not UTF-8");
            return Ok(());
        };
        let command = command.trim();
        if command.is_empty() || command == "help" {
            let _ = writeln!(out, "monitor commands:");
            for (name, help) in self.machine.monitor_commands() {
                let _ = writeln!(out, "  {name:<10} {help}");
            }
            let _ = writeln!(out, "  {:<10} this list", "help");
            return Ok(());
        }
        if !self.machine.monitor(command, &mut out) {
            let _ = writeln!(
                out,
                "monitor: unknown command {command:?} (try `monitor help`)"
            );
        }
        Ok(())
    }
}

/// `fmt::Write` into a fixed buffer, truncating.
struct FixedWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> FixedWriter<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }
}

impl core::fmt::Write for FixedWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
