//! Fuzzing the telemetry decoder (`telemetry::Snapshot::parse`, docs/fuzzing.md) with
//! garbled, truncated and reordered snapshots. No QEMU is involved: this binary only parses.
//!
//! Properties: no input panics or loops; a snapshot that parses prints (`Display`) to text
//! that parses back to the same snapshot; `check_consistency` never panics.

use std::sync::atomic::{AtomicU64, Ordering};

use cadenza_fuzz::{Harness, LimitedAllocator, Rng};
use cadenza_qemu::telemetry::Snapshot;

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator::new(64 << 20);

/// Real kernel snapshots: the examples in docs/telemetry.md and the ones the unit tests use.
pub fn telemetry_corpus() -> Vec<Vec<u8>> {
    let docs = include_str!("../../docs/telemetry.md");
    let mut corpus: Vec<Vec<u8>> = docs
        .split("```")
        .map(|block| block.trim_start_matches('\n'))
        .filter(|block| block.starts_with("telemetry-begin") && !block.contains("..."))
        .map(|block| block.as_bytes().to_vec())
        .collect();
    corpus.push(
        b"noise before\ntelemetry-begin version=1 seq=1\nuptime ns=1 jiffies=0 hz=100\n\
          telemetry-end seq=1 records=1\n"
            .to_vec(),
    );
    corpus.push(b"telemetry-error message=\"unknown request \\\"x\\\"\"\n".to_vec());
    corpus
}

/// Line-level changes a kernel or a lossy line could make: a line lost, doubled or moved, a
/// value replaced by an edge number, and the end marker's `records` recounted so the parser
/// gets past that check.
pub fn garble_lines(rng: &mut Rng, input: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(input).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return;
    }
    let at = rng.below(lines.len());
    match rng.below(5) {
        0 => {
            lines.remove(at);
        }
        1 => {
            let copy = lines[at].clone();
            lines.insert(rng.below(lines.len() + 1), copy);
        }
        2 => {
            let other = rng.below(lines.len());
            lines.swap(at, other);
        }
        _ => {
            // One `key=value` gets an edge value, in decimal or hex.
            let line = &lines[at];
            let equals: Vec<usize> = line.match_indices('=').map(|(i, _)| i).collect();
            if let Some(&eq) = equals.get(rng.below(equals.len().max(1))) {
                let end = line[eq + 1..].find(' ').map_or(line.len(), |i| eq + 1 + i);
                let value = rng.edge_u64();
                let text = if rng.one_in(2) {
                    format!("{value:#x}")
                } else {
                    value.to_string()
                };
                lines[at].replace_range(eq + 1..end, &text);
            }
        }
    }
    if let (Some(begin), Some(end)) = (
        lines.iter().position(|l| l.starts_with("telemetry-begin")),
        lines.iter().rposition(|l| l.starts_with("telemetry-end")),
    ) && begin < end
    {
        let count = end - begin - 1;
        if let Some(at) = lines[end].find("records=") {
            lines[end].replace_range(at.., &format!("records={count}"));
        }
    }
    *input = lines.join("\n").into_bytes();
    input.push(b'\n');
}

/// Inputs that parsed, to show how deep the mutations get.
static PARSED: AtomicU64 = AtomicU64::new(0);

fn decode(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let Ok(snapshot) = Snapshot::parse(&text) else {
        return;
    };
    PARSED.fetch_add(1, Ordering::Relaxed);
    let _ = snapshot.check_consistency();
    let printed = snapshot.to_text();
    let reparsed = Snapshot::parse(&printed)
        .unwrap_or_else(|error| panic!("printed snapshot does not parse: {error}\n{printed}"));
    assert_eq!(reparsed, snapshot, "printed:\n{printed}");
}

#[test]
fn fuzz_telemetry_decoder() {
    let report = Harness::new("telemetry", 20_000)
        .corpus(telemetry_corpus())
        .dictionary(&[
            b"telemetry-begin version=1 seq=1\n",
            b"telemetry-end seq=1 records=",
            b"\n",
            b" ",
            b"=",
            b"\"",
            b"\\x",
            b"\\",
            b"0x",
            b"count=",
            b"ret0=",
            b"sym0=\"?\"",
            b"\r\n",
        ])
        .structure(garble_lines)
        .run(decode);
    eprintln!(
        "fuzz telemetry: {} of {} inputs parsed as snapshots",
        PARSED.load(Ordering::Relaxed),
        report.iterations
    );
    assert!(report.iterations > 0);
}

/// The corpus is real: every docs example parses.
#[test]
fn the_telemetry_corpus_parses() {
    let corpus = telemetry_corpus();
    assert!(corpus.len() >= 3);
    for input in corpus
        .iter()
        .filter(|input| input.starts_with(b"telemetry-begin"))
    {
        let text = String::from_utf8_lossy(input);
        Snapshot::parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    }
}
