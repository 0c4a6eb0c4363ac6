//! Linux's magic SysRq through `/proc/sysrq-trigger`: `echo c > /proc/sysrq-trigger` crashes
//! the kernel on purpose, so the whole panic path (report, kallsyms, break-on-oops, the TUI's
//! Panic pane) can be exercised from userspace exactly as on Linux. procfs owns the file (root
//! only, mode 0200) and hands every write here.

use crate::arch::x86_64::power::{self, ExitCode};
use crate::kprintln;

/// The keys this kernel acts on, as Linux's help line lists them.
const HELP: &str = "sysrq: HELP : crash(c) reboot(b) help(h) poweroff(o)";

/// A write to `/proc/sysrq-trigger`: every byte is a key (Linux reads one unless the write
/// starts with `_`); whitespace is skipped so `echo c` (which writes "c\n") works.
pub fn write(keys: &[u8]) {
    for &key in keys.iter().filter(|b| !b.is_ascii_whitespace()) {
        handle(key);
    }
}

fn handle(key: u8) {
    match key {
        b'c' => {
            kprintln!("sysrq: Trigger a crash");
            crash();
        }
        b'b' => {
            kprintln!("sysrq: Resetting");
            power::exit(ExitCode::Success);
        }
        b'o' => {
            kprintln!("sysrq: Power Off");
            power::exit(ExitCode::Success);
        }
        _ => kprintln!("{HELP}"),
    }
}

/// Not inlined, so the panic report's top frame names it.
#[inline(never)]
fn crash() -> ! {
    panic!("sysrq triggered crash")
}
