//! Everything specific to x86_64 PCs: CPU setup, interrupts, timers and the boot entry.

pub mod acpi;
mod boot;
pub mod context;
pub mod cpu;
pub mod fault;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod power;
pub mod rtc;
pub mod stack;
pub mod trap;
pub mod usermode;
