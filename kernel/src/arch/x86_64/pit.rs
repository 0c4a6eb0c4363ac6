//! The 8254 PIT, used only as a known-frequency reference to calibrate the TSC and APIC timer.
//!
//! Channel 2 is used because its gate and output are readable through port 0x61, so an interval
//! can be timed by polling without any interrupt routing.

use super::cpu::{inb, outb};

const PIT_HZ: u64 = 1_193_182;

pub struct OneShot;

impl OneShot {
    /// Starts a countdown of `micros` microseconds (at most ~54 ms).
    pub fn start(micros: u64) -> Self {
        let count = (PIT_HZ * micros / 1_000_000).clamp(1, 0xffff) as u16;
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) & !0x01); // speaker off, gate low
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        outb(0x61, (inb(0x61) & !0x02) | 0x01); // gate high: counting starts
        OneShot
    }

    /// Spins until the countdown reaches zero (OUT2 goes high).
    pub fn wait(self) {
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    }
}
