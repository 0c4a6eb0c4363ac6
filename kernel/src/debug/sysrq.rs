//! Linux's magic SysRq through `/proc/sysrq-trigger`: `echo c > /proc/sysrq-trigger` crashes
//! the kernel on purpose, so the whole panic path (report, kallsyms, break-on-oops, the TUI's
//! Panic pane) can be exercised from userspace exactly as on Linux.
//!
//! Until procfs exists, the file is a character device node (misc major 10, minor 240, a
//! number devices.txt reserves for local use) that the boot code creates at
//! `/proc/sysrq-trigger` with Linux's mode 0200, so only root can write it.

use alloc::sync::Arc;

use crate::arch::x86_64::power::{self, ExitCode};
use crate::errno::{EResult, Errno};
use crate::fs::dev::{CharDevice, register_char};
use crate::fs::file::OpenFlags;
use crate::kprintln;

pub const MAJOR: u32 = 10;
pub const MINOR: u32 = 240;

/// The keys this kernel acts on, as Linux's help line lists them.
const HELP: &str = "sysrq: HELP : crash(c) reboot(b) help(h) poweroff(o)";

struct SysrqTrigger;

impl CharDevice for SysrqTrigger {
    fn name(&self) -> &'static str {
        "sysrq-trigger"
    }

    /// Write-only, like Linux's.
    fn read(&self, _minor: u32, _buf: &mut [u8], _flags: OpenFlags) -> EResult<usize> {
        Err(Errno::EINVAL)
    }

    /// Every byte is a key (Linux reads one unless the write starts with `_`); whitespace is
    /// skipped so `echo c` (which writes "c\n") works.
    fn write(&self, _minor: u32, buf: &[u8], _flags: OpenFlags) -> EResult<usize> {
        for &key in buf.iter().filter(|b| !b.is_ascii_whitespace()) {
            handle(key);
        }
        Ok(buf.len())
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

/// Registers the driver; `fs::init_root` creates the node.
pub fn init() {
    if let Err(error) = register_char(MAJOR, MINOR, 1, Arc::new(SysrqTrigger)) {
        kprintln!("sysrq: cannot register /proc/sysrq-trigger: {error}");
    }
}
