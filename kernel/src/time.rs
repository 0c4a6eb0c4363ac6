//! Kernel time: a monotonic nanosecond clock from the TSC, a tick count from the APIC timer, and
//! the wall clock.
//!
//! The TSC is read in a few cycles and never goes backwards on one CPU, so it backs `now_ns`;
//! the tick counts scheduler periods. Before calibration `now_ns` is 0, which the console's
//! timestamps show honestly as `[    0.000000]`. The wall clock (`CLOCK_REALTIME`) is the
//! monotonic clock plus an offset: the RTC's time at boot, read once, and later whatever
//! `settimeofday`/`clock_settime` set — so it ticks as smoothly as the monotonic clock and
//! setting it moves only the offset.

use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::arch::x86_64::{cpu, lapic};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Starts the clock from the calibrated TSC rate.
pub fn init(tsc_hz: u64) {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::Relaxed);
    TSC_HZ.store(tsc_hz, Ordering::Release);
}

/// Nanoseconds since `init`; 0 before it.
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Acquire);
    if hz == 0 {
        return 0;
    }
    let elapsed = cpu::rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(elapsed) * 1_000_000_000 / u128::from(hz)) as u64
}

/// `CLOCK_REALTIME - now_ns()`, in nanoseconds (0 until the RTC is read: the epoch at boot).
static REALTIME_OFFSET_NS: AtomicI64 = AtomicI64::new(0);

/// Sets the wall clock from the RTC (once, at boot); returns the Unix time it read.
pub fn init_realtime(rtc_century_register: Option<u8>) -> Option<u64> {
    let seconds = crate::arch::x86_64::rtc::read_unix_seconds(rtc_century_register)?;
    set_realtime_ns(seconds.saturating_mul(1_000_000_000));
    Some(seconds)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn realtime_ns() -> u64 {
    let now = i128::from(now_ns()) + i128::from(REALTIME_OFFSET_NS.load(Ordering::Relaxed));
    now.clamp(0, i128::from(u64::MAX)) as u64
}

/// When the machine booted on the wall clock (`/proc/stat`'s `btime`).
pub fn boot_realtime_ns() -> u64 {
    u64::try_from(REALTIME_OFFSET_NS.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Sets the wall clock to `ns` since the epoch (the monotonic clock is unaffected).
pub fn set_realtime_ns(ns: u64) {
    let offset = i128::from(ns) - i128::from(now_ns());
    let offset = offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    REALTIME_OFFSET_NS.store(offset, Ordering::Relaxed);
}

/// A wall-clock time as a deadline on the monotonic clock (`TIMER_ABSTIME` on a real-time
/// clock): times already past are `now_ns()`.
pub fn realtime_to_monotonic(ns: u64) -> u64 {
    let monotonic = i128::from(ns) - i128::from(REALTIME_OFFSET_NS.load(Ordering::Relaxed));
    monotonic.clamp(0, i128::from(u64::MAX)) as u64
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Timer interrupts since the tick started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

pub fn timer_irq(_vector: u8) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    crate::task::tick();
}

/// Sleeps at least `ns` nanoseconds, halting between ticks.
pub fn sleep_ns(ns: u64) {
    let deadline = now_ns().saturating_add(ns);
    while now_ns() < deadline {
        if cpu::interrupts_enabled() {
            cpu::halt();
        } else {
            cpu::pause();
        }
    }
}

crate::kernel_test!(clock_and_tick_agree, {
    crate::check!(tsc_hz() > 0, "TSC not calibrated");
    let (t0, k0) = (now_ns(), ticks());
    sleep_ns(50_000_000);
    let (t1, k1) = (now_ns(), ticks());
    crate::check!(t1 >= t0 + 50_000_000, "sleep returned early");
    // 50 ms at 100 Hz is 5 ticks; TCG timing is coarse, so only demand that the tick runs and is
    // within an order of magnitude of the TSC's view.
    let ticks = k1 - k0;
    let expected = (t1 - t0) * lapic::TICK_HZ / 1_000_000_000;
    crate::check!(ticks >= 1, "no timer interrupts while sleeping");
    crate::check!(
        ticks <= expected * 10 + 2,
        "timer much faster than the TSC says"
    );
    let mut last = now_ns();
    for _ in 0..1000 {
        let now = now_ns();
        crate::check!(now >= last, "clock went backwards");
        last = now;
    }
});
