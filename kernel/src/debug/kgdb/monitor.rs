//! gdb's `monitor` commands. Each one prints what the matching `/proc` file or TUI pane shows,
//! through the same kernel function, so the three never disagree.

use core::fmt::Write;

use crate::arch::x86_64::cpu;

pub const COMMANDS: &[(&str, &str)] = &[
    ("ps", "list tasks (pid, state, name)"),
    (
        "maps",
        "maps PID: a process's memory regions, as /proc/PID/maps",
    ),
    (
        "meminfo",
        "physical memory and kernel heap, as /proc/meminfo",
    ),
    ("heap", "heap totals, size classes, top allocation sites"),
    (
        "leaks",
        "scan for unreferenced heap objects (kmemleak format)",
    ),
    ("dmesg", "the kernel log ring"),
    ("regs", "control, debug and segment-base registers"),
];

pub fn run(command: &str, out: &mut dyn Write) -> bool {
    let mut words = command.split_whitespace();
    match words.next() {
        Some("ps") => ps(out),
        Some("maps") => maps(words.next(), out),
        Some("meminfo") => crate::mm::leak::write_meminfo(out),
        Some("heap") => crate::mm::leak::write_heap_report(out),
        Some("leaks") => crate::mm::leak::write_leaks(out, true),
        Some("dmesg") => dmesg(out),
        Some("regs") => regs(out),
        _ => return false,
    }
    true
}

fn ps(out: &mut dyn Write) {
    let _ = writeln!(out, "  PID  PPID S  RSS(KiB)  ELAPSED COMMAND");
    let _ = writeln!(out, "    0     0 R         0        - swapper/0");
    let now = crate::time::now_ns();
    crate::task::info::for_each(|p| {
        let elapsed_ms = now.saturating_sub(p.start_ns) / 1_000_000;
        let _ = writeln!(
            out,
            "{:>5} {:>5} {} {:>9} {:>6}.{:02} {}",
            p.pid,
            p.ppid,
            p.state.letter(),
            // `None`: the kernel stopped inside the address space's lock.
            p.memory.map_or_else(
                || "?".into(),
                |memory| alloc::format!("{}", memory.total().resident / 1024)
            ),
            elapsed_ms / 1000,
            (elapsed_ms % 1000) / 10,
            p.comm.as_str()
        );
    });
}

fn dmesg(out: &mut dyn Write) {
    let written = crate::console::try_with_log(|log| {
        let mut buf = [0u8; 512];
        let mut offset = 0;
        loop {
            let n = log.copy_from(offset, &mut buf);
            if n == 0 {
                break;
            }
            let _ = out.write_str(&alloc::string::String::from_utf8_lossy(&buf[..n]));
            offset += n;
        }
    });
    if written.is_none() {
        let _ = writeln!(
            out,
            "dmesg: the log is being written by the stopped code; try again after `continue`"
        );
    }
}

fn regs(out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "CR0={:#018x} CR2={:#018x}",
        cpu::read_cr0(),
        cpu::read_cr2()
    );
    let _ = writeln!(
        out,
        "CR3={:#018x} CR4={:#018x}",
        cpu::read_cr3(),
        cpu::read_cr4()
    );
    let _ = writeln!(out, "DR7={:#018x}", cpu::read_dr7());
    let _ = writeln!(
        out,
        "FS_BASE={:#018x} GS_BASE={:#018x}",
        cpu::read_msr(cpu::MSR_FS_BASE),
        cpu::read_msr(cpu::MSR_GS_BASE)
    );
}

fn maps(pid: Option<&str>, out: &mut dyn Write) {
    let Some(pid) = pid.and_then(|p| p.parse::<crate::task::Pid>().ok()) else {
        let _ = writeln!(out, "usage: monitor maps PID");
        return;
    };
    let Some(resources) = crate::task::info::resources(pid) else {
        let _ = writeln!(out, "maps: no process {pid}");
        return;
    };
    let name = crate::task::comm(pid);
    // The kernel may have stopped inside this lock: never wait for it here.
    let Some(space) = resources.space.try_lock() else {
        let _ = writeln!(out, "maps: the address space is locked by the stopped code");
        return;
    };
    crate::mm::user::write_maps(&space, name.as_str(), out);
}
