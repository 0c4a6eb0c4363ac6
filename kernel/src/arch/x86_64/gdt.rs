//! Segments: the GDT, the TSS and its interrupt stacks.
//!
//! Long mode ignores most of segmentation, but the CPU still needs a code segment per privilege
//! level and a TSS, whose IST slots give double faults, NMIs and machine checks a known-good stack
//! even when the current one has overflowed. The selector order matches SYSRET's expectations so
//! that system calls can be added without reshuffling.

use core::arch::asm;
use core::mem::size_of;

use spin::Once;

use super::stack::{GuardedStack, IST_STACK_SIZE};

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
pub const USER_DATA: u16 = 0x18 | 3;
pub const USER_CODE: u16 = 0x20 | 3;
pub const TSS_SELECTOR: u16 = 0x28;

/// IST indices (1-based, as in the IDT gate).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

pub static DOUBLE_FAULT_STACK: GuardedStack<IST_STACK_SIZE> = GuardedStack::new();
pub static NMI_STACK: GuardedStack<IST_STACK_SIZE> = GuardedStack::new();
pub static MACHINE_CHECK_STACK: GuardedStack<IST_STACK_SIZE> = GuardedStack::new();

#[repr(C, packed(4))]
pub struct TaskStateSegment {
    reserved0: u32,
    pub rsp: [u64; 3],
    reserved1: u64,
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    pub iomap_base: u16,
}

#[repr(C, packed(2))]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// The TSS: written once at boot, then only its `rsp[0]` (the stack the CPU switches to when an
/// interrupt arrives in user mode) changes, on every switch to another task.
struct TssCell(core::cell::UnsafeCell<TaskStateSegment>);

// SAFETY: one CPU; `rsp[0]` is only written with interrupts masked (task switch), and the CPU
// reads it only on a privilege change, which cannot happen in the middle of that write.
unsafe impl Sync for TssCell {}

static TSS: Once<TssCell> = Once::new();

/// Sets the kernel stack the CPU switches to on an interrupt or exception from user mode.
pub fn set_kernel_stack(top: u64) {
    if let Some(tss) = TSS.get() {
        // SAFETY: see `TssCell`; the field is written through a raw pointer, no reference to the
        // TSS is held anywhere else.
        unsafe { core::ptr::addr_of_mut!((*tss.0.get()).rsp[0]).write_unaligned(top) };
    }
}
static GDT: Once<[u64; 7]> = Once::new();

fn tss_descriptor(tss: &TaskStateSegment) -> (u64, u64) {
    let base = tss as *const _ as u64;
    let limit = (size_of::<TaskStateSegment>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    (low, base >> 32)
}

/// Loads the kernel's GDT and TSS on this CPU.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut ist = [0u64; 7];
        ist[usize::from(IST_DOUBLE_FAULT - 1)] = DOUBLE_FAULT_STACK.top() as u64;
        ist[usize::from(IST_NMI - 1)] = NMI_STACK.top() as u64;
        ist[usize::from(IST_MACHINE_CHECK - 1)] = MACHINE_CHECK_STACK.top() as u64;
        TssCell(core::cell::UnsafeCell::new(TaskStateSegment {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist,
            reserved2: 0,
            reserved3: 0,
            iomap_base: size_of::<TaskStateSegment>() as u16,
        }))
    });
    for stack in [&DOUBLE_FAULT_STACK, &NMI_STACK, &MACHINE_CHECK_STACK] {
        super::stack::register(stack.range());
    }
    // SAFETY: a shared view of the TSS for computing its descriptor; nothing writes it now.
    let (tss_low, tss_high) = tss_descriptor(unsafe { &*tss.0.get() });
    let gdt = GDT.call_once(|| {
        [
            0,
            0x00af_9a00_0000_ffff, // kernel code, 64-bit
            0x00cf_9200_0000_ffff, // kernel data
            0x00cf_f200_0000_ffff, // user data (DPL 3)
            0x00af_fa00_0000_ffff, // user code, 64-bit (DPL 3)
            tss_low,
            tss_high,
        ]
    });
    let pointer = DescriptorPointer {
        limit: (size_of::<[u64; 7]>() - 1) as u16,
        base: gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT is a 'static table whose code/data descriptors match the selectors used
    // below; reloading CS via a far return and the data segments keeps execution in ring 0.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            ptr = in(reg) &pointer,
            code = const KERNEL_CODE as u64,
            data = in(reg) u64::from(KERNEL_DATA),
            tss = in(reg) u64::from(TSS_SELECTOR),
            tmp = out(reg) _,
        );
    }
}
