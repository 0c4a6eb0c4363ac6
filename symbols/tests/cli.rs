//! The `cadenza-symbols` binary, run as a user would.

mod fixtures;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fixtures::{Variant, fixture, scratch_dir, workspace_root};
use symbols::{OpenOptions, Symbolizer};

fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cadenza-symbols"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cadenza-symbols");
    let mut input = child.stdin.take().expect("stdin");
    // A command that reads a file instead may exit before reading stdin: a closed pipe then
    // just means the input was not wanted (what it printed is still checked).
    match input.write_all(stdin) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.expect("write stdin"),
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn elf() -> String {
    fixture(Variant::Debug).elf.display().to_string()
}

fn symbolizer() -> Symbolizer {
    let options = OpenOptions {
        source_root: Some(workspace_root()),
        require_debug_info: false,
    };
    Symbolizer::open_with(&fixture(Variant::Debug).elf, &options).expect("opens")
}

fn root() -> String {
    workspace_root().display().to_string()
}

#[test]
fn resolve_prints_symbol_and_frames_like_the_library() {
    let symbolizer = symbolizer();
    let outer = symbolizer
        .symbols()
        .by_name("inline::outer")
        .expect("outer")
        .clone();
    let addresses: Vec<String> = (outer.address..outer.end())
        .map(|a| format!("{a:#x}"))
        .collect();
    let (elf, root) = (elf(), root());
    let mut args = vec!["resolve", "--elf", &elf, "--source-root", &root];
    args.extend(addresses.iter().map(String::as_str));
    let output = cli(&args, b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected: String = (outer.address..outer.end())
        .map(|a| format!("{}\n", symbolizer.resolve(a).expect("resolves")))
        .collect();
    assert_eq!(text(&output.stdout), expected);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("    inline::helper at symbols/tests/fixtures/inline.rs:"));
    assert!(stdout.contains(" [inlined]\n    inline::outer at symbols/tests/fixtures/inline.rs:"));
    assert!(stdout.starts_with(&format!(
        "{:#018x} inline::outer+0x0/{:#x}\n",
        outer.address, outer.size
    )));
}

#[test]
fn resolve_return_addresses_and_symbolic_input_from_stdin() {
    let symbolizer = symbolizer();
    let entry = symbolizer
        .symbols()
        .by_name("cadenza_fixture_entry")
        .expect("entry")
        .clone();
    let root = root();
    let input = format!(
        "cadenza_fixture_entry+0x1 {:x}\n\n  inline::outer  \n",
        entry.address + 2
    );
    let output = cli(
        &[
            "resolve",
            "--return-address",
            "--elf",
            &elf(),
            "--source-root",
            &root,
        ],
        input.as_bytes(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let outer = symbolizer
        .symbols()
        .by_name("inline::outer")
        .expect("outer")
        .address;
    let expected: String = [entry.address + 1, entry.address + 2, outer]
        .iter()
        .map(|&a| format!("{}\n", symbolizer.resolve_return_address(a).expect("ok")))
        .collect();
    assert_eq!(text(&output.stdout), expected);
}

#[test]
fn a_bad_address_is_reported_and_the_rest_still_resolve() {
    let symbolizer = symbolizer();
    let outer = symbolizer
        .symbols()
        .by_name("inline::outer")
        .expect("outer")
        .address;
    let good = format!("{outer:#x}");
    let output = cli(
        &[
            "resolve",
            "--elf",
            &elf(),
            "0x10",
            "no_such_fn",
            &good,
            "0xzz",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(&format!("{outer:#018x} inline::outer+0x0/")),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "cadenza-symbols: 0x10: address 0x10 is outside the image's text",
            "cadenza-symbols: no_such_fn: unknown symbol \"no_such_fn\" (not a function in the image's symbol table)",
            "cadenza-symbols: 0xzz: cannot parse address \"0xzz\": not a 64-bit hexadecimal number",
        ]
    );
}

#[test]
fn bad_images_fail_with_one_line_naming_the_file() {
    let dir = scratch_dir("cli-bad");
    let text_file = dir.join("kernel.txt");
    std::fs::write(&text_file, "not a kernel\n").expect("write");
    let missing = dir.join("missing-kernel");
    let stripped = fixture(Variant::Stripped).elf.clone();
    for (path, what) in [
        (&text_file, "is not an ELF file: it looks like a text file"),
        (&missing, "no such file"),
        (&stripped, "is stripped"),
    ] {
        for command in ["resolve", "annotate"] {
            let output = cli(&[command, "--elf", &path.display().to_string(), "0x1"], b"");
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command} {}",
                path.display()
            );
            let stderr = text(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.starts_with("cadenza-symbols: error: "), "{stderr}");
            assert!(stderr.contains(&path.display().to_string()), "{stderr}");
            assert!(stderr.contains(what), "{stderr}");
            assert!(output.stdout.is_empty());
        }
    }
}

#[test]
fn symbol_only_images_warn_once_and_work() {
    let elf = fixture(Variant::NoDebugInfo).elf.display().to_string();
    let output = cli(&["resolve", "--elf", &elf, "inline::outer+0x2"], b"");
    assert!(output.status.success());
    assert!(text(&output.stdout).contains(" inline::outer+0x2/"));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no DWARF debug info (was it stripped? build with debug = true)"));
}

#[test]
fn annotate_streams_stdin_byte_for_byte() {
    let symbolizer = symbolizer();
    let entry = symbolizer
        .symbols()
        .by_name("cadenza_fixture_entry")
        .expect("entry")
        .clone();
    let frame = format!("  #1 {:#x}", entry.address + 6);
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"[    0.000001] hello\n");
    input.extend_from_slice(b"binary \xff\xfe garbage \x1b[0m\n");
    input.extend_from_slice(frame.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(b"no newline at the end");
    let root = root();
    let output = cli(
        &["annotate", "--elf", &elf(), "--source-root", &root],
        &input,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    let mut annotator = symbols::Annotator::new(&symbolizer, symbols::AnnotateOptions::default());
    let mut expected: Vec<u8> = Vec::new();
    expected.extend_from_slice(b"[    0.000001] hello\n");
    expected.extend_from_slice(b"binary \xff\xfe garbage \x1b[0m\n");
    for line in annotator.line(&frame) {
        expected.extend_from_slice(line.as_bytes());
        expected.push(b'\n');
    }
    expected.extend_from_slice(b"no newline at the end");
    assert_eq!(
        output.stdout,
        expected,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("cadenza_fixture_entry at symbols/tests/fixtures/inline.rs:")
    );
}

#[test]
fn annotate_reads_a_log_file_with_context() {
    let symbolizer = symbolizer();
    let fixture = fixture(Variant::Debug);
    let entry = symbolizer
        .symbols()
        .by_name("cadenza_fixture_entry")
        .expect("entry")
        .clone();
    let log = format!(
        "==== CADENZA PANIC REPORT v1 ====\nkind: panic\nbacktrace:\n  #0 {:#x}\n==== END CADENZA PANIC REPORT ====\n",
        entry.address + 6
    );
    let path = scratch_dir("cli-log").join("console.log");
    std::fs::write(&path, &log).expect("write log");
    let root = root();
    let output = cli(
        &[
            "annotate",
            "--elf",
            &elf(),
            "--source-root",
            &root,
            "--context",
            "1",
            &path.display().to_string(),
        ],
        b"ignored stdin\n",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected =
        symbols::annotate_str(&symbolizer, symbols::AnnotateOptions { context: 1 }, &log);
    assert_eq!(text(&output.stdout), expected);
    let call_line = fixture.line_of("outer-call");
    assert!(
        expected.contains(&format!("> {call_line} | ")),
        "{expected}"
    );

    let output = cli(&["annotate", "--elf", &elf(), "/no/such/log"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("/no/such/log"));
}

#[test]
fn annotate_answers_each_line_before_the_input_ends() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = Command::new(env!("CARGO_BIN_EXE_cadenza-symbols"))
        .args(["annotate", "--elf", &elf()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run cadenza-symbols");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.expect("read")).is_err() {
                break;
            }
        }
    });
    for message in ["first line", "second line"] {
        writeln!(stdin, "{message}").expect("write");
        stdin.flush().expect("flush");
        // The pipe stays open: an answer can only come from per-line streaming.
        let echoed = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("annotate did not answer a line while its input was still open");
        assert_eq!(echoed, message);
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    reader.join().expect("reader thread");
}
