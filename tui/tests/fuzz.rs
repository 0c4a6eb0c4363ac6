//! Fuzzing what the TUI does with the kernel's telemetry (docs/fuzzing.md): garbled snapshots
//! and raw answers go through `Snapshot::parse`, the TUI's extra task columns
//! (`extra_columns`), its mark baseline and deltas, and every pane is drawn from the
//! result — with the snapshot text also arriving on the console, where the TUI looks for
//! panics.
//!
//! Property: nothing panics, whatever the kernel (or a garbled line) sends.

use std::time::Duration;

use cadenza_fuzz::{Harness, LimitedAllocator, Rng};
use cadenza_qemu::telemetry::Snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::app::Tab;
use tui::telemetry::{Answered, MarkBaseline, TelemetryEvent, extra_columns};
use tui::{App, panes};

#[global_allocator]
static ALLOCATOR: LimitedAllocator = LimitedAllocator::new(64 << 20);

fn corpus() -> Vec<Vec<u8>> {
    let docs = include_str!("../../docs/telemetry.md");
    docs.split("```")
        .map(|block| block.trim_start_matches('\n'))
        .filter(|block| block.starts_with("telemetry-begin") && !block.contains("..."))
        .map(|block| block.as_bytes().to_vec())
        .collect()
}

/// Swaps, doubles or drops a line, or gives a field an edge value; recounts `records`.
fn garble(rng: &mut Rng, input: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(input).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return;
    }
    let at = rng.below(lines.len());
    match rng.below(4) {
        0 => {
            lines.remove(at);
        }
        1 => {
            let copy = lines[at].clone();
            lines.insert(rng.below(lines.len() + 1), copy);
        }
        _ => {
            let line = &lines[at];
            let equals: Vec<usize> = line.match_indices('=').map(|(i, _)| i).collect();
            if let Some(&eq) = equals.get(rng.below(equals.len().max(1))) {
                let end = line[eq + 1..].find(' ').map_or(line.len(), |i| eq + 1 + i);
                let value = rng.edge_u64().to_string();
                lines[at].replace_range(eq + 1..end, &value);
            }
        }
    }
    if let (Some(begin), Some(end)) = (
        lines.iter().position(|l| l.starts_with("telemetry-begin")),
        lines.iter().rposition(|l| l.starts_with("telemetry-end")),
    ) && begin < end
        && let Some(at) = lines[end].find("records=")
    {
        let count = end - begin - 1;
        lines[end].replace_range(at.., &format!("records={count}"));
    }
    *input = lines.join("\n").into_bytes();
}

fn show(input: &[u8]) {
    let raw = String::from_utf8_lossy(input).into_owned();
    let mut app = App::new();
    app.on_qemu_started(4242);
    app.on_console(input);
    if let Ok(snapshot) = Snapshot::parse(&raw) {
        let _ = extra_columns(&snapshot.tasks);
        let mark = MarkBaseline::from_snapshot(&snapshot, true);
        let _ = mark.delta(&snapshot);
        for site in &snapshot.sites {
            let _ = mark.site_delta(site.id, site.bytes);
        }
        for (i, answered) in [Answered::Mark, Answered::Poll, Answered::Scan]
            .into_iter()
            .enumerate()
        {
            app.now = Duration::from_millis(1000 + 400 * i as u64);
            app.on_telemetry(TelemetryEvent::Snapshot {
                snapshot: Box::new(snapshot.clone()),
                raw: raw.clone(),
                answered,
            });
        }
    } else {
        app.on_telemetry(TelemetryEvent::Error(raw.chars().take(200).collect()));
    }
    let Ok(mut terminal) = Terminal::new(TestBackend::new(100, 30));
    for tab in Tab::ALL {
        app.tab = tab;
        let _ = terminal.draw(|frame| panes::draw(frame, &mut app));
    }
}

#[test]
fn fuzz_tui_telemetry() {
    let report = Harness::new("tui-telemetry", 1_500)
        .corpus(corpus())
        .dictionary(&[
            b"\n",
            b" ",
            b"=",
            b"\"",
            b"\\x",
            b"task pid=",
            b"0x",
            b"\x1b[",
            b"\r",
        ])
        .max_len(8 * 1024)
        .structure(garble)
        .run(show);
    assert!(report.iterations > 0);
}

/// A size class whose live blocks times block size overflows 64 bits: the memory pane's
/// internal-fragmentation column overflowed. Found by `fuzz_tui_telemetry`.
#[test]
fn a_class_with_overflowing_live_bytes_is_drawn() {
    let sample = String::from_utf8(corpus().remove(0)).expect("docs are UTF-8");
    let from = "class size=128 frames=1 live=2 ";
    assert!(sample.contains(from));
    let garbled = sample.replacen(
        from,
        "class size=128 frames=1 live=18446744073709551615 ",
        1,
    );
    assert!(Snapshot::parse(&garbled).is_ok());
    show(garbled.as_bytes());
}
