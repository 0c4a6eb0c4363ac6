//! Kernel time: a monotonic nanosecond clock from the TSC and a tick count from the APIC timer.
//!
//! The TSC is read in a few cycles and never goes backwards on one CPU, so it backs `now_ns`;
//! the tick counts scheduler periods. Before calibration `now_ns` is 0, which the console's
//! timestamps show honestly as `[    0.000000]`.

use core::sync::atomic::{AtomicU64, Ordering};

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
