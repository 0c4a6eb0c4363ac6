//! The kernel's own gdb stub (`kgdboc=ttyS1`), driven by Debian's real gdb against the real
//! kernel in QEMU: breakpoints, backtraces, stepping, a hardware watchpoint, Ctrl-C, monitor
//! commands, and break-on-oops.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cadenza_qemu::gdb::Gdb;
use cadenza_qemu::launch::free_local_port;
use cadenza_qemu::{GuestExit, QemuConfig, QemuGdb, Running, SerialBackend, Workspace};
use common::kernel;

const STEP: Duration = Duration::from_secs(30);

/// Boots with the stub on ttyS1 (a TCP port); returns QEMU and gdb's target string.
fn boot_with_stub(append: &str) -> (Running, String) {
    let port = free_local_port().unwrap();
    let mut config = QemuConfig::new(kernel());
    config.serial = vec![SerialBackend::Capture, SerialBackend::Tcp(port)];
    config.append = format!("console=ttyS0 kgdboc=ttyS1 {append}");
    let qemu = config.spawn().expect("QEMU starts");
    (qemu, format!("127.0.0.1:{port}"))
}

fn hex_after(text: &str, prefix: &str) -> u64 {
    let rest = &text[text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {text}"))
        + prefix.len()..];
    let digits: String = rest
        .trim_start()
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).unwrap()
}

#[test]
fn gdb_drives_the_kernel_through_its_own_stub() {
    let (qemu, target) = boot_with_stub("kgdbwait rootdelay=4");
    assert!(
        qemu.wait_for_console("kgdb: waiting for gdb", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let (mut gdb, _) = Gdb::attach(&kernel(), &target, STEP).expect("gdb attaches");
    // Stopped in kgdbwait (the PC may be attributed to code inlined into kgdb::init).
    let where_ = gdb.run("bt", STEP).unwrap();
    assert!(
        where_.contains("kernel::debug::kgdb::init") && where_.contains("kernel::kernel_main"),
        "stopped in kgdbwait: {where_}"
    );

    // A software breakpoint on a function boot reaches later, and its callers.
    let set = gdb.run("break kernel::report_initrd", STEP).unwrap();
    assert!(set.contains("Breakpoint 1 at 0xffffffff8"), "{set}");
    let hit = gdb.run("continue", STEP).unwrap();
    assert!(hit.contains("Breakpoint 1, kernel::report_initrd"), "{hit}");
    let bt = gdb.run("bt", STEP).unwrap();
    assert!(bt.contains("#0  kernel::report_initrd"), "{bt}");
    assert!(bt.contains("in kernel::kernel_main"), "{bt}");
    assert!(
        bt.trim_end().ends_with("in kernel_entry64 ()"),
        "the walk ends at the stack's bottom: {bt}"
    );

    // Source-level stepping: `next` stays in the function, `finish` returns to the caller.
    let next = gdb.run("next", STEP).unwrap();
    assert!(
        !next.contains("Cannot") && !next.contains("error"),
        "{next}"
    );
    let frame = gdb.run("frame", STEP).unwrap();
    assert!(frame.contains("kernel::report_initrd"), "{frame}");
    let finish = gdb.run("finish", STEP).unwrap();
    assert!(finish.contains("Run till exit from"), "{finish}");
    assert!(
        finish.contains("kernel::kernel_main"),
        "back in the caller: {finish}"
    );
    gdb.run("delete", STEP).unwrap();
    gdb.run("break kernel::run_requested_mode", STEP).unwrap();
    let hit = gdb.run("continue", STEP).unwrap();
    assert!(hit.contains("kernel::run_requested_mode"), "{hit}");

    // stepi moves the program counter.
    let before = hex_after(&gdb.run("print/x $pc", STEP).unwrap(), "= ");
    gdb.run("stepi", STEP).unwrap();
    let after = hex_after(&gdb.run("print/x $pc", STEP).unwrap(), "= ");
    assert_ne!(before, after, "stepi must execute an instruction");
    gdb.run("delete", STEP).unwrap();

    // A hardware watchpoint on a kernel static (the tick counter) fires in the timer interrupt.
    let watch = gdb.run("watch -l kernel::time::TICKS", STEP).unwrap();
    assert!(watch.contains("Hardware watchpoint"), "{watch}");
    let fired = gdb.run("continue", STEP).unwrap();
    assert!(
        fired.contains("Old value") && fired.contains("New value"),
        "{fired}"
    );
    assert!(fired.contains("kernel::time::timer_irq"), "{fired}");
    gdb.run("delete", STEP).unwrap();

    // Ctrl-C stops the running kernel (it idles in rootdelay).
    gdb.run("continue &", STEP).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    gdb.run("interrupt", STEP).unwrap();
    let stop = gdb.wait_for("received signal SIGINT", STEP).unwrap();
    assert!(stop.contains("SIGINT"), "{stop}");
    let where_ = gdb.run("bt 3", STEP).unwrap();
    assert!(where_.contains("kernel::"), "{where_}");

    // Monitor commands and threads.
    let ps = gdb.run("monitor ps", STEP).unwrap();
    assert!(ps.contains("swapper/0"), "{ps}");
    let dmesg = gdb.run("monitor dmesg", STEP).unwrap();
    assert!(dmesg.contains("Cadenza 0.1.0 (x86_64) booting"), "{dmesg}");
    let meminfo = gdb.run("monitor meminfo", STEP).unwrap();
    assert!(
        meminfo.contains("MemTotal:"),
        "{meminfo}\n---- transcript ----\n{}",
        gdb.transcript()
    );
    let threads = gdb.run("info threads", STEP).unwrap();
    assert!(threads.contains("swapper/0"), "{threads}");
    let unmapped = gdb.run("x/2gx 0", STEP).unwrap();
    assert!(
        unmapped.contains("Cannot access memory at address 0x0"),
        "{unmapped}"
    );

    // Detach: the kernel finishes booting on its own.
    gdb.run("detach", STEP).unwrap();
    let transcript = gdb.quit();
    let result = qemu.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(
        result.exit,
        GuestExit::Clean,
        "{}\n---- gdb ----\n{transcript}",
        result.console
    );
    assert!(result.console.contains("kgdb: continuing boot"));
}

#[test]
fn a_panic_stops_in_the_stub_with_the_crash_site_in_bt() {
    let (qemu, target) = boot_with_stub("panic_test");
    assert!(
        qemu.wait_for_console("kgdb: panic: stopping for gdb", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let (mut gdb, _) = Gdb::attach(&kernel(), &target, STEP).expect("gdb attaches");
    let bt = gdb.run("bt", STEP).unwrap();
    for frame in [
        "kernel::debug::kgdb::on_panic",
        "kernel::debug::panic_report::panic",
        "kernel::debug::crash::refuse_to_continue",
        "kernel::debug::crash::crash_inner",
        "kernel::debug::crash::panic_test",
    ] {
        assert!(bt.contains(frame), "{frame} missing from:\n{bt}");
    }
    let regs = gdb.run("info registers rip rsp", STEP).unwrap();
    assert!(
        regs.contains("rip") && regs.contains("0xffffffff8"),
        "{regs}"
    );
    let killed = gdb.run("kill", STEP).unwrap_or_default();
    gdb.quit();
    let result = qemu.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(
        result.exit,
        GuestExit::KilledByDebugger,
        "{killed}\n{}",
        result.console
    );
}

#[test]
fn a_fatal_exception_stops_at_the_faulting_instruction() {
    let (qemu, target) = boot_with_stub("fault_test=page_fault");
    assert!(
        qemu.wait_for_console("kgdb: fatal exception", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let (mut gdb, attached) = Gdb::attach(&kernel(), &target, STEP).expect("gdb attaches");
    assert!(
        attached.contains("read_unmapped"),
        "stopped at the faulting instruction: {attached}"
    );
    let bt = gdb.run("bt", STEP).unwrap();
    assert!(bt.contains("kernel::debug::crash::trigger"), "{bt}");
    gdb.run("continue", STEP).ok();
    gdb.quit();
    let result = qemu.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(result.exit, GuestExit::Panic, "{}", result.console);
}

/// Runs the repository's gdb helpers (scripts/gdb/cadenza.py) in an attached session.
fn check_helpers(gdb: &mut Gdb) {
    let script = Workspace::locate()
        .unwrap()
        .root()
        .join("scripts/gdb/cadenza.py");
    let loaded = gdb
        .run(&format!("source {}", script.display()), STEP)
        .unwrap();
    assert!(loaded.trim().is_empty(), "{loaded}");
    let dmesg = gdb.run("cz-dmesg", STEP).unwrap();
    assert!(dmesg.contains("Cadenza 0.1.0 (x86_64) booting"), "{dmesg}");
    assert!(dmesg.contains("BIOS-provided physical RAM map:"), "{dmesg}");
    let tasks = gdb.run("cz-tasks", STEP).unwrap();
    assert!(tasks.contains("swapper/0"), "{tasks}");
    let heap = gdb.run("cz-heap", STEP).unwrap();
    assert!(heap.contains("total_allocations"), "{heap}");
    let frames = gdb.run("cz-frames", STEP).unwrap();
    let free: u64 = frames
        .lines()
        .find_map(|l| l.trim().strip_prefix("free"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{frames}"));
    assert!(free > 60_000, "{frames}");
    // The kernel text is mapped read-only and executable; the direct map is never executable.
    let walk = gdb.run("cz-vm 0xffffffff80206000", STEP).unwrap();
    assert!(walk.contains("-> phys 0x206000 (4 KiB page)"), "{walk}");
    let ranges = gdb.run("cz-vm", STEP).unwrap();
    assert!(ranges.contains("0xffff800000000000"), "{ranges}");
    let text = ranges
        .lines()
        .find(|l| l.trim_start().starts_with("0xffffffff80206000"))
        .unwrap_or_else(|| panic!("{ranges}"));
    assert!(text.ends_with("P G"), "text is R-X: {text}");
}

#[test]
fn gdb_helpers_work_on_our_stub_and_on_qemus() {
    let (qemu, target) = boot_with_stub("kgdbwait");
    assert!(
        qemu.wait_for_console("kgdb: waiting for gdb", 0, STEP)
            .is_some()
    );
    let (mut gdb, _) = Gdb::attach(&kernel(), &target, STEP).unwrap();
    check_helpers(&mut gdb);
    gdb.run("kill", STEP).ok();
    gdb.quit();
    assert_eq!(
        qemu.wait(Some(STEP)).unwrap().exit,
        GuestExit::KilledByDebugger
    );

    // QEMU's own stub on the same kernel: attach while it idles in rootdelay.
    let port = free_local_port().unwrap();
    let mut config = QemuConfig::new(kernel());
    config.append = "console=ttyS0 rootdelay=30".into();
    config.qemu_gdb = Some(QemuGdb {
        port,
        wait_for_attach: false,
    });
    let qemu = config.spawn().unwrap();
    assert!(
        qemu.wait_for_console("Waiting 30 sec", 0, STEP).is_some(),
        "{}",
        qemu.console()
    );
    let (mut gdb, _) = Gdb::attach(&kernel(), &format!("127.0.0.1:{port}"), STEP).unwrap();
    check_helpers(&mut gdb);
    gdb.quit();
    drop(qemu);
}

/// An initramfs whose /init is qemu/tests/userland/sleeper.c (a parent blocked in wait4, a
/// child asleep in nanosleep: a stable scene of sleeping kernel stacks), built in `dir`.
fn sleeper_initrd(dir: &std::path::Path) -> PathBuf {
    let source = Workspace::locate()
        .unwrap()
        .root()
        .join("qemu/tests/userland/sleeper.c");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let status = std::process::Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(tree.join("init"))
        .arg(&source)
        .status()
        .expect("musl-gcc (Debian musl-tools)");
    assert!(status.success());
    let archive = dir.join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    archive
}

#[test]
fn processes_are_gdb_threads_with_their_kernel_backtraces() {
    let dir = tempfile::tempdir().unwrap();
    let archive = sleeper_initrd(dir.path());

    let port = free_local_port().unwrap();
    let mut config = QemuConfig::new(kernel());
    config.serial = vec![SerialBackend::Capture, SerialBackend::Tcp(port)];
    config.append = "console=ttyS0 kgdboc=ttyS1".into();
    config.initrd = Some(archive);
    let qemu = config.spawn().unwrap();
    assert!(
        qemu.wait_for_console("Run /init as init process", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    std::thread::sleep(Duration::from_millis(500));
    // Connecting stops the running kernel (like KGDB's attach).
    let (mut gdb, _) = Gdb::attach(&kernel(), &format!("127.0.0.1:{port}"), STEP).unwrap();
    let threads = gdb.run("info threads", STEP).unwrap();
    assert!(threads.contains("swapper/0"), "{threads}");
    assert!(threads.contains("init (sleeping (wait4))"), "{threads}");
    let ps = gdb.run("monitor ps", STEP).unwrap();
    assert!(ps.contains("    1     0 S"), "{ps}");
    let maps = gdb.run("monitor maps 1", STEP).unwrap();
    assert!(maps.contains("[stack]") && maps.contains("r-xp"), "{maps}");
    check_task_helpers(&mut gdb);
    // The parent's kernel stack, from the context it saved when it went to sleep.
    let number = threads
        .lines()
        .find(|l| l.contains("init (sleeping (wait4))"))
        .and_then(|l| l.trim_start_matches('*').split_whitespace().next())
        .unwrap()
        .to_owned();
    gdb.run(&format!("thread {number}"), STEP).unwrap();
    let bt = gdb.run("bt", STEP).unwrap();
    assert!(bt.contains("kernel::task::schedule"), "{bt}");
    assert!(bt.contains("kernel::task::wait_child"), "{bt}");
    assert!(bt.contains("wait4"), "{bt}");
    gdb.run("kill", STEP).ok();
    gdb.quit();
    let result = qemu.wait(Some(STEP)).unwrap();
    assert_eq!(
        result.exit,
        GuestExit::KilledByDebugger,
        "{}",
        result.console
    );
}

/// The task helpers against a kernel running the `sleeper` scene (init waiting for a child).
fn check_task_helpers(gdb: &mut Gdb) {
    let script = Workspace::locate()
        .unwrap()
        .root()
        .join("scripts/gdb/cadenza.py");
    gdb.run(&format!("source {}", script.display()), STEP)
        .unwrap();
    let tasks = gdb.run("cz-tasks", STEP).unwrap();
    assert!(tasks.contains("swapper/0"), "{tasks}");
    assert!(
        tasks.lines().any(|l| l.trim_start().starts_with("1 ")
            && l.contains("WaitingForChild")
            && l.ends_with("init")),
        "{tasks}"
    );
    assert!(
        tasks.lines().any(|l| l.trim_start().starts_with("2 ")),
        "the child: {tasks}"
    );
    // init's address space: its program at 0x400000 (user, executable) and the kernel half.
    let space = gdb.run("cz-vm 1", STEP).unwrap();
    assert!(
        space
            .lines()
            .any(|l| l.trim_start().starts_with("0x401000") && l.contains("P U")),
        "{space}"
    );
    assert!(space.contains("0xffffffff80206000"), "{space}");
}

#[test]
fn task_helpers_work_on_qemus_stub_too() {
    let dir = tempfile::tempdir().unwrap();
    let archive = sleeper_initrd(dir.path());
    let port = free_local_port().unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(archive);
    config.qemu_gdb = Some(QemuGdb {
        port,
        wait_for_attach: false,
    });
    let qemu = config.spawn().unwrap();
    assert!(
        qemu.wait_for_console("Run /init as init process", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (mut gdb, _) = Gdb::attach(&kernel(), &format!("127.0.0.1:{port}"), STEP).unwrap();
    check_task_helpers(&mut gdb);
    gdb.quit();
    drop(qemu);
}
