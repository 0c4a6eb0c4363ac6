//! Cadenza: a Linux-ABI x86_64 kernel that QEMU boots like Linux (`-kernel`, PVH entry).
//!
//! Boot order matters and is spelled out in `kernel_main`: the command line first (it picks the
//! console), then traps (so any later mistake is reported, not a triple fault), then memory, then
//! interrupt controllers and time, and finally whatever the command line asked for.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod debug;
mod drivers;
mod errno;
mod exec;
mod fs;
mod ipc;
mod mm;
mod selftest;
mod sync;
mod syscall;
mod task;
mod telemetry;
mod time;
mod tty;

use arch::x86_64::power::{self, ExitCode};
use arch::x86_64::{acpi, cpu, gdt, idt, ioapic, lapic, pic, stack};
use boot::{BootInfo, RegionKind};
use drivers::serial;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Entered from `kernel_entry64` on the boot stack, with the first GiB mapped.
pub extern "C" fn kernel_main(start_info_phys: u32) -> ! {
    let present = serial::init();
    let mut info = match boot::pvh::parse(u64::from(start_info_phys)) {
        Ok(info) => info,
        Err(error) => {
            use core::fmt::Write;
            let _ = writeln!(
                console::EmergencyWriter,
                "Cadenza: {error}; boot with QEMU's -kernel (PVH entry)"
            );
            power::exit(ExitCode::Panic);
        }
    };
    select_console(&info, present);

    kprintln!("Cadenza {VERSION} (x86_64) booting");
    kprintln!("Command line: {}", info.cmdline);

    gdt::init();
    idt::init();
    stack::register(stack::BOOT_STACK.range());

    init_memory(&mut info);
    mm::heap::init();
    mm::leak::init(&info.cmdline);
    mm::fault_inject::init(&info.cmdline);
    let platform = init_interrupts_and_time(&info);
    debug::kgdb::init(&info.cmdline);
    syscall::init(&info.cmdline);
    report_initrd(&info);
    fs::init_root(&info);
    tty::init();

    kprintln!("boot: complete in {} ms", time::now_ns() / 1_000_000);
    run_requested_mode(&info, &platform)
}

fn select_console(info: &BootInfo, present: [bool; 4]) {
    match info.cmdline.get("console") {
        None => console::set_port(0),
        Some(name) => {
            // `console=ttyS1,115200n8`: the options after the comma are accepted and ignored.
            let device = name.split(',').next().unwrap_or(name);
            match device
                .strip_prefix("ttyS")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(index) if index < 4 && present[index] => console::set_port(index),
                _ => console::disable(),
            }
        }
    }
}

fn init_memory(info: &mut BootInfo) {
    let map = &mut info.memory_map;
    kprintln!("BIOS-provided physical RAM map:");
    for region in map.regions() {
        kprintln!("  {region}");
    }
    if map.dropped > 0 {
        kprintln!("  ({} entries did not fit and were ignored)", map.dropped);
    }
    // The first MiB holds firmware structures (IVT, EBDA, BIOS ROM); like Linux, leave it alone.
    map.reserve(0, 0x10_0000, RegionKind::Reserved);
    let (image_start, image_end) = mm::layout::image_phys();
    map.reserve(image_start, image_end, RegionKind::Kernel);
    if let Some(initrd) = info.initrd {
        map.reserve(
            initrd.phys_start,
            initrd.phys_start + initrd.size,
            RegionKind::Initrd,
        );
    }
    let frames = match mm::frame_allocator::init(map, 1 << 30) {
        Ok(stats) => stats,
        Err(error) => panic!("cannot start the frame allocator: {error}"),
    };
    let guards = [
        stack::BOOT_STACK.guard_page(),
        gdt::DOUBLE_FAULT_STACK.guard_page(),
        gdt::NMI_STACK.guard_page(),
        gdt::MACHINE_CHECK_STACK.guard_page(),
    ];
    if let Err(error) = mm::paging::init(map, &guards) {
        panic!("cannot build the kernel page tables: {error}");
    }
    mm::set_memory_map(*map);
    let after = mm::frame_allocator::stats();
    kprintln!(
        "Memory: {}K/{}K available ({}K kernel code+data, {}K initrd)",
        after.free * 4,
        after.total * 4,
        (image_end - image_start) / 1024,
        map.total_of(RegionKind::Initrd) / 1024,
    );
    kprintln!(
        "mm: kernel image {:#x}-{:#x} ({} KiB)",
        image_start,
        image_end,
        (image_end - image_start) / 1024
    );
    kprintln!(
        "mm: frames: {} total, {} free, {} used ({} kernel, {} page tables)",
        after.total,
        after.free,
        after.used(),
        frames.kernel,
        frames.free - after.free
    );
}

fn init_interrupts_and_time(info: &BootInfo) -> acpi::Platform {
    pic::disable();
    let platform = match acpi::discover(info.rsdp_phys) {
        Ok(platform) => {
            kprintln!(
                "acpi: RSDP at {:#x}, {} CPU(s), PM1a control port {:#x}",
                platform.rsdp_phys,
                platform.cpus,
                platform.pm1a_control_port.unwrap_or(0)
            );
            platform
        }
        Err(error) => {
            kprintln!("acpi: {error}; assuming a single CPU without an I/O APIC");
            acpi::Platform::default()
        }
    };
    if let Some(port) = platform.pm1a_control_port {
        power::set_acpi_pm1a_control(port);
    }
    let apic_id = match lapic::init(platform.local_apic_address) {
        Ok(id) => id,
        Err(error) => panic!("local APIC unusable: {error}"),
    };
    let calibration = lapic::calibrate();
    time::init(calibration.tsc_hz);
    kprintln!(
        "time: TSC {} MHz, APIC timer {} kHz, tick {} Hz",
        calibration.tsc_hz / 1_000_000,
        calibration.apic_timer_hz / 1000,
        lapic::TICK_HZ
    );
    match time::init_realtime(platform.rtc_century_register) {
        Some(seconds) => kprintln!("time: wall clock {seconds} s since the epoch, from the RTC"),
        None => kprintln!("time: no usable RTC; the wall clock starts at the epoch"),
    }
    arch::x86_64::trap::register_irq_handler(lapic::TIMER_VECTOR, time::timer_irq);
    lapic::start_periodic_timer(&calibration);

    match platform.io_apic {
        Some(io) => match ioapic::init(&io) {
            Ok(inputs) => kprintln!("ioapic: id {} at {:#x}, {inputs} inputs", io.id, io.address),
            Err(error) => kprintln!("ioapic: cannot map: {error}"),
        },
        None => kprintln!("ioapic: none found; serial ports stay polled"),
    }
    for (index, &(base, irq)) in serial::PORTS.iter().enumerate() {
        if !serial::is_present(index) {
            continue;
        }
        match ioapic::route_isa_irq(&platform, irq, apic_id, serial::irq_handler) {
            Some(vector) => {
                serial::enable_interrupts(index);
                kprintln!(
                    "serial: ttyS{index} at I/O {base:#x} (IRQ {irq}, vector {vector:#x}) is a 16550A"
                );
            }
            None => kprintln!("serial: ttyS{index} at I/O {base:#x} is a 16550A (polled)"),
        }
    }
    cpu::enable_interrupts();
    platform
}

fn report_initrd(info: &BootInfo) {
    let Some(initrd) = info.initrd else {
        kprintln!("initrd: none");
        return;
    };
    let format = if initrd
        .bytes()
        .is_some_and(|bytes| bytes.starts_with(b"070701"))
    {
        "newc cpio"
    } else {
        "unknown format"
    };
    kprintln!(
        "initrd: {:#x}-{:#x}, {} bytes ({format})",
        initrd.phys_start,
        initrd.phys_start + initrd.size,
        initrd.size
    );
}

fn run_requested_mode(info: &BootInfo, _platform: &acpi::Platform) -> ! {
    let cmdline = &info.cmdline;
    telemetry::init(cmdline);
    if cmdline.get("panic_test") == Some("oom") {
        debug::crash::exhaust_heap_then_allocate();
    }
    if cmdline.has("panic_test") {
        debug::crash::panic_test();
    }
    if let Some(name) = cmdline.get("fault_test") {
        match debug::crash::CpuFault::from_name(name) {
            Some(kind) => {
                kprintln!("fault_test: raising {name}");
                debug::crash::trigger(kind);
            }
            None => kprintln!("fault_test: unknown fault {name:?}; ignoring"),
        }
    }
    if cmdline.has("selftest") {
        let (_, failed) = selftest::run(cmdline.get("selftest"));
        power::exit(if failed == 0 {
            ExitCode::Success
        } else {
            ExitCode::SelftestFailed
        });
    }
    mm::leak::run_test_mode(cmdline);
    if cmdline.get("bench") == Some("heap") {
        mm::heap::bench::run();
        power::exit(ExitCode::Success);
    }
    root_delay(cmdline);
    start_init(cmdline);
    kprintln!("Cadenza: nothing to run; powering off");
    power::exit(ExitCode::Success)
}

/// Runs `/init` (or `rdinit=PATH`, or `init=PATH`) from the initramfs as pid 1, like Linux's
/// `kernel_init`. Linux takes `rdinit=` for a program in the initramfs and `init=` for one on
/// a root disk; with the initramfs as the only root here, both name the same thing (`rdinit=`
/// first), so one command line boots the same initramfs on either kernel.
/// Returns only if there is none or it cannot be run.
fn start_init(cmdline: &boot::Cmdline) {
    let path = cmdline
        .get("rdinit")
        .or_else(|| cmdline.get("init"))
        .unwrap_or("/init");
    let mut argv = alloc::vec![path];
    argv.extend(cmdline.init_args());
    let program = match exec::resolve(path, &argv) {
        Ok(program) => program,
        // ENOENT for an existing file means its `#!` interpreter is missing.
        Err(errno::Errno::ENOENT) if exec::read_executable(path).is_ok() => {
            kprintln!("init: cannot run {path}: its #! interpreter does not exist");
            return;
        }
        Err(errno::Errno::ENOENT) => {
            kprintln!("init: no {path} in the initramfs");
            return;
        }
        Err(error) => {
            kprintln!("init: cannot run {path}: {error}");
            return;
        }
    };
    let error = task::start_init(
        path,
        program,
        &["HOME=/", "TERM=linux", "PATH=/sbin:/bin:/usr/sbin:/usr/bin"],
    );
    kprintln!("init: cannot run {path}: {error}");
}

/// `rootdelay=N` (Linux's name): idle N seconds, interrupts on, before starting init — time to
/// attach a debugger or watch the machine run.
fn root_delay(cmdline: &boot::Cmdline) {
    let Some(seconds) = cmdline.get("rootdelay").and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    kprintln!("Waiting {seconds} sec before starting init");
    let deadline = time::now_ns().saturating_add(seconds.saturating_mul(1_000_000_000));
    while time::now_ns() < deadline {
        cpu::enable_interrupts_and_halt();
    }
}
