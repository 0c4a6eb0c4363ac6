//! Fuzzing the symbolizer's untrusted inputs (docs/fuzzing.md): console logs and panic reports
//! (`PanicReport::find_in`, `BacktraceLine::parse`, the `Annotator`), and the ELF/DWARF image
//! itself — a small C program compiled here with `cc -g`, its headers, section headers,
//! symbol table and DWARF sections mutated in place, written to a temporary file and opened
//! with `Symbolizer::open`, then asked to resolve addresses.
//!
//! Properties: nothing panics, loops or allocates hugely (`LimitedAllocator`); a damaged image
//! is an error or resolves what it can; the annotator passes every line through first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use cadenza_fuzz::{Harness, LimitedAllocator, Rng};
use object::{Object, ObjectSection};
use symbols::annotate::BacktraceLine;
use symbols::{AnnotateOptions, Annotator, OpenOptions, PanicReport, Symbolizer};

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator::new(256 << 20);

const PROGRAM: &str = r#"
#include <stdio.h>
static inline __attribute__((always_inline)) int square(int x) { return x * x; }
__attribute__((noinline)) int sum_of_squares(int n) {
    int total = 0;
    for (int i = 0; i < n; i++) total += square(i);
    return total;
}
__attribute__((noinline)) void report(const char *what, int value) { printf("%s %d\n", what, value); }
int main(int argc, char **argv) {
    (void)argv;
    report("sum", sum_of_squares(argc + 10));
    return 0;
}
"#;

/// The fixture image, compiled once per test process.
fn image() -> &'static (PathBuf, Vec<u8>) {
    static IMAGE: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("symbols-fuzz");
        std::fs::create_dir_all(&dir).expect("create the fixture directory");
        let source = dir.join(format!("program-{}.c", std::process::id()));
        let elf = dir.join(format!("program-{}", std::process::id()));
        std::fs::write(&source, PROGRAM).expect("write the fixture source");
        let output = Command::new("cc")
            .args(["-g", "-O2", "-fno-omit-frame-pointer", "-o"])
            .arg(&elf)
            .arg(&source)
            .output()
            .expect("run cc (the Debian package gcc)");
        assert!(
            output.status.success(),
            "cc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bytes = std::fs::read(&elf).expect("read the fixture");
        (elf, bytes)
    })
}

fn options() -> OpenOptions {
    OpenOptions {
        source_root: Some(std::env::temp_dir()),
        require_debug_info: false,
    }
}

thread_local! {
    /// The undamaged fixture, opened once per thread (a `Symbolizer` is not `Sync`).
    static SYMBOLIZER: Symbolizer =
        Symbolizer::open_with(&image().0, &options()).expect("the fixture opens");
}

fn with_symbolizer<R>(each: impl FnOnce(&Symbolizer) -> R) -> R {
    SYMBOLIZER.with(each)
}

/// Addresses worth resolving in `symbolizer`: each function's start, middle and end, the text
/// boundaries, and a few outside.
fn addresses(symbolizer: &Symbolizer) -> Vec<u64> {
    let mut addresses = vec![0, 1, u64::MAX, 0xffff_ffff_8020_0000];
    for function in symbolizer.symbols().symbols().iter().take(64) {
        addresses.push(function.address);
        addresses.push(function.address.wrapping_add(function.size / 2));
        addresses.push(function.end());
    }
    for range in symbolizer.text_ranges().iter().take(8) {
        addresses.extend([range.start, range.end, range.end.wrapping_sub(1)]);
    }
    addresses
}

/// Real reports: the docs' example, and one whose backtrace lies in the fixture's functions.
fn log_corpus() -> Vec<Vec<u8>> {
    let docs = include_str!("../../docs/panic-report.md");
    let mut corpus: Vec<Vec<u8>> = docs
        .split("```")
        .map(|block| block.trim_start_matches('\n'))
        .filter(|block| block.starts_with("==== CADENZA PANIC REPORT"))
        .map(|block| block.as_bytes().to_vec())
        .collect();
    let functions: Vec<(String, u64, u64)> = with_symbolizer(|symbolizer| {
        symbolizer
            .symbols()
            .symbols()
            .iter()
            .filter(|f| matches!(f.name.as_str(), "main" | "sum_of_squares" | "report"))
            .map(|f| (f.name.clone(), f.address, f.size))
            .collect()
    });
    let mut log = String::from(
        "[    0.000000] Cadenza booting\n[    1.5] ==== CADENZA PANIC REPORT v1 ====\n\
         kind: exception\nmessage: page fault (#PF) at 0x0\\n\\x1b\nexception: #PF 14 page \
         fault\nerror_code: 0x2\ncpu: 0\nuptime_ns: 1043512\nregisters:\n  RIP=0x10 \
         RSP=0x20 CR2=0x0\nbacktrace:\n",
    );
    for (i, (name, address, size)) in functions.iter().enumerate() {
        log.push_str(&format!(
            "  #{i} {:#x} {name}+0x{:x}/0x{size:x}\n",
            address + size / 2,
            size / 2
        ));
        log.push_str(&format!("    [<{:x}>] {name}\r\n", address + 1));
    }
    log.push_str("==== END CADENZA PANIC REPORT ====\nafter the report");
    corpus.push(log.into_bytes());
    corpus.push(
        b"==== CADENZA PANIC REPORT v1 ====\nkind: panic\nmessage: boom\nlocation: \
          kernel/src/main.rs:10:5\ncpu: 0\nuptime_ns: 0\nregisters:\n  RSP=0x1\nbacktrace:\n\
          ==== END CADENZA PANIC REPORT ====\n"
            .to_vec(),
    );
    corpus
}

fn read_log(input: &[u8]) {
    let log = String::from_utf8_lossy(input);
    if let Ok(report) = PanicReport::find_in(&log) {
        let _ = report.register("RIP");
    }
    with_symbolizer(|symbolizer| {
        let mut annotator = Annotator::new(symbolizer, AnnotateOptions { context: 2 });
        for line in log.split('\n') {
            let _ = BacktraceLine::parse(line.trim_end_matches('\r'));
            let out = annotator.line(line);
            // The line itself comes first, whatever is added to it or after it.
            let content = line.strip_suffix('\r').unwrap_or(line);
            assert!(out[0].starts_with(content), "{line:?} became {:?}", out[0]);
        }
    });
}

#[test]
fn fuzz_panic_reports_and_annotation() {
    let report = Harness::new("panic-log", 20_000)
        .corpus(log_corpus())
        .dictionary(&[
            b"==== CADENZA PANIC REPORT v1 ====\n",
            b"==== END CADENZA PANIC REPORT ====\n",
            b"kind: exception\n",
            b"backtrace:\n",
            b"registers:\n",
            b"  #0 0x",
            b"[<",
            b">]",
            b"+0x",
            b"/0x",
            b"[    0.1] ",
            b"\r\n",
            b"RIP=0x",
        ])
        .max_len(16 * 1024)
        .run(read_log);
    assert!(report.iterations > 0);
}

/// Where in the fixture a structure-aware mutation may write: (offset, width) of every field
/// of the ELF header and the section headers, and the byte ranges of the symbol table, string
/// tables and DWARF sections.
struct Layout {
    fields: Vec<(usize, usize)>,
    sections: Vec<(usize, usize)>,
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let bytes = &image().1;
        let file = object::File::parse(&bytes[..]).expect("the fixture parses");
        let mut fields: Vec<(usize, usize)> = [
            (16, 2),
            (24, 8),
            (32, 8),
            (40, 8),
            (52, 2),
            (54, 2),
            (56, 2),
            (58, 2),
            (60, 2),
            (62, 2),
        ]
        .to_vec();
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes")) as usize;
        let shnum = u16::from_le_bytes([bytes[60], bytes[61]]) as usize;
        for index in 0..shnum {
            let at = shoff + index * 64;
            for (field, width) in [
                (0, 4),
                (4, 4),
                (8, 8),
                (16, 8),
                (24, 8),
                (32, 8),
                (40, 4),
                (44, 4),
                (48, 8),
                (56, 8),
            ] {
                fields.push((at + field, width));
            }
        }
        let sections = file
            .sections()
            .filter(|s| {
                s.name().is_ok_and(|name| {
                    name.starts_with(".debug")
                        || name.ends_with("symtab")
                        || name.ends_with("strtab")
                })
            })
            .filter_map(|s| s.file_range())
            .map(|(offset, size)| (offset as usize, size as usize))
            .filter(|&(_, size)| size > 0)
            .collect();
        Layout { fields, sections }
    })
}

/// One to four in-place changes: a header field set to an edge value, or bytes inside a
/// symbol table or DWARF section changed (a random byte, an edge value, a LEB128 that goes on).
fn mutate_image(rng: &mut Rng, input: &mut [u8]) {
    let layout = layout();
    for _ in 0..1 + rng.below(4) {
        let (at, width) = if rng.one_in(3) || layout.sections.is_empty() {
            *rng.pick(&layout.fields)
        } else {
            let (offset, size) = *rng.pick(&layout.sections);
            (offset + rng.below(size), 1 << rng.below(4))
        };
        let value = match rng.below(3) {
            0 => rng.edge_u64().to_le_bytes(),
            1 => [0x80 | rng.byte(); 8],
            _ => rng.next_u64().to_le_bytes(),
        };
        let end = (at + width).min(input.len());
        if at < end {
            input[at..end].copy_from_slice(&value[..end - at]);
        }
    }
}

/// Damaged images that still opened, to show how deep the mutations get.
static OPENED: AtomicU64 = AtomicU64::new(0);

fn open_damaged(input: &[u8]) {
    let path = std::env::temp_dir().join(format!(
        "cadenza-symbols-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, input).expect("write the damaged image");
    let opened = Symbolizer::open_with(&path, &options());
    if let Ok(symbolizer) = opened {
        OPENED.fetch_add(1, Ordering::Relaxed);
        for address in addresses(&symbolizer) {
            let _ = symbolizer.resolve(address);
            let _ = symbolizer.resolve_return_address(address);
            if let Some(offset) = symbolizer.symbol_offset(address) {
                let _ = symbolizer.parse_address(&offset.to_string());
            }
        }
        let _ = symbolizer.parse_address("main+0x4");
        let _ = symbolizer.symbol_by_name("sum_of_squares");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn fuzz_symbolizer_images() {
    let report = Harness::new("symbolizer-elf", 3_000)
        .corpus([image().1.clone()])
        .max_len(usize::MAX)
        .structure(|rng, input| mutate_image(rng, input))
        .structure_only()
        .run(open_damaged);
    eprintln!(
        "fuzz symbolizer-elf: {} of {} damaged images opened",
        OPENED.load(Ordering::Relaxed),
        report.iterations
    );
    assert!(report.iterations > 0);
}

/// The fixture is a real image: it opens, has DWARF, and its functions resolve to lines of the
/// program.
#[test]
fn the_symbolizer_fixture_resolves() {
    with_symbolizer(|symbolizer| {
        assert!(symbolizer.has_debug_info());
        let function = symbolizer
            .symbol_by_name("sum_of_squares")
            .expect("the fixture has sum_of_squares");
        let resolution = symbolizer.resolve(function.address).expect("resolves");
        assert!(resolution.to_string().contains("program-"), "{resolution}");
    });
    assert!(!layout().sections.is_empty());
}

/// The kallsyms blob the kernel embeds is read back by `kallsyms::decode` (the embedder checks
/// its own work with it): a damaged blob is an error, never a panic.
#[test]
fn fuzz_kallsyms_decode() {
    let blob = with_symbolizer(|symbolizer| symbols::kallsyms::encode(symbolizer.symbols()));
    let report = Harness::new("kallsyms", 20_000)
        .corpus([blob])
        .run(|input| {
            if let Ok(entries) = symbols::kallsyms::decode(input) {
                assert!(entries.len() <= input.len());
            }
        });
    assert!(report.iterations > 0);
}
