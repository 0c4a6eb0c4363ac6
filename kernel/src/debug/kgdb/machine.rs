//! `debugger::Machine` for the real kernel: the trapped context is the innermost trap frame
//! (`trap::with_current_frame`), memory goes through `mm::inspect`, breakpoints through the CPU's
//! debug registers.

use core::fmt;

use debugger::{Machine, MachineError, Registers, ThreadInfo};

use crate::arch::x86_64::{cpu, idt::TrapFrame, trap};
use crate::mm::inspect;
use crate::task;

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

/// gdb thread id of a task: its pid; the idle context has `IDLE_THREAD`.
fn thread_of(pid: task::Pid) -> usize {
    if pid == 0 { IDLE_THREAD } else { pid as usize }
}

fn pid_of(thread: usize) -> Option<task::Pid> {
    match thread {
        IDLE_THREAD => Some(0),
        id => task::Pid::try_from(id).ok(),
    }
}

/// Registers of a task that is switched out, from the context `context::switch` saved: enough
/// for `bt` to walk its kernel stack from where it went to sleep.
fn saved_registers(context: u64, regs: &mut Registers) -> bool {
    let mut words = [0u8; 7 * 8];
    if inspect::read(context, &mut words) != words.len() {
        return false;
    }
    let word = |i: usize| u64::from_le_bytes(words[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    *regs = Registers::default();
    regs.regs[15] = word(0);
    regs.regs[14] = word(1);
    regs.regs[13] = word(2);
    regs.regs[12] = word(3);
    regs.regs[1] = word(4); // rbx
    regs.regs[6] = word(5); // rbp
    regs.rip = word(6);
    regs.regs[7] = context + 7 * 8; // rsp after the switch's return
    regs.segments.cs = u32::from(crate::arch::x86_64::gdt::KERNEL_CODE);
    regs.segments.ss = u32::from(crate::arch::x86_64::gdt::KERNEL_DATA);
    true
}

impl Machine for KernelMachine {
    fn current_thread(&self) -> usize {
        thread_of(task::current_pid().unwrap_or(0))
    }

    fn threads(&self, each: &mut dyn FnMut(&ThreadInfo<'_>)) {
        let current = task::current_pid().unwrap_or(0);
        each(&ThreadInfo {
            id: IDLE_THREAD,
            name: "swapper/0",
            state: if current == 0 {
                "running on cpu0"
            } else {
                "idle"
            },
        });
        task::info::for_each(|p| {
            let state = match p.state {
                _ if p.pid == current => "running on cpu0",
                task::State::Runnable | task::State::Running => "runnable",
                task::State::WaitingForChild => "sleeping (wait4)",
                task::State::Sleeping => "sleeping",
                task::State::Stopped => "stopped (job control)",
                task::State::Zombie(_) => "zombie",
            };
            each(&ThreadInfo {
                id: p.pid as usize,
                name: p.comm.as_str(),
                state,
            });
        });
    }

    fn read_registers(&mut self, thread: usize, regs: &mut Registers) -> Result<(), MachineError> {
        let pid = pid_of(thread).ok_or(MachineError::NoThread(thread))?;
        if Some(pid) == task::current_pid() {
            return trap::with_current_frame(|frame| frame_to_registers(frame, regs))
                .ok_or(MachineError::NoThread(thread));
        }
        let context = task::saved_kernel_context(pid).ok_or(MachineError::NoThread(thread))?;
        if saved_registers(context, regs) {
            Ok(())
        } else {
            Err(MachineError::NoThread(thread))
        }
    }

    fn write_registers(&mut self, thread: usize, regs: &Registers) -> Result<(), MachineError> {
        if pid_of(thread) != task::current_pid() {
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
