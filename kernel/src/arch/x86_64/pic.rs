//! The legacy 8259 PICs, moved out of the way and silenced.
//!
//! The kernel uses the local APIC and I/O APIC. The 8259s still exist on a PC and power up
//! delivering IRQs on vectors 8..15, which collide with CPU exceptions; they are remapped to
//! `SPURIOUS_BASE` and fully masked, so at most a spurious IRQ 7/15 can still arrive there.

use super::cpu::outb;

pub const SPURIOUS_BASE: u8 = 0xe0;

pub fn disable() {
    // ICW1: init + ICW4; ICW2: vector base; ICW3: cascade on IRQ 2; ICW4: 8086 mode.
    for (command, data, base, cascade) in [
        (0x20, 0x21, SPURIOUS_BASE, 4),
        (0xa0, 0xa1, SPURIOUS_BASE + 8, 2),
    ] {
        outb(command, 0x11);
        outb(data, base);
        outb(data, cascade);
        outb(data, 0x01);
        outb(data, 0xff); // mask everything
    }
}
