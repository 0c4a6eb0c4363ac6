//! Time arguments from user memory (`struct timespec`, `struct timeval`): read and validated
//! one way for every system call (Linux's `timespec64_valid`: no negative seconds, the fraction
//! below one second), then turned into nanoseconds or a deadline on `time::now_ns`.

use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::task;

#[derive(Clone, Copy)]
pub enum Format {
    /// Seconds and nanoseconds.
    Timespec,
    /// Seconds and microseconds (`select`).
    Timeval,
}

/// The `count` pairs of words at `address` (seconds and fraction), unvalidated: for callers
/// whose fraction field has special values (`utimensat`'s `UTIME_NOW`/`UTIME_OMIT`) or whose
/// seconds may be negative (file times before 1970).
pub fn raw_pairs<const N: usize>(address: u64) -> EResult<[(i64, i64); N]> {
    let mut bytes = [[0u8; 16]; N];
    let source = UserSlice::new(address, 16 * N)?;
    task::with_current(|p| p.space.lock().read(source, bytes.as_flattened_mut()))??;
    Ok(bytes.map(|pair| {
        let (seconds, fraction) = pair.split_at(8);
        (
            i64::from_le_bytes(seconds.try_into().expect("8 bytes")),
            i64::from_le_bytes(fraction.try_into().expect("8 bytes")),
        )
    }))
}

/// The duration at `address`, in nanoseconds.
pub fn duration(address: u64, format: Format) -> EResult<u64> {
    let [(seconds, fraction)] = raw_pairs::<1>(address)?;
    let fraction_ns: u64 = match format {
        Format::Timespec => 1,
        Format::Timeval => 1_000,
    };
    let per_second = (1_000_000_000 / fraction_ns) as i64;
    if seconds < 0 || !(0..per_second).contains(&fraction) {
        return Err(Errno::EINVAL);
    }
    Ok((seconds as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(fraction as u64 * fraction_ns))
}

/// The deadline a timeout pointer sets: `None` for a null pointer (wait forever).
pub fn deadline(address: u64, format: Format) -> EResult<Option<u64>> {
    if address == 0 {
        return Ok(None);
    }
    let duration = duration(address, format)?;
    Ok(Some(crate::time::now_ns().saturating_add(duration)))
}
