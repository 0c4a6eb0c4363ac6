//! The codes the kernel leaves QEMU with, and what QEMU's exit status then is.
//!
//! Under QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`, writing a code `c` to the
//! port makes QEMU exit with status `(c << 1) | 1`. The kernel writes one of `ExitCode`'s
//! values (`kernel/src/arch/x86_64/power.rs`) and the launcher reads the status back
//! (`cadenza_qemu::GuestExit`); both use this enum, so the two sides cannot drift. Every
//! status the kernel can cause is odd and above 1: status 0 never means success by accident —
//! it is what a triple fault under `-no-reboot` gives.

/// The I/O port of QEMU's `isa-debug-exit` device (the launcher passes `iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the kernel ended the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// A clean shutdown: QEMU exit status 33.
    Success = 0x10,
    /// A panic or fatal CPU exception (its report is on the console): status 35.
    Panic = 0x11,
    /// The in-kernel self-tests ran and at least one failed: status 37.
    SelftestFailed = 0x12,
    /// gdb said `kill` in a kgdb session: status 39.
    Killed = 0x13,
}

impl ExitCode {
    pub const ALL: [ExitCode; 4] = [
        ExitCode::Success,
        ExitCode::Panic,
        ExitCode::SelftestFailed,
        ExitCode::Killed,
    ];

    /// The value the kernel writes to `DEBUG_EXIT_PORT`.
    pub const fn port_value(self) -> u32 {
        self as u32
    }

    /// The exit status QEMU then returns.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// The code a QEMU exit status came from, if the kernel caused it.
    pub fn from_qemu_status(status: i32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|code| code.qemu_status() == status)
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode;

    #[test]
    fn statuses_are_the_documented_ones_and_round_trip() {
        let statuses = ExitCode::ALL.map(ExitCode::qemu_status);
        assert_eq!(statuses, [33, 35, 37, 39]);
        for code in ExitCode::ALL {
            assert_eq!(ExitCode::from_qemu_status(code.qemu_status()), Some(code));
        }
        assert_eq!(ExitCode::from_qemu_status(0), None);
        assert_eq!(ExitCode::from_qemu_status(1), None);
    }
}
