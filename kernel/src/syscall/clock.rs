//! Clocks and sleeps: reading and setting the wall clock, and sleeping on either clock.
//!
//! Two timelines, as in Linux: the monotonic clock (`time::now_ns`, since boot) and the wall
//! clock (`time::realtime_ns`, the RTC's time at boot plus the monotonic clock, moved by
//! `settimeofday`/`clock_settime`). Sleeps run on the monotonic clock; an absolute deadline on
//! a real-time clock is converted when the sleep starts (Linux would also honour a clock set
//! during the sleep).

use core::sync::atomic::{AtomicU64, Ordering};

use super::Call;
use super::time_arg::{self, Format};
use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::task;

const CLOCK_REALTIME: u64 = 0;
const CLOCK_REALTIME_COARSE: u64 = 5;
/// CLOCK_REALTIME, MONOTONIC, PROCESS/THREAD_CPUTIME, MONOTONIC_RAW, *_COARSE, BOOTTIME.
const CLOCK_LAST: u64 = 7;

/// The clock `clock` on the kernel's timelines, in nanoseconds (CPU-time clocks read as the
/// monotonic clock for now).
fn read_clock(clock: u64) -> u64 {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => crate::time::realtime_ns(),
        _ => crate::time::now_ns(),
    }
}

fn write_user(address: u64, bytes: &[u8]) -> EResult<()> {
    let target = UserSlice::new(address, bytes.len())?;
    task::with_current(|p| p.space.lock().write(target, bytes))?
}

/// `struct timespec` (or `timeval`, with `fraction_ns` 1000) for `ns`.
fn time_struct(ns: u64, fraction_ns: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    bytes[8..].copy_from_slice(&(ns % 1_000_000_000 / fraction_ns).to_le_bytes());
    bytes
}

pub fn clock_gettime(call: &mut Call<'_>) -> EResult<u64> {
    let [clock, target, ..] = call.args.0;
    if clock > CLOCK_LAST {
        return Err(Errno::EINVAL);
    }
    write_user(target, &time_struct(read_clock(clock), 1))?;
    Ok(0)
}

/// `time`: seconds since the epoch.
pub fn time(call: &mut Call<'_>) -> EResult<u64> {
    let seconds = crate::time::realtime_ns() / 1_000_000_000;
    if call.args.0[0] != 0 {
        write_user(call.args.0[0], &seconds.to_le_bytes())?;
    }
    Ok(seconds)
}

/// The time zone `settimeofday` last set (Linux's `sys_tz`: minutes west of Greenwich in the low
/// half, the DST flag in the high half); the kernel keeps it only to hand it back.
static TIME_ZONE: AtomicU64 = AtomicU64::new(0);

/// `gettimeofday(tv, tz)`: either pointer may be null.
pub fn gettimeofday(call: &mut Call<'_>) -> EResult<u64> {
    let [tv, tz, ..] = call.args.0;
    if tv != 0 {
        write_user(tv, &time_struct(crate::time::realtime_ns(), 1000))?;
    }
    if tz != 0 {
        write_user(tz, &TIME_ZONE.load(Ordering::Relaxed).to_le_bytes())?;
    }
    Ok(0)
}

/// Setting the clock needs root (Linux: `CAP_SYS_TIME`).
fn require_root() -> EResult<()> {
    if task::with_current(|p| p.identity.is_privileged())? {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `settimeofday(tv, tz)`: either may be null; Linux's order of checks (`EFAULT`, `EINVAL`, then
/// `EPERM`).
pub fn settimeofday(call: &mut Call<'_>) -> EResult<u64> {
    let [tv, tz, ..] = call.args.0;
    let time = if tv != 0 {
        Some(time_arg::duration(tv, Format::Timeval)?)
    } else {
        None
    };
    let zone = if tz != 0 {
        let mut bytes = [0u8; 8];
        let source = UserSlice::new(tz, 8)?;
        task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
        let minutes_west = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if !(-15 * 60..=15 * 60).contains(&minutes_west) {
            return Err(Errno::EINVAL);
        }
        Some(u64::from_le_bytes(bytes))
    } else {
        None
    };
    require_root()?;
    if let Some(zone) = zone {
        TIME_ZONE.store(zone, Ordering::Relaxed);
    }
    if let Some(ns) = time {
        crate::time::set_realtime_ns(ns);
    }
    Ok(0)
}

/// `clock_settime`: only `CLOCK_REALTIME` can be set (`EINVAL` for the others, as Linux).
pub fn clock_settime(call: &mut Call<'_>) -> EResult<u64> {
    let [clock, source, ..] = call.args.0;
    if clock != CLOCK_REALTIME {
        return Err(Errno::EINVAL);
    }
    let ns = time_arg::duration(source, Format::Timespec)?;
    require_root()?;
    crate::time::set_realtime_ns(ns);
    Ok(0)
}

/// Sleeps (state `S`) until `deadline` on the monotonic clock; `EINTR` if a signal comes first.
fn sleep_until(deadline: u64) -> EResult<u64> {
    static SLEEPERS: task::WaitQueue = task::WaitQueue::new();
    SLEEPERS.wait_until_deadline(Some(deadline), || false)?;
    Ok(0)
}

pub fn nanosleep(call: &mut Call<'_>) -> EResult<u64> {
    let duration = time_arg::duration(call.args.0[0], Format::Timespec)?;
    sleep_until(crate::time::now_ns().saturating_add(duration))
}

const TIMER_ABSTIME: u64 = 1;

/// `clock_nanosleep(clock, flags, request, remain)`: relative requests count on the monotonic
/// clock whatever the clock; absolute ones on a real-time clock are wall-clock times.
pub fn clock_nanosleep(call: &mut Call<'_>) -> EResult<u64> {
    let [clock, flags, request, ..] = call.args.0;
    if clock > CLOCK_LAST || flags & !TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    let value = time_arg::duration(request, Format::Timespec)?;
    let deadline = match (flags & TIMER_ABSTIME != 0, clock) {
        (false, _) => crate::time::now_ns().saturating_add(value),
        (true, CLOCK_REALTIME | CLOCK_REALTIME_COARSE) => crate::time::realtime_to_monotonic(value),
        (true, _) => value,
    };
    sleep_until(deadline)
}
