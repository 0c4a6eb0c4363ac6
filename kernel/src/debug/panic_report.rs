//! The panic report: one documented, machine-parseable block on the console.
//!
//! Format (docs/panic-report.md is the contract; the host symbolizer and the TUI parse it):
//!
//! ```text
//! ==== CADENZA PANIC REPORT v1 ====
//! kind: panic | exception
//! message: <one line>
//! location: <file>:<line>:<column>          (panics)
//! exception: <mnemonic> <vector> <name>      (exceptions)
//! error_code: 0x...                          (exceptions)
//! cpu: 0
//! uptime_ns: <n>
//! registers:
//!   RIP=0x... RSP=0x... RFLAGS=0x...
//!   ...
//! backtrace:
//!   #0 0xffffffff80012345 kernel::foo+0x25/0x80     (`?` where no symbol is known)
//!   #1 ...
//! ==== END CADENZA PANIC REPORT ====
//! ```
//!
//! Then the machine exits with `ExitCode::Panic`. The report is written through the emergency
//! console so it gets out even if the panic happened inside the console driver.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::backtrace::Backtrace;
use super::kallsyms::Symbolic;
use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::power::{self, ExitCode};
use crate::arch::x86_64::{cpu, trap};
use crate::console::EmergencyWriter;

pub const BEGIN: &str = "==== CADENZA PANIC REPORT v1 ====";
pub const END: &str = "==== END CADENZA PANIC REPORT ====";

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Keeps a message on one line: newlines and control characters are escaped.
struct OneLine<'a>(&'a mut EmergencyWriter);

impl Write for OneLine<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            match c {
                '\n' => self.0.write_str("\\n")?,
                c if c.is_control() => write!(self.0, "\\x{:02x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn enter() {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(
            EmergencyWriter,
            "\nnested panic while reporting a panic; stopping"
        );
        power::exit(ExitCode::Panic);
    }
}

fn write_registers(w: &mut EmergencyWriter, regs: &[(&str, u64)]) {
    let _ = writeln!(w, "registers:");
    for row in regs.chunks(3) {
        let _ = w.write_str(" ");
        for (name, value) in row {
            let _ = write!(w, " {name}={value:#018x}");
        }
        let _ = writeln!(w);
    }
}

/// `first_is_pc`: frame #0 is the exact faulting instruction rather than a return address.
fn write_backtrace(w: &mut EmergencyWriter, bt: &Backtrace, first_is_pc: bool) {
    let _ = writeln!(w, "backtrace:");
    for (i, &address) in bt.frames().iter().enumerate() {
        let symbolic = Symbolic {
            address,
            return_address: !(first_is_pc && i == 0),
        };
        let _ = writeln!(w, "  #{i} {address:#018x} {symbolic}");
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    enter();
    let rbp = cpu::read_rbp();
    let w = &mut EmergencyWriter;
    let _ = writeln!(w, "\n{BEGIN}");
    let _ = writeln!(w, "kind: panic");
    let _ = w.write_str("message: ");
    let _ = write!(OneLine(w), "{}", info.message());
    let _ = writeln!(w);
    if let Some(location) = info.location() {
        let _ = writeln!(
            w,
            "location: {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(w, "cpu: 0");
    let _ = writeln!(w, "uptime_ns: {}", crate::time::now_ns());
    write_registers(
        w,
        &[
            ("RSP", cpu::read_rsp()),
            ("RBP", rbp),
            ("RFLAGS", cpu::read_rflags()),
            ("CR0", cpu::read_cr0()),
            ("CR2", cpu::read_cr2()),
            ("CR3", cpu::read_cr3()),
            ("CR4", cpu::read_cr4()),
        ],
    );
    write_backtrace(w, &Backtrace::from_frame_pointer(None, rbp), false);
    let _ = writeln!(w, "{END}");
    super::kgdb::on_panic();
    power::exit(ExitCode::Panic)
}

fn page_fault_cause(error: u64) -> (&'static str, &'static str, &'static str) {
    let present = if error & 1 != 0 {
        "protection violation"
    } else {
        "page not present"
    };
    let access = if error & 0x10 != 0 {
        "instruction fetch"
    } else if error & 2 != 0 {
        "write"
    } else {
        "read"
    };
    let mode = if error & 4 != 0 { "user" } else { "kernel" };
    (present, access, mode)
}

/// Reports a fatal CPU exception and stops the machine.
pub fn exception(frame: &TrapFrame) -> ! {
    enter();
    let cr2 = cpu::read_cr2();
    let (mnemonic, name) = trap::exception_name(frame.vector);
    let w = &mut EmergencyWriter;
    let _ = writeln!(w, "\n{BEGIN}");
    let _ = writeln!(w, "kind: exception");
    if frame.vector == 14 {
        let (cause, access, mode) = page_fault_cause(frame.error_code);
        let _ = writeln!(
            w,
            "message: {name} ({mnemonic}) at {cr2:#x}: {mode} {access}, {cause}, RIP {:#x}",
            frame.rip
        );
    } else {
        let _ = writeln!(w, "message: {name} ({mnemonic}) at RIP {:#x}", frame.rip);
    }
    let _ = writeln!(w, "exception: {mnemonic} {} {name}", frame.vector);
    let _ = writeln!(w, "error_code: {:#x}", frame.error_code);
    let _ = writeln!(w, "cpu: 0");
    let _ = writeln!(w, "uptime_ns: {}", crate::time::now_ns());
    write_registers(
        w,
        &[
            ("RIP", frame.rip),
            ("RSP", frame.rsp),
            ("RFLAGS", frame.rflags),
            ("RAX", frame.rax),
            ("RBX", frame.rbx),
            ("RCX", frame.rcx),
            ("RDX", frame.rdx),
            ("RSI", frame.rsi),
            ("RDI", frame.rdi),
            ("RBP", frame.rbp),
            ("R8", frame.r8),
            ("R9", frame.r9),
            ("R10", frame.r10),
            ("R11", frame.r11),
            ("R12", frame.r12),
            ("R13", frame.r13),
            ("R14", frame.r14),
            ("R15", frame.r15),
            ("CS", frame.cs),
            ("SS", frame.ss),
            ("CR0", cpu::read_cr0()),
            ("CR2", cr2),
            ("CR3", cpu::read_cr3()),
            ("CR4", cpu::read_cr4()),
        ],
    );
    write_backtrace(
        w,
        &Backtrace::from_frame_pointer(Some(frame.rip), frame.rbp),
        true,
    );
    let _ = writeln!(w, "{END}");
    super::kgdb::on_fatal_exception(frame.vector);
    power::exit(ExitCode::Panic)
}
