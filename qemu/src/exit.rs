//! What QEMU's exit status says about the guest.
//!
//! The kernel leaves through QEMU's `isa-debug-exit` device, which turns a written code `c` into
//! exit status `(c << 1) | 1`. Odd statuses above 1 therefore come from the kernel, while status 0
//! can only mean the guest reset (a triple fault under `-no-reboot`) or powered off through ACPI.
//! The codes are `cadenza_abi::exit::ExitCode`, the enum the kernel writes (docs/debugging.md).

use std::fmt;
use std::process::ExitStatus;

pub use cadenza_abi::exit::ExitCode;

/// QEMU exit status for the kernel's clean shutdown.
pub const STATUS_CLEAN: i32 = ExitCode::Success.qemu_status();
/// QEMU exit status for a panic or fatal CPU exception.
pub const STATUS_PANIC: i32 = ExitCode::Panic.qemu_status();
/// QEMU exit status for failed in-kernel self-tests.
pub const STATUS_SELFTEST_FAILED: i32 = ExitCode::SelftestFailed.qemu_status();
/// QEMU exit status after gdb's `kill`.
pub const STATUS_KILLED: i32 = ExitCode::Killed.qemu_status();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// The kernel shut down cleanly.
    Clean,
    /// The kernel panicked or took a fatal exception; its report is on the console.
    Panic,
    /// The in-kernel self-tests ran and at least one failed.
    SelftestFailed,
    /// gdb killed the kernel (`kill` in a kgdb session).
    KilledByDebugger,
    /// The guest reset (a triple fault under `-no-reboot`) or powered off without the exit device.
    ResetOrPowerOff,
    /// The launcher killed QEMU because the timeout expired.
    TimedOut,
    /// QEMU itself failed (bad arguments, missing file) or died from a signal.
    QemuFailed { status: Option<i32> },
}

impl GuestExit {
    pub fn from_status(status: ExitStatus) -> Self {
        let code = status.code();
        match code.and_then(ExitCode::from_qemu_status) {
            Some(ExitCode::Success) => Self::Clean,
            Some(ExitCode::Panic) => Self::Panic,
            Some(ExitCode::SelftestFailed) => Self::SelftestFailed,
            Some(ExitCode::Killed) => Self::KilledByDebugger,
            None if code == Some(0) => Self::ResetOrPowerOff,
            None => Self::QemuFailed { status: code },
        }
    }

    /// The `cadenza-qemu` CLI's own exit status (documented in docs/debugging.md).
    pub fn cli_status(self) -> i32 {
        match self {
            Self::Clean => 0,
            Self::Panic => 1,
            Self::SelftestFailed => 2,
            Self::KilledByDebugger => 4,
            Self::ResetOrPowerOff | Self::QemuFailed { .. } => 3,
            Self::TimedOut => 124,
        }
    }
}

impl fmt::Display for GuestExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clean => f.write_str("the kernel shut down cleanly"),
            Self::Panic => f.write_str("the kernel panicked (see the report above)"),
            Self::SelftestFailed => f.write_str("in-kernel self-tests failed"),
            Self::KilledByDebugger => f.write_str("killed from gdb"),
            Self::ResetOrPowerOff => {
                f.write_str("the guest reset (triple fault?) or powered off without isa-debug-exit")
            }
            Self::TimedOut => f.write_str("timed out; QEMU was killed"),
            Self::QemuFailed { status: Some(code) } => write!(f, "QEMU failed with status {code}"),
            Self::QemuFailed { status: None } => f.write_str("QEMU was killed by a signal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit(code: i32) -> GuestExit {
        GuestExit::from_status(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn decodes_debug_exit_codes() {
        assert_eq!(exit(33), GuestExit::Clean);
        assert_eq!(exit(35), GuestExit::Panic);
        assert_eq!(exit(37), GuestExit::SelftestFailed);
        assert_eq!(exit(39), GuestExit::KilledByDebugger);
        assert_eq!(exit(0), GuestExit::ResetOrPowerOff);
        assert_eq!(exit(1), GuestExit::QemuFailed { status: Some(1) });
        // Killed by SIGKILL: no exit code.
        assert_eq!(
            GuestExit::from_status(ExitStatus::from_raw(9)),
            GuestExit::QemuFailed { status: None }
        );
    }

    #[test]
    fn cli_statuses_are_distinct_for_each_verdict() {
        let all = [
            GuestExit::Clean,
            GuestExit::Panic,
            GuestExit::SelftestFailed,
            GuestExit::KilledByDebugger,
            GuestExit::ResetOrPowerOff,
            GuestExit::TimedOut,
        ];
        let mut codes: Vec<i32> = all.iter().map(|e| e.cli_status()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(GuestExit::Clean.cli_status(), 0);
    }
}
