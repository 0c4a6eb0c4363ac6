//! The log annotator on synthetic logs built from the fixture's real addresses.

mod fixtures;

use fixtures::{Variant, fixture, workspace_root};
use symbols::{AnnotateOptions, Annotator, OpenOptions, Symbolizer, annotate_str};

fn open() -> Symbolizer {
    let options = OpenOptions {
        source_root: Some(workspace_root()),
        require_debug_info: false,
    };
    Symbolizer::open_with(&fixture(Variant::Debug).elf, &options).expect("fixture opens")
}

fn address_of(symbolizer: &Symbolizer, name: &str) -> (u64, u64) {
    let symbol = symbolizer.symbols().by_name(name).expect("function exists");
    (symbol.address, symbol.size)
}

/// An address whose exact line differs from its return-address line (it starts a line), so the
/// two readings of a frame can be told apart.
fn line_start_address(symbolizer: &Symbolizer) -> u64 {
    let (start, size) = address_of(symbolizer, "inline::outer");
    (start + 1..start + size)
        .find(|&address| {
            let exact = symbolizer.resolve(address).ok();
            let ret = symbolizer.resolve_return_address(address).ok();
            let line = |r: Option<symbols::Resolution>| r.and_then(|r| r.innermost()?.line);
            let (exact, ret) = (line(exact), line(ret));
            exact.is_some() && ret.is_some() && exact != ret
        })
        .expect("some instruction in outer starts a new line")
}

/// The return address of `cadenza_fixture_entry`'s call to `outer`.
fn call_return_address(symbolizer: &Symbolizer) -> u64 {
    let fixture = fixture(Variant::Debug); // Same source lines in every variant.
    let call_line = fixture.line_of("outer-call");
    let (start, size) = address_of(symbolizer, "cadenza_fixture_entry");
    (start + 1..=start + size)
        .find(|&address| {
            let ret = symbolizer.resolve_return_address(address).ok();
            let exact = symbolizer.resolve(address).ok();
            let line =
                |r: &Option<symbols::Resolution>| r.as_ref().and_then(|r| r.innermost()?.line);
            line(&ret) == Some(call_line) && line(&exact) != Some(call_line)
        })
        .expect("the byte after the call to outer")
}

fn innermost_line(symbolizer: &Symbolizer, address: u64, exact: bool) -> String {
    let resolution = if exact {
        symbolizer.resolve(address)
    } else {
        symbolizer.resolve_return_address(address)
    };
    let frame = resolution.expect("resolves").frames[0].clone();
    format!("{frame}")
}

const PASSTHROUGH: &str = "\
[    0.000000] Cadenza 0.1.0 booting
plain text, trailing spaces   
\ttabs\tand unicode: \u{e9}\u{1f980}
#1 0xnothex
  #3 0xffffffff80214204trailing-garbage
  # 3 0xffffffff80214204
  #3
[<ffffffff80214204>
registers:
  RIP=0xffffffff80214204 RSP=0xffffffff8025c4f0
==== CADENZA PANIC REPORT v1 ====
kind: exception
==== END CADENZA PANIC REPORT ====

\r
last line without newline";

#[test]
fn non_backtrace_lines_pass_through_byte_for_byte() {
    let symbolizer = open();
    for options in [AnnotateOptions::default(), AnnotateOptions { context: 3 }] {
        assert_eq!(
            annotate_str(&symbolizer, options.clone(), PASSTHROUGH),
            PASSTHROUGH
        );
        let crlf = PASSTHROUGH.replace('\n', "\r\n");
        assert_eq!(annotate_str(&symbolizer, options.clone(), &crlf), crlf);
        let mut annotator = Annotator::new(&symbolizer, options);
        for line in PASSTHROUGH.lines() {
            assert_eq!(annotator.line(line), vec![line.to_owned()]);
        }
    }
}

#[test]
fn exception_frame_zero_is_exact_other_frames_are_return_addresses() {
    let symbolizer = open();
    let exact_address = line_start_address(&symbolizer);
    let return_address = call_return_address(&symbolizer);
    let report = |kind: &str| {
        format!(
            "boot ok\n==== CADENZA PANIC REPORT v1 ====\nkind: {kind}\nmessage: boom\ncpu: 0\n\
             uptime_ns: 1\nregisters:\n  RIP={exact_address:#018x}\nbacktrace:\n  \
             #0 {exact_address:#018x}\n  #1 {return_address:#018x}\n\
             ==== END CADENZA PANIC REPORT ====\nafter\n  #0 {exact_address:#018x}\n"
        )
    };
    let exact = innermost_line(&symbolizer, exact_address, true);
    let as_return = innermost_line(&symbolizer, exact_address, false);
    let call = innermost_line(&symbolizer, return_address, false);
    assert_ne!(exact, as_return);
    let symbol = |a: u64| {
        symbolizer
            .resolve(a)
            .expect("ok")
            .symbol
            .expect("symbol")
            .to_string()
    };

    let out = annotate_str(
        &symbolizer,
        AnnotateOptions::default(),
        &report("exception"),
    );
    let lines: Vec<&str> = out.lines().collect();
    let frame0 = lines
        .iter()
        .position(|l| l.starts_with("  #0"))
        .expect("#0");
    assert_eq!(
        lines[frame0],
        format!("  #0 {exact_address:#018x} {}", symbol(exact_address))
    );
    assert_eq!(
        lines[frame0 + 1],
        format!("      {exact}"),
        "exact #0 in exception report"
    );
    let frame1 = lines
        .iter()
        .position(|l| l.starts_with("  #1"))
        .expect("#1");
    assert_eq!(
        lines[frame1 + 1],
        format!("      {call}"),
        "return address #1"
    );
    // After the report: frames are return addresses again.
    let after = lines.iter().position(|l| *l == "after").expect("after");
    assert_eq!(lines[after + 2], format!("      {as_return}"));

    let out = annotate_str(&symbolizer, AnnotateOptions::default(), &report("panic"));
    let lines: Vec<&str> = out.lines().collect();
    let frame0 = lines
        .iter()
        .position(|l| l.starts_with("  #0"))
        .expect("#0");
    assert_eq!(
        lines[frame0 + 1],
        format!("      {as_return}"),
        "#0 of a panic is a return address"
    );

    // The non-frame lines of the report are untouched.
    let input = report("exception");
    for line in input.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            out.lines().any(|o| o == line) || line.contains("exception"),
            "{line}"
        );
    }
}

#[test]
fn inlined_frames_are_listed_innermost_first() {
    let symbolizer = open();
    let fixture = fixture(Variant::Debug);
    let helper_body = fixture.line_of("helper-body");
    let (start, size) = address_of(&symbolizer, "inline::outer");
    let address = (start..start + size)
        .find(|&a| {
            symbolizer
                .resolve_return_address(a)
                .is_ok_and(|r| r.frames.len() == 2 && r.frames[0].line == Some(helper_body))
        })
        .expect("an address inside the inlined helper");
    let mut annotator = Annotator::new(&symbolizer, AnnotateOptions::default());
    let out = annotator.line(&format!("  #4 {address:#x}"));
    assert_eq!(out.len(), 3, "{out:#?}");
    assert!(
        out[1].starts_with("      inline::helper at symbols/tests/fixtures/inline.rs:")
            && out[1].ends_with(" [inlined]"),
        "{out:#?}"
    );
    assert!(
        out[2].starts_with("      inline::outer at symbols/tests/fixtures/inline.rs:")
            && !out[2].contains("[inlined]"),
        "{out:#?}"
    );
}

#[test]
fn kernel_printed_symbols_are_kept_and_checked() {
    let symbolizer = open();
    let return_address = call_return_address(&symbolizer);
    let ours = symbolizer
        .resolve(return_address)
        .expect("ok")
        .symbol
        .expect("symbol")
        .to_string();
    let call = innermost_line(&symbolizer, return_address, false);
    let mut annotator = Annotator::new(&symbolizer, AnnotateOptions::default());

    let line = format!("  #1 {return_address:#018x} {ours}");
    assert_eq!(
        annotator.line(&line),
        vec![line.clone(), format!("      {call}")]
    );

    // kmemleak style, with Linux's `? ` for unreliable frames and a console timestamp.
    let line = format!("[   12.000001]     [<{return_address:016x}>] ? {ours}");
    let out = annotator.line(&line);
    assert_eq!(out[0], line, "not duplicated");
    assert_eq!(out[1], format!("{}{call}", " ".repeat(15 + 4 + 4)));

    // A different offset/size than the image says: the log is from another build.
    let line = format!("  #1 {return_address:#018x} cadenza_fixture_entry+0x999/0x1000");
    let out = annotator.line(&line);
    assert_eq!(
        out[0],
        format!("{line} (image has {ours}: wrong kernel image for this log?)")
    );
}

#[test]
fn unresolvable_addresses_get_a_note_and_the_stream_goes_on() {
    let symbolizer = open();
    let return_address = call_return_address(&symbolizer);
    let log = format!(
        "  #0 0x0000000000000010\n[    0.5]   #1 {:#x}\n  #2 {return_address:#x}\n",
        u64::MAX
    );
    let out = annotate_str(&symbolizer, AnnotateOptions::default(), &log);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "  #0 0x0000000000000010 (not in kernel image)");
    assert_eq!(
        lines[1],
        format!("[    0.5]   #1 {:#x} (not in kernel image)", u64::MAX)
    );
    assert!(lines[2].starts_with(&format!(
        "  #2 {return_address:#x} cadenza_fixture_entry+0x"
    )));
    assert_eq!(lines.len(), 4, "{out}");
}

#[test]
fn carriage_returns_are_kept_on_added_lines() {
    let symbolizer = open();
    let return_address = call_return_address(&symbolizer);
    let log = format!("a\r\n  #1 {return_address:#x}\r\nb\r\n");
    let out = annotate_str(&symbolizer, AnnotateOptions::default(), &log);
    assert!(
        out.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
        "{out:?}"
    );
    assert_eq!(out.lines().count(), 4);
}

#[test]
fn source_context_marks_the_line_and_tolerates_missing_sources() {
    let symbolizer = open();
    let fixture = fixture(Variant::Debug);
    let call_line = fixture.line_of("outer-call");
    let return_address = call_return_address(&symbolizer);
    let mut annotator = Annotator::new(&symbolizer, AnnotateOptions { context: 2 });
    let out = annotator.line(&format!("  #1 {return_address:#x}"));
    // Line, frame, then 5 lines of context.
    assert_eq!(out.len(), 2 + 5, "{out:#?}");
    let marked: Vec<&String> = out
        .iter()
        .filter(|l| l.trim_start().starts_with('>'))
        .collect();
    assert_eq!(marked.len(), 1, "{out:#?}");
    assert_eq!(
        marked[0].as_str(),
        format!(
            "        > {call_line} | {}",
            fixture.text_of(call_line).trim_end()
        )
    );
    assert!(out[2].contains(&format!("{} |", call_line - 2)), "{out:#?}");
    assert!(out[6].contains(&format!("{} |", call_line + 2)), "{out:#?}");

    // Sources that are gone: no context, no error.
    let gone = Symbolizer::open(&fixtures::fixture(Variant::SourceDeleted).elf).expect("opens");
    let return_address = call_return_address(&gone);
    let mut annotator = Annotator::new(&gone, AnnotateOptions { context: 2 });
    let out = annotator.line(&format!("  #1 {return_address:#x}"));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(
        out[1].contains(&format!("inline.rs:{call_line}:")),
        "{out:#?}"
    );
}

#[test]
fn symbol_only_images_still_annotate_symbols() {
    let symbolizer = Symbolizer::open(&fixture(Variant::NoDebugInfo).elf).expect("opens");
    let (start, size) = address_of(&symbolizer, "inline::outer");
    let mut annotator = Annotator::new(&symbolizer, AnnotateOptions { context: 2 });
    assert_eq!(
        annotator.line(&format!("  #1 {:#x}", start + 4)),
        vec![format!("  #1 {:#x} inline::outer+0x4/{size:#x}", start + 4)]
    );
}
