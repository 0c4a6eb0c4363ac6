//! `/sys/kernel/debug/kmemleak`, as Linux's: reading lists the objects the last scan found
//! unreferenced; writing a command (`scan`, `clear`, `mark`, `dump=ADDR`, ...; see `command`)
//! runs it, and what it says goes to the kernel log, where Linux prints it.
//! `kmemleak_since_mark` is Cadenza's addition: what was allocated after `echo mark` and is
//! still live, without a scan.

use alloc::string::String;

use super::CommandError;
use crate::errno::{EResult, Errno};

pub fn show(out: &mut String) -> EResult<()> {
    super::write_leaks(out, false);
    Ok(())
}

pub fn show_since_mark(out: &mut String) -> EResult<()> {
    let mark = super::tracker_stats().ok_or(Errno::EBUSY)?.mark;
    super::report::write_since(out, mark).map_err(errno)
}

pub fn store(data: &[u8]) -> EResult<usize> {
    let text = core::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
    let mut said = String::new();
    let result = super::command(text, &mut said);
    crate::kprint!("{said}");
    match result {
        Ok(()) | Err(CommandError::NoObject(_)) => Ok(data.len()),
        Err(error) => {
            crate::kprintln!("kmemleak: {error}");
            Err(errno(error))
        }
    }
}

/// Linux's answers: `EPERM` once the tracker is off, `EINVAL` for what it does not understand.
fn errno(error: CommandError) -> Errno {
    match error {
        CommandError::Disabled(_) => Errno::EPERM,
        CommandError::Busy => Errno::EBUSY,
        CommandError::Empty
        | CommandError::Unknown
        | CommandError::Unsupported
        | CommandError::BadAddress
        | CommandError::NoObject(_) => Errno::EINVAL,
    }
}
