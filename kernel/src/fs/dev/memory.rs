//! The memory devices of major 1 (Linux's drivers/char/mem.c): `/dev/null` swallows writes and
//! is always at end of file, `/dev/zero` reads as endless zeros, `/dev/full` reads as zeros and
//! refuses every write with `ENOSPC` (for testing how programs handle a full disk).

use super::CharDevice;
use crate::errno::{EResult, Errno};
use crate::fs::file::OpenFlags;

pub const MAJOR: u32 = 1;
pub const NULL_MINOR: u32 = 3;
pub const ZERO_MINOR: u32 = 5;
pub const FULL_MINOR: u32 = 7;

/// One driver for null, zero and full, told apart by minor.
pub struct MemoryDevices;

impl CharDevice for MemoryDevices {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn read(&self, minor: u32, buf: &mut [u8], _flags: OpenFlags) -> EResult<usize> {
        match minor {
            NULL_MINOR => Ok(0),
            ZERO_MINOR | FULL_MINOR => {
                buf.fill(0);
                Ok(buf.len())
            }
            _ => Err(Errno::ENXIO),
        }
    }

    fn write(&self, minor: u32, buf: &[u8], _flags: OpenFlags) -> EResult<usize> {
        match minor {
            NULL_MINOR | ZERO_MINOR => Ok(buf.len()),
            FULL_MINOR => Err(Errno::ENOSPC),
            _ => Err(Errno::ENXIO),
        }
    }

    fn seekable(&self) -> bool {
        true
    }
}
