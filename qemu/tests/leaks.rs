//! The leak tracker on real boots: a churn workload that must leave nothing behind, a deliberate
//! leak that must be reported in kmemleak's format, and heap bugs that must stop the kernel with
//! a panic report naming the allocation and the free.

mod common;

use std::time::Duration;

use cadenza_qemu::{GuestExit, QemuConfig, RunResult};
use common::kernel;
use symbols::{PanicKind, PanicReport};

const TIMEOUT: Duration = Duration::from_secs(60);

fn boot(append: &str) -> RunResult {
    let mut config = QemuConfig::new(kernel());
    config.append = format!("console=ttyS0 {append}");
    let result = config.run(TIMEOUT).expect("QEMU starts");
    assert_ne!(
        result.exit,
        GuestExit::TimedOut,
        "the guest hung:\n{}",
        result.console
    );
    result
}

/// Console lines without their `[    1.234567] ` timestamps.
fn lines(console: &str) -> Vec<&str> {
    console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .map(
            |l| match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((_, text)) => text,
                None => l,
            },
        )
        .collect()
}

/// `key=value` from a console line.
fn field(line: &str, key: &str) -> u64 {
    line.split([' ', ';'])
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn churn_returns_the_heap_to_its_baseline_without_leaks() {
    let result = boot("kmemleak_test=churn");
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    let lines = lines(&result.console);
    let find = |prefix: &str| {
        lines
            .iter()
            .copied()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in\n{}", result.console))
    };
    let work = find("kmemleak_test: churn: 100 rounds, ");
    let allocations: u64 = work
        .split_once("rounds, ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("N allocations");
    assert!(allocations > 10_000, "{work}");
    let totals = find("kmemleak_test: churn: baseline ");
    assert_eq!(
        field(totals, "live_objects"),
        totals
            .rsplit_once("after ")
            .map(|(_, after)| field(after, "live_objects"))
            .unwrap(),
        "{totals}"
    );
    let (baseline, after) = totals.split_once("after ").unwrap();
    assert_eq!(
        field(baseline, "live_bytes"),
        field(after, "live_bytes"),
        "{totals}"
    );
    let scan = find("kmemleak_test: churn: scan ");
    assert_eq!(field(scan, "unreferenced"), 0, "{}", result.console);
    assert!(!result.console.contains("unreferenced object"));
}

#[test]
fn a_deliberate_leak_is_reported_in_kmemleak_format() {
    let result = boot("kmemleak_test=leak");
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    let lines = lines(&result.console);
    assert!(
        lines.contains(&"kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
        "{}",
        result.console
    );
    let at = lines
        .iter()
        .position(|l| l.starts_with("unreferenced object 0xffff8000") && l.ends_with(" (size 72):"))
        .unwrap_or_else(|| panic!("a 72-byte unreferenced object in\n{}", result.console));
    let block = &lines[at..];
    assert!(
        block[1].starts_with("  comm \"swapper/0\", pid 0, jiffies ")
            && block[1].contains(" (age "),
        "{}",
        block[1]
    );
    assert_eq!(block[2], "  hex dump (first 32 bytes):");
    assert_eq!(
        block[3],
        "    5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a 5a  ZZZZZZZZZZZZZZZZ"
    );
    assert_eq!(block[5], "  backtrace:");
    // `    [<ffffffff8020c792>] kernel::...::kmemleak_test_leak+0x1c/0x6b`: the first frame is
    // the leaking function, not the allocator.
    let first = block[6];
    let (address, symbol) = first
        .strip_prefix("    [<")
        .and_then(|rest| rest.split_once(">] "))
        .unwrap_or_else(|| panic!("a backtrace line: {first:?}"));
    assert_eq!(address.len(), 16);
    assert!(u64::from_str_radix(address, 16).unwrap() >= 0xffff_ffff_8000_0000);
    assert!(
        symbol.starts_with("kernel::mm::leak::triggers::kmemleak_test_leak+0x"),
        "{symbol}"
    );
    assert!(block[7].contains("run_test_mode+0x"), "{}", block[7]);
}

#[test]
fn kmemleak_off_tracks_nothing() {
    let result = boot("kmemleak=off kmemleak_test=leak");
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    assert!(
        result
            .console
            .contains("kmemleak: Kernel memory leak detector disabled (kmemleak=off)")
    );
    assert!(
        result
            .console
            .contains("kmemleak: kmemleak is off (kmemleak=off)"),
        "{}",
        result.console
    );
    assert!(!result.console.contains("unreferenced object"));
}

/// Boots into a heap bug, which must end in a parseable panic report.
fn heap_bug(mode: &str) -> PanicReport {
    let result = boot(&format!("kmemleak_test={mode}"));
    assert_eq!(result.exit, GuestExit::Panic, "{}", result.console);
    let report =
        PanicReport::find_in(&result.console).unwrap_or_else(|e| panic!("{e}\n{}", result.console));
    assert_eq!(report.kind, PanicKind::Panic);
    assert_eq!(
        report.location.as_ref().map(|l| l.file.as_str()),
        Some("kernel/src/mm/leak/mod.rs")
    );
    report
}

#[test]
fn a_double_free_names_the_allocation_and_both_frees() {
    let report = heap_bug("double_free");
    let message = &report.message;
    assert!(
        message.starts_with("kmemleak: double free of 0xffff8000"),
        "{message}"
    );
    let after = |label: &str| {
        message
            .split_once(label)
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{label:?} in {message}"))
    };
    let triggers = "kernel::mm::leak::triggers::";
    // The trigger's allocator and the self-test's are byte-identical functions, which LLVM's
    // merge-functions pass may fold into one symbol: either name is the right site.
    let allocated = after("allocated by ");
    assert!(
        allocated.starts_with(&format!("{triggers}kmemleak_test_alloc_victim+0x"))
            || allocated.starts_with("kernel::mm::leak::tests::selftest_alloc_victim+0x"),
        "{message}"
    );
    assert!(
        after("; first freed by ").starts_with(&format!("{triggers}kmemleak_test_first_free+0x")),
        "{message}"
    );
    assert!(
        after("; freed again by ").starts_with(&format!("{triggers}kmemleak_test_second_free+0x")),
        "{message}"
    );
    // The report's own backtrace is the second free's stack.
    assert!(report.backtrace.len() >= 4, "{:?}", report.backtrace);
}

#[test]
fn invalid_frees_and_overflows_are_reported() {
    let invalid = heap_bug("invalid_free");
    assert!(
        invalid.message.contains("which is not a heap address, by kernel::mm::leak::triggers::kmemleak_test_free_static+0x"),
        "{}",
        invalid.message
    );
    let overflow = heap_bug("red_zone");
    assert!(
        overflow
            .message
            .starts_with("kmemleak: heap corruption: object 0xffff8000")
            && overflow
                .message
                .contains("(size 40) allocated by kernel::mm::leak::triggers::")
            && overflow
                .message
                .contains("written past its end (byte +40 is 0x00, expected 0xcc)"),
        "{}",
        overflow.message
    );
}
