//! Every pane drawn from fixed app states into ratatui's `TestBackend`, compared with committed
//! snapshots (`tests/snapshots/`, reviewed by eye when they change: `INSTA_UPDATE=always`).
//!
//! The states are built through the same entry points the launcher uses (`on_console`,
//! `on_telemetry`, `on_qemu_exit`, …) so the snapshots also pin down how events become screen
//! content. Nothing here depends on the machine: no symbolizer, fixed pids, fixed times.

use std::path::PathBuf;
use std::time::Duration;

use cadenza_qemu::GuestExit;
use cadenza_qemu::telemetry::Snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui::app::{GdbSession, GdbStub, Located, QemuState, Tab};
use tui::panic::{BacktraceEntry, PanicAnalysis, SourceFrame, SourceLine};
use tui::telemetry::{Answered, TelemetryEvent};
use tui::{App, panes};

/// A snapshot in the kernel's format with every kind of record.
const SNAPSHOT: &str = "\
telemetry-begin version=1 seq=41
uptime ns=12400000000 jiffies=1240 hz=100
frames total=65247 free=64312 used=935 kernel=352 heap=19 heap_meta=32 tracker=476
heap objects=77 bytes=56245 footprint=77824 free_bytes=19584 internal_frag=2091 external_frag=19584 allocs=265 frees=188 failed=0 large_objects=12 large_frames=12 large_bytes=48832
classes count=3
class size=16 frames=1 live=34 free=222 requested=189 partial_frames=1 partial_free=222 empty_frames=0 full_frames=0
class size=256 frames=2 live=17 free=15 requested=3648 partial_frames=1 partial_free=15 empty_frames=0 full_frames=1
class size=512 frames=4 live=14 free=2 requested=3576 partial_frames=1 partial_free=2 empty_frames=0 full_frames=3
tracker state=on objects=77 peak=79 capacity=32768 bytes=56245 sites=117 site_capacity=1536 overhead=1949696 seq=265 mark=0 scans=1 unreferenced=1 untracked=0 allocs=265 frees=188
scan at_ns=9800000000 objects=77 unreferenced=1 new=1 root_bytes=264192 object_bytes=8 duration_ns=1000000
sites count=2
site id=1155 objects=10 bytes=40960 allocs=10 ret0=0xffffffff802618c2 sym0=\"kernel::fs::tmpfs::TmpfsInode::file_write+0x52/0x200\" ret1=0xffffffff8021eb29 sym1=\"kernel::fs::write+0x19/0x80\"
site id=316 objects=1 bytes=3936 allocs=1 ret0=0xffffffff8024e496 sym0=\"?\"
leaks count=1 total=1
leak addr=0xffff80000050f000 size=72 seq=3 pid=0 comm=\"swapper/0\" jiffies=0 age_ms=3000 site=5 ret0=0xffffffff80235a0c sym0=\"kernel::mm::leak::triggers::kmemleak_test_leak+0x1c/0x6b\" ret1=0xffffffff802352b0 sym1=\"kernel::mm::leak::triggers::run_test_mode+0x60/0x798\"
tasks count=3 total=3
task pid=1 ppid=0 state=S comm=\"init\"
task pid=2 ppid=1 state=R comm=\"init\"
task pid=3 ppid=1 state=Z comm=\"hello\"
telemetry-end seq=41 records=18
";

fn render(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| panes::draw(frame, app))
        .expect("draws");
    terminal.backend().to_string()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn running() -> App {
    let mut app = App::new();
    app.info.kernel = Some(PathBuf::from("/work/target/kernel"));
    app.on_qemu_started(4242);
    app
}

/// A running guest with a booted console and telemetry live at 2.5 snapshots/s.
fn live() -> App {
    let mut app = running();
    app.on_console(
        b"[    0.000000] Cadenza 0.1.0 (x86_64) booting\r\n\
          [    0.000000] Command line: console=ttyS0 telemetry=ttyS2\r\n\
          [    0.015571] telemetry: snapshots (format v1) on ttyS2; requests: snapshot, scan\r\n\
          hello from userspace\r\n",
    );
    let base = Snapshot::parse(SNAPSHOT).expect("the sample parses");
    for i in 0..5u64 {
        app.now = Duration::from_millis(1000 + 400 * i);
        let mut snapshot = base.clone();
        snapshot.seq = 37 + i;
        snapshot.uptime.ns = 10_800_000_000 + 400_000_000 * i;
        snapshot.frames.used = 900 + 9 * i;
        app.on_telemetry(TelemetryEvent::Snapshot {
            raw: snapshot.to_text(),
            snapshot: Box::new(snapshot),
            answered: Answered::Poll,
        });
    }
    app.located.insert(
        0xffff_ffff_8026_18c2,
        Some(Located {
            function: "kernel::fs::tmpfs::TmpfsInode::file_write".into(),
            location: "kernel/src/fs/tmpfs.rs:88:14".into(),
            allocator: false,
        }),
    );
    app.located.insert(
        0xffff_ffff_8023_5a0c,
        Some(Located {
            function: "kernel::mm::leak::triggers::kmemleak_test_leak".into(),
            location: "kernel/src/mm/leak/triggers.rs:40:5".into(),
            allocator: false,
        }),
    );
    app
}

#[test]
fn console_pane_shows_the_guest_terminal() {
    let mut app = live();
    app.on_console(
        b"\x1b[1mbold\x1b[0m and \x1b[31mred\x1b[0m text\r\nprogress 10%\rprogress 99%\r\n",
    );
    insta::assert_snapshot!(render(&mut app, 100, 26));
}

#[test]
fn console_pane_search_and_typing_mode() {
    let mut app = live();
    app.handle_key(key(KeyCode::Char('/')));
    for c in "ttys2".chars() {
        app.handle_key(key(KeyCode::Char(c)));
    }
    let prompt = render(&mut app, 100, 26);
    assert!(prompt.contains("/ttys2"), "{prompt}");
    app.handle_key(key(KeyCode::Enter));
    app.handle_key(key(KeyCode::Char('i')));
    insta::assert_snapshot!(render(&mut app, 100, 26));
}

#[test]
fn console_pane_before_output_and_after_a_failed_start() {
    let mut app = App::new();
    insta::assert_snapshot!("building", render(&mut app, 100, 24));
    app.on_failure(
        "starting QEMU",
        "qemu-system-x86_64 not found: install QEMU (Debian: apt-get install -y qemu-system-x86)"
            .into(),
    );
    insta::assert_snapshot!("failed", render(&mut app, 100, 24));
}

#[test]
fn post_mortem_after_qemu_dies() {
    let mut app = live();
    app.on_qemu_exit(
        GuestExit::QemuFailed { status: Some(1) },
        "qemu-system-x86_64: -kernel /x: Error loading uncompressed kernel without PVH ELF Note\n"
            .into(),
    );
    insta::assert_snapshot!(render(&mut app, 120, 24));
}

fn analysis() -> PanicAnalysis {
    let raw = "\
==== CADENZA PANIC REPORT v1 ====
kind: panic
message: panic_test requested on the kernel command line (depth 1)
location: kernel/src/debug/crash.rs:46:5
cpu: 0
uptime_ns: 12082000
registers:
  RSP=0xffffffff8038a500 RBP=0xffffffff8038a650 RFLAGS=0x0000000000000082 CR3=0x0000000000102000
backtrace:
  #0 0xffffffff80299b92 kernel::debug::crash::crash_inner+0x32/0x32
  #1 0xffffffff8023cf3a kernel::run_requested_mode+0x3a/0x174
  #2 0x10
==== END CADENZA PANIC REPORT ====";
    let report = symbols::PanicReport::find_in(raw).expect("parses");
    let context = |first: u32, lines: &[&str], current: u32| -> Vec<SourceLine> {
        lines
            .iter()
            .enumerate()
            .map(|(i, text)| SourceLine {
                number: first + i as u32,
                text: (*text).to_string(),
                current: first + i as u32 == current,
            })
            .collect()
    };
    PanicAnalysis {
        report,
        raw: raw.to_string(),
        backtrace: vec![
            BacktraceEntry {
                index: 0,
                address: 0xffff_ffff_8029_9b92,
                exact: false,
                symbol: Some("kernel::debug::crash::crash_inner+0x32/0x32".into()),
                frames: vec![
                    SourceFrame {
                        function: "kernel::debug::crash::refuse_to_continue".into(),
                        location: "kernel/src/debug/crash.rs:46:5".into(),
                        inlined: true,
                        context: context(
                            45,
                            &[
                                "fn refuse_to_continue(depth: u32) -> ! {",
                                "    panic!(\"panic_test requested (depth {depth})\")",
                                "}",
                            ],
                            46,
                        ),
                    },
                    SourceFrame {
                        function: "kernel::debug::crash::crash_inner".into(),
                        location: "kernel/src/debug/crash.rs:39:5".into(),
                        inlined: false,
                        context: context(39, &["    refuse_to_continue(depth)"], 39),
                    },
                ],
                note: None,
            },
            BacktraceEntry {
                index: 1,
                address: 0xffff_ffff_8023_cf3a,
                exact: false,
                symbol: Some("kernel::run_requested_mode+0x3a/0x174".into()),
                frames: vec![SourceFrame {
                    function: "kernel::run_requested_mode".into(),
                    location: "kernel/src/main.rs:242:9".into(),
                    inlined: false,
                    context: Vec::new(),
                }],
                note: None,
            },
            BacktraceEntry {
                index: 2,
                address: 0x10,
                exact: false,
                symbol: None,
                frames: Vec::new(),
                note: Some("not in the kernel image".into()),
            },
        ],
        symbols_note: None,
    }
}

#[test]
fn panic_pane_shows_the_symbolized_backtrace() {
    let mut app = live();
    app.panic = Some(analysis());
    app.tab = Tab::Panic;
    app.on_qemu_exit(GuestExit::Panic, String::new());
    insta::assert_snapshot!(render(&mut app, 110, 40));
}

#[test]
fn panic_pane_before_any_panic() {
    let mut app = running();
    app.tab = Tab::Panic;
    insta::assert_snapshot!(render(&mut app, 90, 24));
}

#[test]
fn memory_pane_with_live_telemetry_a_mark_and_a_leak() {
    let mut app = live();
    app.tab = Tab::Memory;
    // The kernel refuses `mark`: the TUI keeps it, then the heap grows.
    app.on_telemetry(TelemetryEvent::Refused {
        answered: Answered::Mark,
        message: "unknown request; use snapshot, scan or detail PID".into(),
    });
    let mut grown = Snapshot::parse(SNAPSHOT).expect("parses");
    grown.seq = 42;
    grown.heap.objects += 2;
    grown.heap.bytes += 600;
    grown.heap.allocs += 5;
    grown.heap.frees += 3;
    grown.tracker.seq += 5;
    grown.sites[0].bytes += 512;
    app.now = Duration::from_millis(3400);
    app.on_telemetry(TelemetryEvent::Snapshot {
        raw: grown.to_text(),
        snapshot: Box::new(grown),
        answered: Answered::Scan,
    });
    insta::assert_snapshot!(render(&mut app, 160, 48));
}

#[test]
fn memory_pane_without_telemetry() {
    let mut app = running();
    app.tab = Tab::Memory;
    app.on_console(b"[ 0.2] init: no /init in the initramfs\r\n");
    insta::assert_snapshot!(render(&mut app, 100, 24));
}

#[test]
fn processes_pane_sorted_by_name_descending() {
    let mut app = live();
    app.tab = Tab::Processes;
    for c in ['o', 'o', 'r', 'j'] {
        app.handle_key(key(KeyCode::Char(c)));
    }
    insta::assert_snapshot!(render(&mut app, 110, 30));
}

#[test]
fn processes_pane_shows_cpu_time_memory_and_fields_a_newer_kernel_adds() {
    let mut app = live();
    app.tab = Tab::Processes;
    // pid 1: CPU time and memory, plus a field this TUI does not know (a generic column);
    // pid 2: CPU time only (memory unreadable at that instant); pid 3: neither.
    let raw = SNAPSHOT
        .replace(
            "comm=\"init\"\ntask pid=2",
            "comm=\"init\" cpu_ms=61234 rss_kib=2048 vsz_kib=10296 image_kib=1968 heap_kib=44 stack_kib=12 anon_kib=24 nr_threads=1\ntask pid=2",
        )
        .replace(
            "state=R comm=\"init\"\n",
            "state=R comm=\"init\" cpu_ms=12\n",
        )
        // The `detail 1` answer: init's map and where it sleeps in the kernel.
        .replace(
            "telemetry-end seq=41 records=18",
            "detail pid=1 state=S where=sleeping maps=3 \
             ret0=0xffffffff80221234 sym0=\"kernel::task::schedule+0x1a4/0x3c0\" \
             ret1=0xffffffff80231234 sym1=\"kernel::task::wait_child+0x8c/0x2f0\"\n\
             map start=0x400000 end=0x401000 perms=r--p name=\"init\"\n\
             map start=0x401000 end=0x585000 perms=r-xp name=\"init\"\n\
             map start=0x7fffff7fe000 end=0x7fffffffe000 perms=rw-p name=\"[stack]\"\n\
             telemetry-end seq=41 records=22",
        );
    app.on_telemetry(TelemetryEvent::Snapshot {
        snapshot: Box::new(Snapshot::parse(&raw).expect("parses")),
        raw,
        answered: Answered::Poll,
    });
    insta::assert_snapshot!(render(&mut app, 110, 30));
}

#[test]
fn processes_pane_without_task_records() {
    let mut app = running();
    app.tab = Tab::Processes;
    let raw = SNAPSHOT
        .replace("tasks count=3 total=3\n", "tasks count=0 total=0\n")
        .lines()
        .filter(|l| !l.starts_with("task "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("records=18", "records=15");
    app.on_telemetry(TelemetryEvent::Snapshot {
        snapshot: Box::new(Snapshot::parse(&raw).expect("parses")),
        raw,
        answered: Answered::Poll,
    });
    insta::assert_snapshot!(render(&mut app, 100, 24));
}

#[test]
fn gdb_pane_with_the_kernel_stub_attached() {
    let mut app = live();
    app.tab = Tab::Gdb;
    app.gdb.stub = GdbStub::Kgdb {
        port: 1234,
        wait: false,
    };
    app.on_gdb_attached(
        "Reading symbols from /work/target/kernel...\n(gdb) Remote debugging using :1234\n\
         kernel::task::schedule () at kernel/src/task/mod.rs:548\n(gdb) "
            .into(),
    );
    app.on_gdb_output("monitor ps\n  PID  PPID S COMMAND\n    1     0 S init\n(gdb) ");
    assert_eq!(app.gdb.session, GdbSession::Attached);
    insta::assert_snapshot!(render(&mut app, 120, 30));
}

#[test]
fn gdb_pane_with_qemus_stub_before_gdb_continues() {
    let mut app = running();
    app.tab = Tab::Gdb;
    app.gdb.stub = GdbStub::Qemu { port: 4321 };
    insta::assert_snapshot!(render(&mut app, 120, 24));
}

#[test]
fn help_overlay_lists_the_keys() {
    let mut app = live();
    app.handle_key(key(KeyCode::Char('?')));
    insta::assert_snapshot!(render(&mut app, 110, 32));
}

#[test]
fn a_terminal_too_small_says_so() {
    let mut app = live();
    insta::assert_snapshot!(render(&mut app, 60, 10));
}

#[test]
fn every_size_from_tiny_to_large_renders_without_panicking() {
    let mut app = live();
    app.panic = Some(analysis());
    for tab in Tab::ALL {
        app.tab = tab;
        for (w, h) in [(1, 1), (79, 23), (80, 24), (81, 25), (120, 30), (250, 80)] {
            let _ = render(&mut app, w, h);
        }
    }
    app.help = true;
    let _ = render(&mut app, 80, 24);
    assert!(matches!(app.qemu, QemuState::Running { pid: 4242 }));
}
