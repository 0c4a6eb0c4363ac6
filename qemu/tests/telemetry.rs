//! The telemetry channel end to end: the real kernel in QEMU (TCG) answers snapshot requests on
//! ttyS2, wired to a unix socket, and the host parser reads them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cadenza_qemu::telemetry::{
    ClientError, KernelPlace, ParseError, Request, Snapshot, TelemetryClient,
};
use cadenza_qemu::{GuestExit, QemuConfig, Running, SerialBackend, Workspace};
use common::kernel;

const STEP: Duration = Duration::from_secs(30);

/// Boots with telemetry on ttyS2 (a unix socket) and connects to it once the kernel says so.
fn boot_with_telemetry(append: &str) -> (Running, TelemetryClient, tempfile::TempDir) {
    boot_with_telemetry_and_initrd(append, None)
}

fn boot_with_telemetry_and_initrd(
    append: &str,
    initrd: Option<PathBuf>,
) -> (Running, TelemetryClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("telemetry.sock");
    let mut config = QemuConfig::new(kernel());
    config.initrd = initrd;
    config.serial = vec![
        SerialBackend::Capture,
        SerialBackend::Null,
        SerialBackend::Unix(socket.clone()),
    ];
    config.append = format!("console=ttyS0 telemetry=ttyS2 {append}");
    let qemu = config.spawn().expect("QEMU starts");
    assert!(
        qemu.wait_for_console("telemetry: snapshots (format v1) on ttyS2", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let client = TelemetryClient::connect(&socket, STEP).expect("the socket accepts");
    (qemu, client, dir)
}

/// The number after `prefix` in the console's `mm: frames:` line (`N total`).
fn frames_total_from_boot_log(console: &str) -> u64 {
    let line = console
        .lines()
        .find_map(|l| l.split_once("mm: frames: ").map(|(_, rest)| rest))
        .expect("a frame count line");
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn two_snapshots_over_the_socket_are_consistent_and_ordered() {
    // The churn workload leaves the heap with frames and history but no live objects.
    let (qemu, mut client, _dir) = boot_with_telemetry("kmemleak_test=churn rootdelay=3");
    assert!(
        qemu.wait_for_console("Waiting 3 sec before starting init", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let raw = client.request_text("snapshot", STEP).expect("an answer");
    let first = Snapshot::parse(&raw).unwrap_or_else(|e| panic!("{e}\n{raw}"));
    assert_eq!(
        first.to_text(),
        raw,
        "the host writer reproduces the kernel's bytes"
    );
    let second = client.snapshot(STEP).expect("a second snapshot");
    assert!(
        second.seq > first.seq,
        "sequence numbers increase: {} then {}",
        first.seq,
        second.seq
    );
    assert!(second.uptime.ns > first.uptime.ns);
    for snapshot in [&first, &second] {
        assert_eq!(snapshot.version, 1);
        snapshot.check_consistency().unwrap();
        assert!(snapshot.frames.total > 60_000 && snapshot.frames.free > 0);
        assert!(snapshot.heap.allocs > 20_000 && snapshot.heap.footprint > 0);
        assert!(
            snapshot.classes.iter().all(|c| c.frames > 0),
            "{:?}",
            snapshot.classes
        );
        assert!(snapshot.sites.is_empty() == (snapshot.heap.objects == 0));
        assert_eq!(snapshot.classes.len(), 8);
        assert!(snapshot.tracker.is_on(), "{:?}", snapshot.tracker);
        assert!(snapshot.tracker.overhead > 1024 * 1024);
        assert_eq!(snapshot.frames.tracker * 4096, snapshot.tracker.overhead);
        assert!(snapshot.tasks.is_empty(), "no processes yet");
    }
    assert_eq!(
        first.frames.total,
        frames_total_from_boot_log(&qemu.console())
    );

    // Garbage requests get an error line, not silence, and the channel keeps working.
    match client.request(Request::Snapshot, STEP) {
        Ok(third) => assert!(third.seq > second.seq),
        Err(e) => panic!("{e}"),
    }
    match client.request_text("frobnicate", STEP) {
        Ok(line) => assert_eq!(
            Snapshot::parse(&line),
            Err(ParseError::Kernel(
                "unknown request; use snapshot, scan or detail PID".into()
            ))
        ),
        Err(e) => panic!("{e}"),
    }

    let result = qemu.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

#[test]
fn a_scan_request_lists_the_leak() {
    let (qemu, mut client, _dir) = boot_with_telemetry("kmemleak_test=leak rootdelay=3");
    assert!(
        qemu.wait_for_console("kmemleak_test: leak report done", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    // A conservative scan can see a transient copy of the pointer (a register the interrupted
    // idle loop still holds, saved in its trap frame), as Linux's kmemleak can: like a user,
    // scan again, and fail only if the leak never shows.
    let mut attempts = 0;
    let snapshot = loop {
        attempts += 1;
        let snapshot = match client.request(Request::Scan, STEP) {
            Ok(snapshot) => snapshot,
            Err(ClientError::Parse(e)) => panic!("{e}"),
            Err(e) => panic!("{e}\n{}", qemu.console()),
        };
        let scan = snapshot.scan.as_ref().expect("a scan record after `scan`");
        if scan.unreferenced >= 1 || attempts == 5 {
            break snapshot;
        }
    };
    let scan = snapshot.scan.as_ref().expect("a scan record after `scan`");
    assert!(
        snapshot.tracker.scans >= 2 && scan.unreferenced >= 1,
        "after {attempts} scans: scans={} {scan:?}\n{}",
        snapshot.tracker.scans,
        qemu.console()
    );
    assert_eq!(snapshot.leaks_total, snapshot.leaks.len() as u64);
    let leak = snapshot
        .leaks
        .iter()
        .find(|l| l.size == 72)
        .unwrap_or_else(|| panic!("the 72-byte leak: {snapshot:#?}"));
    assert_eq!((leak.pid, leak.comm.as_str()), (0, "swapper/0"));
    let first = leak.frames.first().expect("a backtrace");
    assert!(
        first
            .symbol
            .as_deref()
            .is_some_and(|s| s.starts_with("kernel::mm::leak::triggers::kmemleak_test_leak+0x")),
        "{first:?}"
    );
    assert!(first.address >= 0xffff_ffff_8000_0000);
    // The leaking site is among the top call sites by live memory — unless ten sites that each
    // hold more crowd it out of the (top-10) list.
    let listed = snapshot
        .sites
        .iter()
        .any(|s| s.id == leak.site && s.bytes >= 72);
    let crowded_out = snapshot.sites.len() == 10 && snapshot.sites.iter().all(|s| s.bytes >= 72);
    assert!(listed || crowded_out, "{:#?}", snapshot.sites);
    drop(client);
    let result = qemu.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

/// An initramfs whose /init is `qemu/tests/userland/<name>.c`, built statically with musl.
fn initramfs_with_init(name: &str, dir: &Path) -> PathBuf {
    let workspace = Workspace::locate().expect("inside the checkout");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let source = workspace
        .root()
        .join("qemu/tests/userland")
        .join(format!("{name}.c"));
    let status = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(tree.join("init"))
        .arg(&source)
        .status()
        .expect("musl-gcc runs (Debian package musl-tools; scripts/setup.sh installs it)");
    assert!(status.success(), "compiling {}", source.display());
    let archive = dir.join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    archive
}

#[test]
fn processes_are_listed_and_a_scan_finds_no_false_leaks() {
    // /init forks; the parent waits in wait4 and the child sleeps 30 s: a stable scene with two
    // kernel stacks, address spaces and scheduler state live on the heap.
    let build = tempfile::tempdir().unwrap();
    let initrd = initramfs_with_init("sleeper", build.path());
    let (qemu, mut client, _dir) = boot_with_telemetry_and_initrd("", Some(initrd));
    assert!(
        qemu.wait_for_console("Run /init as init process", 0, STEP)
            .is_some(),
        "{}",
        qemu.console()
    );
    let deadline = std::time::Instant::now() + STEP;
    let snapshot = loop {
        let snapshot = client.request(Request::Scan, STEP).expect("a snapshot");
        // Settled: both exist and both are blocked (right after fork they are still runnable).
        let settled = snapshot.tasks.len() == 2 && snapshot.tasks.iter().all(|t| t.state == "S");
        if settled || std::time::Instant::now() > deadline {
            break snapshot;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(snapshot.tasks_total, 2, "{:#?}", snapshot.tasks);
    let init = &snapshot.tasks[0];
    assert_eq!((init.pid, init.ppid, init.comm.as_str()), (1, 0, "init"));
    let child = &snapshot.tasks[1];
    assert_eq!((child.pid, child.ppid), (2, 1));
    // init blocks in wait4 and the child in nanosleep: both asleep, not runnable.
    assert!(
        snapshot.tasks.iter().all(|t| t.state == "S"),
        "{:?}",
        snapshot.tasks
    );
    // Both ran (CPU time is reported, possibly 0 ms) and touched user pages (resident memory).
    for task in &snapshot.tasks {
        assert!(task.cpu_ms.is_some(), "no cpu_ms: {task:?}");
        assert!(
            task.rss_kib.is_some_and(|kib| kib > 0),
            "no rss_kib: {task:?}"
        );
    }
    snapshot.check_consistency().unwrap();
    assert!(snapshot.heap.objects > 0);
    let scan = snapshot.scan.as_ref().expect("a scan record");
    assert_eq!(
        (scan.unreferenced, snapshot.leaks.len()),
        (0, 0),
        "live processes must not look like leaks: {:#?}",
        snapshot.leaks
    );
    assert_eq!(scan.objects, snapshot.heap.objects);

    // `detail PID`: the child's memory by region, its map, and where it sleeps in the kernel.
    let memory = child.memory.expect("memory by region");
    assert!(memory.image_kib > 0 && memory.stack_kib > 0, "{memory:?}");
    assert!(memory.vsz_kib >= child.rss_kib.unwrap_or(0), "{memory:?}");
    let snapshot = client
        .request(Request::Detail(2), STEP)
        .expect("a snapshot");
    let detail = snapshot.detail.expect("a detail record");
    assert_eq!((detail.pid, detail.state.as_str()), (2, "S"));
    let names: Vec<&str> = detail.maps.iter().map(|m| m.name.as_str()).collect();
    assert!(
        names.contains(&"init") && names.contains(&"[stack]"),
        "{:#?}",
        detail.maps
    );
    assert!(
        detail.maps.iter().any(|m| m.perms == "r-xp"),
        "a text segment: {:#?}",
        detail.maps
    );
    let KernelPlace::Sleeping(frames) = &detail.place else {
        panic!("the child sleeps in the kernel: {:?}", detail.place);
    };
    let symbols: Vec<&str> = frames.iter().filter_map(|f| f.symbol.as_deref()).collect();
    // Switched out by the scheduler, from nanosleep's wait.
    assert!(
        symbols
            .iter()
            .any(|s| s.starts_with("kernel::task::schedule+"))
            && symbols.iter().any(|s| s.contains("nanosleep")),
        "{symbols:#?}"
    );
    let gone = client
        .request(Request::Detail(99), STEP)
        .expect("a snapshot");
    assert_eq!(
        gone.detail.map(|d| (d.state, d.place)),
        Some(("gone".to_string(), KernelPlace::Gone))
    );
}
