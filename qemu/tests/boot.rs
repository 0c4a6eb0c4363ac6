//! Boot tests: the real kernel in real QEMU (TCG), judged by what it prints on the serial console
//! and how QEMU exits.
//!
//! The kernel is built once per test binary through the same library call the CLI uses.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use cadenza_qemu::launch::free_local_port;
use cadenza_qemu::{GuestExit, QemuConfig, QemuGdb, RunResult};
use common::kernel;
use symbols::{PanicKind, PanicReport};

/// Generous: TCG on a loaded 2-core CI machine. A healthy boot takes well under a second.
const TIMEOUT: Duration = Duration::from_secs(60);

fn default_initrd() -> PathBuf {
    static INITRD: OnceLock<PathBuf> = OnceLock::new();
    INITRD
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("cadenza-boot-test")
                .tempdir()
                .expect("temp dir")
                .keep();
            let path = dir.join("initramfs.cpio");
            // The skeleton without busybox: these boots must end by themselves (no init).
            let skeleton =
                cadenza_qemu::initramfs::default_archive_with(std::path::Path::new("/nonexistent"));
            std::fs::write(&path, skeleton.unwrap()).unwrap();
            path
        })
        .clone()
}

fn boot(append: &str) -> RunResult {
    let mut config = QemuConfig::new(kernel());
    config.append = format!("console=ttyS0 {append}");
    config.initrd = Some(default_initrd());
    boot_with(&config)
}

fn boot_with(config: &QemuConfig) -> RunResult {
    let result = config.run(TIMEOUT).expect("QEMU starts");
    assert_ne!(
        result.exit,
        GuestExit::TimedOut,
        "the guest hung; console so far:\n{}",
        result.console
    );
    result
}

/// The first line starting with `prefix` (after the console timestamp), without the prefix.
fn line_after<'a>(console: &'a str, prefix: &str) -> Option<&'a str> {
    console.lines().find_map(|line| {
        let text = line.split_once("] ").map_or(line, |(_, rest)| rest);
        text.strip_prefix(prefix)
    })
}

#[test]
fn boots_and_reports_cmdline_memory_and_initrd() {
    let result = boot("loglevel=7 init_args=\"-x -y\" quiet");
    let console = &result.console;
    assert_eq!(result.exit, GuestExit::Clean, "console:\n{console}");
    assert!(
        console.contains("Cadenza 0.1.0 (x86_64) booting"),
        "{console}"
    );
    assert_eq!(
        line_after(console, "Command line: "),
        Some("console=ttyS0 loglevel=7 init_args=\"-x -y\" quiet")
    );

    // The memory map is QEMU's e820 table, normalised: RAM below 640 KiB and above 1 MiB.
    assert!(console.contains("BIOS-provided physical RAM map:"));
    assert!(console.contains("[mem 0x0000000000100000-"), "{console}");
    // 256 MiB guest: nearly all of it is free after boot.
    let memory = line_after(console, "Memory: ").expect("a Memory: line");
    let (free_kib, total_kib) = memory
        .split_once(" available")
        .and_then(|(counts, _)| counts.split_once('/'))
        .map(|(free, total)| {
            let kib = |s: &str| s.trim_end_matches('K').parse::<u64>().unwrap();
            (kib(free), kib(total))
        })
        .expect("Memory: <free>K/<total>K available");
    assert!(
        (240 * 1024..256 * 1024).contains(&total_kib),
        "{total_kib} KiB of RAM"
    );
    assert!(
        free_kib > total_kib * 9 / 10 && free_kib < total_kib,
        "{free_kib} of {total_kib} KiB free"
    );
    let frames = line_after(console, "mm: frames: ").expect("a frame count line");
    let free_frames: u64 = frames
        .split(", ")
        .find_map(|part| part.strip_suffix(" free"))
        .and_then(|n| n.parse().ok())
        .expect("N free");
    assert!(free_frames > 60_000, "{frames}");

    let initrd_size = std::fs::metadata(default_initrd()).unwrap().len();
    let initrd = line_after(console, "initrd: ").expect("an initrd line");
    assert!(
        initrd.ends_with(&format!(", {initrd_size} bytes (newc cpio)")),
        "{initrd} (archive is {initrd_size} bytes)"
    );
    assert!(console.contains("serial: ttyS1 at I/O 0x2f8"), "{console}");
}

#[test]
fn in_kernel_selftests_pass() {
    let result = boot("selftest");
    let console = &result.console;
    let summary = line_after(console, "selftest: result: ").expect("a summary line");
    let passed: usize = summary
        .split_once(" passed")
        .and_then(|(n, _)| n.parse().ok())
        .expect("N passed");
    assert!(
        summary.ends_with("; 0 failed"),
        "{summary}\nconsole:\n{console}"
    );
    assert!(passed >= 13, "only {passed} self-tests ran");
    let ok_lines = console.lines().filter(|l| l.ends_with(" ... ok")).count();
    assert_eq!(ok_lines, passed);
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn a_failing_selftest_fails_the_run() {
    // Without a second UART the serial loopback test cannot pass: the harness must say so.
    let mut config = QemuConfig::new(kernel());
    config.append = "console=ttyS0 selftest=serial".into();
    config.serial.truncate(1);
    let result = boot_with(&config);
    assert_eq!(result.exit, GuestExit::SelftestFailed, "{}", result.console);
    assert!(result.console.contains("... FAILED: no second UART"));
}

#[test]
fn panic_test_prints_the_report_and_fails() {
    let result = boot("panic_test");
    assert_eq!(result.exit, GuestExit::Panic);
    let report = PanicReport::find_in(&result.console).expect("a well-formed panic report");
    assert_eq!(report.kind, PanicKind::Panic);
    assert!(report.message.contains("panic_test requested"));
    let location = report.location.as_ref().expect("panics carry a location");
    assert_eq!(location.file, "kernel/src/debug/crash.rs");
    assert!(report.backtrace.len() >= 3, "{:?}", report.backtrace);
    assert!(
        report.backtrace.iter().all(|&a| a >= 0xffff_ffff_8000_0000),
        "kernel text addresses: {:x?}",
        report.backtrace
    );
    assert!(report.register("RSP").is_some() && report.register("CR3").is_some());
}

#[test]
fn the_panic_report_prints_when_the_heap_is_exhausted() {
    let result = boot("panic_test=oom");
    assert_eq!(result.exit, GuestExit::Panic, "{}", result.console);
    assert!(
        result.console.contains("and has no more"),
        "{}",
        result.console
    );
    let report = PanicReport::find_in(&result.console).expect("a well-formed panic report");
    assert_eq!(report.kind, PanicKind::Panic);
    assert!(
        report.message.contains("memory allocation of"),
        "{}",
        report.message
    );
    assert!(report.backtrace.len() >= 2, "{:?}", report.backtrace);
}

#[test]
fn cpu_exceptions_are_reported_not_triple_faults() {
    for (fault, mnemonic, vector) in [
        ("page_fault", "#PF", 14),
        ("invalid_opcode", "#UD", 6),
        ("general_protection", "#GP", 13),
        ("stack_overflow", "#DF", 8),
    ] {
        let result = boot(&format!("fault_test={fault}"));
        assert_eq!(
            result.exit,
            GuestExit::Panic,
            "{fault}: console:\n{}",
            result.console
        );
        let report = PanicReport::find_in(&result.console)
            .unwrap_or_else(|e| panic!("{fault}: {e}\n{}", result.console));
        assert_eq!(report.kind, PanicKind::Exception);
        let exception = report.exception.as_ref().expect("exception line");
        assert_eq!(
            (exception.mnemonic.as_str(), exception.vector),
            (mnemonic, vector)
        );
        let rip = report.register("RIP").expect("RIP");
        assert_eq!(
            report.backtrace.first(),
            Some(&rip),
            "{fault}: #0 is the faulting RIP"
        );
        if fault == "page_fault" {
            assert_ne!(report.register("CR2"), Some(0));
            assert!(
                report.message.contains("kernel read, page not present"),
                "{}",
                report.message
            );
        }
    }
}

#[test]
fn hostile_boot_input_is_survived() {
    // A console that does not exist silences the console but must not stop the boot; an initrd
    // that is not a cpio archive is reported as such.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0xa5u8; 10_000]).unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(junk);
    config.append = "console=ttyS0 fault_test=no_such_fault =x= \"unterminated".into();
    let result = boot_with(&config);
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    assert!(
        result.console.contains("10000 bytes (unknown format)"),
        "{}",
        result.console
    );
    assert!(
        result
            .console
            .contains("fault_test: unknown fault \"no_such_fault\"")
    );

    config.append = "console=ttyS3".into();
    let silent = boot_with(&config);
    assert_eq!(silent.exit, GuestExit::Clean);
    assert!(!silent.console.contains("booting"), "{}", silent.console);
}

#[test]
fn timeout_kills_a_guest_that_never_runs() {
    // QEMU's gdb stub with -S freezes the CPU before the first instruction: a guaranteed hang.
    let mut config = QemuConfig::new(kernel());
    config.qemu_gdb = Some(QemuGdb {
        port: free_local_port().unwrap(),
        wait_for_attach: true,
    });
    let result = config.run(Duration::from_secs(2)).unwrap();
    assert_eq!(result.exit, GuestExit::TimedOut);
    assert!(result.elapsed >= Duration::from_secs(2));
    assert!(result.console.is_empty());
}

#[test]
fn cli_run_boots_and_maps_exit_statuses() {
    let cli = env!("CARGO_BIN_EXE_cadenza-qemu");
    let kernel = kernel();
    let run = |append: &str| {
        Command::new(cli)
            .args([
                "run",
                "--timeout",
                "60",
                "--initrd",
                "none",
                "--append",
                append,
            ])
            .arg("--kernel")
            .arg(&kernel)
            .stdin(Stdio::null())
            .output()
            .expect("cadenza-qemu runs")
    };
    let clean = run("");
    assert_eq!(clean.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(stdout.contains("booting"), "{stdout}");
    assert!(String::from_utf8_lossy(&clean.stderr).contains("shut down cleanly"));

    let panic = run("panic_test");
    assert_eq!(panic.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&panic.stdout).contains("==== CADENZA PANIC REPORT v1 ===="));

    let dry = Command::new(cli)
        .args([
            "run",
            "--dry-run",
            "--initrd",
            "none",
            "--accel",
            "kvm",
            "--kernel",
        ])
        .arg(&kernel)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&dry.stdout);
    assert!(
        line.starts_with("qemu-system-x86_64 ") && line.contains("-accel kvm"),
        "{line}"
    );
}

#[test]
fn qemu_dies_with_a_launcher_that_is_killed() {
    // QEMU's own gdb stub freezes the guest until gdb continues: a guest that would run
    // forever, under a launcher that is then SIGKILLed (nothing of it can clean up).
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_cadenza-qemu"))
        .args([
            "run",
            "--initrd",
            "none",
            "--gdb-qemu",
            "0",
            "--timeout",
            "120",
        ])
        .arg("--kernel")
        .arg(kernel())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cadenza-qemu runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let qemu = loop {
        if let Some(&pid) = cadenza_qemu::launch::children_of(launcher.id()).first() {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "QEMU never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        cadenza_qemu::launch::is_running(qemu),
        "QEMU {qemu} runs while the launcher does"
    );
    launcher.kill().expect("SIGKILL the launcher");
    let _ = launcher.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cadenza_qemu::launch::is_running(qemu) {
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU {qemu} outlived its killed launcher"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
