//! `debugger::Machine` for the real kernel: the trapped context is the innermost trap frame
//! (`trap::with_current_frame`), memory goes through `mm::inspect`, breakpoints through the CPU's
//! debug registers.

use core::fmt;

use debugger::{Machine, MachineError, Registers, ThreadInfo};

use crate::arch::x86_64::{cpu, idt::TrapFrame, trap};
use crate::mm::inspect;

/// gdb thread id of the boot/idle context of CPU 0 (`swapper/0`). Tasks will use their pid;
/// this stays clear of that range.
pub const IDLE_THREAD: usize = 0x1_0000;

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_RF: u64 = 1 << 16;

pub struct KernelMachine;

fn frame_to_registers(frame: &TrapFrame, regs: &mut Registers) {
    regs.regs = [
        frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp, frame.rsp,
        frame.r8, frame.r9, frame.r10, frame.r11, frame.r12, frame.r13, frame.r14, frame.r15,
    ];
    regs.rip = frame.rip;
    regs.eflags = frame.rflags as u32;
    let [ds, es, fs, gs] = cpu::read_data_segments();
    regs.segments.cs = frame.cs as u32;
    regs.segments.ss = frame.ss as u32;
    regs.segments.ds = u32::from(ds);
    regs.segments.es = u32::from(es);
    regs.segments.fs = u32::from(fs);
    regs.segments.gs = u32::from(gs);
}

fn registers_to_frame(regs: &Registers, frame: &mut TrapFrame) {
    let r = &regs.regs;
    (frame.rax, frame.rbx, frame.rcx, frame.rdx) = (r[0], r[1], r[2], r[3]);
    (frame.rsi, frame.rdi, frame.rbp, frame.rsp) = (r[4], r[5], r[6], r[7]);
    (frame.r8, frame.r9, frame.r10, frame.r11) = (r[8], r[9], r[10], r[11]);
    (frame.r12, frame.r13, frame.r14, frame.r15) = (r[12], r[13], r[14], r[15]);
    frame.rip = regs.rip;
    // Keep the upper half and the reserved bit 1; segment changes are refused silently (a
    // wrong CS/SS would only crash the kernel on the way out of the trap).
    frame.rflags = (frame.rflags & !0xffff_ffff) | u64::from(regs.eflags) | 0b10;
}

impl Machine for KernelMachine {
    fn current_thread(&self) -> usize {
        IDLE_THREAD
    }

    fn threads(&self, each: &mut dyn FnMut(&ThreadInfo<'_>)) {
        each(&ThreadInfo {
            id: IDLE_THREAD,
            name: "swapper/0",
            state: "running on cpu0",
        });
    }

    fn read_registers(&mut self, thread: usize, regs: &mut Registers) -> Result<(), MachineError> {
        if thread != IDLE_THREAD {
            return Err(MachineError::NoThread(thread));
        }
        trap::with_current_frame(|frame| frame_to_registers(frame, regs))
            .ok_or(MachineError::NoThread(thread))
    }

    fn write_registers(&mut self, thread: usize, regs: &Registers) -> Result<(), MachineError> {
        if thread != IDLE_THREAD {
            return Err(MachineError::ReadOnlyThread(thread));
        }
        trap::with_current_frame(|frame| registers_to_frame(regs, frame))
            .ok_or(MachineError::ReadOnlyThread(thread))
    }

    fn read_memory(&mut self, address: u64, buf: &mut [u8]) -> usize {
        inspect::read(address, buf)
    }

    fn write_memory(&mut self, address: u64, data: &[u8]) -> Result<(), MachineError> {
        inspect::write(address, data).map_err(MachineError::Unmapped)
    }

    fn set_debug_registers(&mut self, addresses: &[u64; 4], dr7: u64) {
        cpu::write_debug_registers(addresses, dr7);
    }

    fn prepare_resume(&mut self, step: bool) {
        trap::with_current_frame(|frame| {
            frame.rflags |= RFLAGS_RF;
            if step {
                frame.rflags |= RFLAGS_TF;
            } else {
                frame.rflags &= !RFLAGS_TF;
            }
        });
    }

    fn monitor(&mut self, command: &str, out: &mut dyn fmt::Write) -> bool {
        super::monitor::run(command, out)
    }

    fn monitor_commands(&self) -> &'static [(&'static str, &'static str)] {
        super::monitor::COMMANDS
    }

    fn kill(&mut self) {
        crate::kprintln!("kgdb: killed by gdb");
        crate::arch::x86_64::power::exit(crate::arch::x86_64::power::ExitCode::Killed);
    }
}
