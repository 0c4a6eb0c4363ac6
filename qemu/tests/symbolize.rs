//! Panic analysis end to end: the real kernel crashes in QEMU, its own kallsyms names each frame,
//! and the host symbolizer turns the captured log into source lines with inlined frames.

mod common;

use std::path::Path;
use std::time::Duration;

use cadenza_qemu::{GuestExit, QemuConfig};
use common::{kernel, workspace};
use symbols::symbolizer::Symbolizer;
use symbols::{AnnotateOptions, Annotator, PanicReport};

fn crash_log(append: &str) -> String {
    let mut config = QemuConfig::new(kernel());
    config.append = format!("console=ttyS0 {append}");
    let result = config.run(Duration::from_secs(60)).expect("QEMU starts");
    assert_eq!(result.exit, GuestExit::Panic, "{}", result.console);
    result.console
}

/// The 1-based line of the first line of `file` containing `needle`.
fn source_line(file: &Path, needle: &str) -> u32 {
    let text = std::fs::read_to_string(workspace().root().join(file)).unwrap();
    let index = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()));
    index as u32 + 1
}

/// `(address, name, offset, size)` of every backtrace line the kernel printed.
fn kernel_frames(log: &str) -> Vec<(u64, String, u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    log.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.next().filter(|w| w.starts_with('#'))?;
            let address = hex(words.next()?);
            let symbolic = words.next()?;
            let (name, rest) = symbolic.rsplit_once('+')?;
            let (offset, size) = rest.split_once('/')?;
            Some((address, name.to_owned(), hex(offset), hex(size)))
        })
        .collect()
}

#[test]
fn panic_frames_name_the_function_file_line_and_inlined_helper() {
    let log = crash_log("panic_test");
    let symbolizer = Symbolizer::open(kernel()).expect("the kernel ELF has DWARF");
    let report = PanicReport::find_in(&log).expect("a report");

    // The kernel's own kallsyms named every frame, and the host agrees on each one.
    let frames = kernel_frames(&log);
    assert_eq!(
        frames.len(),
        report.backtrace.len(),
        "every frame symbolized:\n{log}"
    );
    for (address, name, offset, size) in &frames {
        let printed = format!("{name}+{offset:#x}");
        assert_eq!(
            symbolizer.parse_address(&printed).unwrap(),
            *address,
            "{printed}"
        );
        let host = symbolizer
            .resolve_return_address(*address)
            .unwrap()
            .symbol
            .expect("host symbol");
        assert_eq!(
            (host.name.as_ref(), host.offset, host.size),
            (name.as_str(), *offset, *size)
        );
    }
    let names: Vec<&str> = frames.iter().map(|f| f.1.as_str()).collect();
    let crash = names
        .iter()
        .position(|n| *n == "kernel::debug::crash::crash_inner")
        .unwrap_or_else(|| panic!("crash_inner in {names:?}"));
    assert_eq!(names[crash + 1], "kernel::debug::crash::panic_test");
    assert_eq!(
        names.last(),
        Some(&"kernel_entry64"),
        "the walk ends at the boot stack's bottom"
    );

    // The host turns the log into source lines, the inlined helper included.
    let crash_rs = Path::new("kernel/src/debug/crash.rs");
    let panic_line = source_line(crash_rs, "panic!(\"panic_test requested");
    let call_line = source_line(crash_rs, "    refuse_to_continue(depth)");
    let annotated = Annotator::new(&symbolizer, AnnotateOptions { context: 0 }).annotate_str(&log);
    let inlined = format!(
        "kernel::debug::crash::refuse_to_continue at kernel/src/debug/crash.rs:{panic_line}:"
    );
    let caller =
        format!("kernel::debug::crash::crash_inner at kernel/src/debug/crash.rs:{call_line}:");
    let inlined_at = annotated
        .find(&inlined)
        .unwrap_or_else(|| panic!("{inlined}\n{annotated}"));
    let inlined_line = annotated[inlined_at..].lines().next().unwrap();
    assert!(inlined_line.ends_with("[inlined]"), "{inlined_line}");
    let caller_at = annotated
        .find(&caller)
        .unwrap_or_else(|| panic!("{caller}\n{annotated}"));
    assert!(inlined_at < caller_at, "innermost first");
    assert!(
        !annotated[caller_at..]
            .lines()
            .next()
            .unwrap()
            .contains("[inlined]")
    );
    // Everything that is not a backtrace line passes through unchanged.
    for line in log.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(annotated.contains(line), "{line:?} was changed");
    }
}

#[test]
fn exception_backtraces_start_at_the_fault_and_cross_the_trap_frame() {
    let log = crash_log("fault_test=page_fault");
    let symbolizer = Symbolizer::open(kernel()).unwrap();
    let report = PanicReport::find_in(&log).unwrap();
    let rip = report.register("RIP").unwrap();
    let frames = kernel_frames(&log);
    assert_eq!(frames[0].0, rip);
    assert_eq!(frames[0].1, "kernel::debug::crash::trigger");
    let names: Vec<&str> = frames.iter().map(|f| f.1.as_str()).collect();
    assert!(names.contains(&"kernel::kernel_main"), "{names:?}");
    assert_eq!(names.last(), Some(&"kernel_entry64"));

    // #0 is the faulting instruction itself: resolved exactly, in the inlined fault helper.
    let exact = symbolizer.resolve(rip).unwrap();
    let innermost = &exact.frames[0];
    assert_eq!(
        innermost.function.as_deref(),
        Some("kernel::arch::x86_64::fault::read_unmapped")
    );
    assert_eq!(
        innermost.file.as_deref(),
        Some("kernel/src/arch/x86_64/fault.rs")
    );
    assert!(innermost.inlined);
    let annotated = Annotator::new(&symbolizer, AnnotateOptions::default()).annotate_str(&log);
    assert!(
        annotated.contains(
            "kernel::arch::x86_64::fault::read_unmapped at kernel/src/arch/x86_64/fault.rs:"
        ),
        "{annotated}"
    );
}
