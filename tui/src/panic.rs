//! Turning a panic report from the console into what the panic pane shows: each backtrace
//! address with its function, every inlined frame, `file:line` and a few lines of source.
//!
//! The work is done once, when the report's end marker arrives, and the result is plain data
//! (`PanicAnalysis`): rendering never touches the symbolizer or the disk, the post-mortem view
//! and the saved report show exactly the same thing, and the pane can be tested with hand-made
//! analyses. Addresses are read as `cadenza-symbols annotate` reads them (docs/symbols.md): in
//! an exception report `#0` is the faulting RIP, every other frame a return address.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::symbols::report::{BEGIN, END};
use ::symbols::{AddressKind, PanicKind, PanicReport, Symbolizer, SymbolsError};

/// Source lines shown before and after a frame's line.
pub const CONTEXT_LINES: usize = 2;

/// One source line around a frame's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub number: u32,
    pub text: String,
    /// The frame's own line.
    pub current: bool,
}

/// One source frame of an address: a function and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFrame {
    pub function: String,
    /// `file:line:column` (relative to the workspace for kernel sources).
    pub location: String,
    pub inlined: bool,
    pub context: Vec<SourceLine>,
}

/// One backtrace entry of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacktraceEntry {
    pub index: usize,
    pub address: u64,
    /// True for the faulting RIP of an exception (`#0`), false for return addresses.
    pub exact: bool,
    /// `symbol+0xoff/0xsize` from the ELF.
    pub symbol: Option<String>,
    /// Innermost first; empty when the address has no debug info.
    pub frames: Vec<SourceFrame>,
    /// Why there are no frames (outside the image, no DWARF, …).
    pub note: Option<String>,
}

/// The symbolized report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicAnalysis {
    pub report: PanicReport,
    /// The report's lines as printed, markers included.
    pub raw: String,
    pub backtrace: Vec<BacktraceEntry>,
    /// Set when there was no symbolizer (the entries then have only addresses).
    pub symbols_note: Option<String>,
}

impl PanicAnalysis {
    /// The innermost kernel source location of the backtrace, `file:line` (what a reader wants
    /// first), falling back to the report's own `location:`.
    pub fn headline_location(&self) -> Option<String> {
        self.backtrace
            .iter()
            .flat_map(|e| e.frames.iter())
            .find(|f| f.location.starts_with("kernel/"))
            .map(|f| f.location.clone())
            .or_else(|| {
                self.report
                    .location
                    .as_ref()
                    .map(|l| format!("{}:{}:{}", l.file, l.line, l.column))
            })
    }
}

/// The text of the first complete panic report in `log` (from its start marker to its end
/// marker), or `None` while there is none or it is still arriving.
pub fn complete_report(log: &str) -> Option<&str> {
    let start = log.find(BEGIN)?;
    let end = start + log[start..].find(END)? + END.len();
    Some(&log[start..end])
}

/// Reads source files once per analysis.
struct Sources {
    root: Option<PathBuf>,
    files: HashMap<String, Option<Vec<String>>>,
}

impl Sources {
    fn context(&mut self, file: &str, line: u32) -> Vec<SourceLine> {
        let root = self.root.clone();
        let lines = self.files.entry(file.to_string()).or_insert_with(|| {
            let path = match &root {
                Some(root) if Path::new(file).is_relative() => root.join(file),
                _ => PathBuf::from(file),
            };
            let bytes = std::fs::read(path).ok()?;
            Some(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| l.trim_end().replace('\t', "    "))
                    .collect(),
            )
        });
        let Some(lines) = lines else {
            return Vec::new();
        };
        let line = line as usize;
        if line == 0 || line > lines.len() {
            return Vec::new();
        }
        let first = line.saturating_sub(CONTEXT_LINES).max(1);
        let last = (line + CONTEXT_LINES).min(lines.len());
        (first..=last)
            .map(|n| SourceLine {
                number: u32::try_from(n).unwrap_or(u32::MAX),
                text: lines[n - 1].clone(),
                current: n == line,
            })
            .collect()
    }
}

/// Parses and symbolizes the report in `report_text` (see [`complete_report`]).
pub fn analyze(
    report_text: &str,
    symbolizer: Option<&Symbolizer>,
    symbols_note: Option<String>,
) -> Result<PanicAnalysis, ::symbols::ReportError> {
    let report = PanicReport::find_in(report_text)?;
    let mut sources = Sources {
        root: symbolizer.and_then(|s| s.source_root().map(Path::to_path_buf)),
        files: HashMap::new(),
    };
    let backtrace = report
        .backtrace
        .iter()
        .enumerate()
        .map(|(index, &address)| {
            let exact = index == 0 && report.kind == PanicKind::Exception;
            let mut entry = BacktraceEntry {
                index,
                address,
                exact,
                symbol: None,
                frames: Vec::new(),
                note: None,
            };
            let Some(symbolizer) = symbolizer else {
                entry.note = Some("not symbolized".into());
                return entry;
            };
            let kind = if exact {
                AddressKind::Exact
            } else {
                AddressKind::ReturnAddress
            };
            match symbolizer.resolve_as(address, kind) {
                Ok(resolution) => {
                    entry.symbol = resolution.symbol.as_ref().map(ToString::to_string);
                    if resolution.frames.is_empty() {
                        entry.note = Some("no debug info".into());
                    }
                    entry.frames = resolution
                        .frames
                        .iter()
                        .map(|frame| SourceFrame {
                            function: frame.function.as_deref().unwrap_or("??").to_string(),
                            location: frame.location(),
                            inlined: frame.inlined,
                            context: match (&frame.file, frame.line) {
                                (Some(file), Some(line)) => sources.context(file, line),
                                _ => Vec::new(),
                            },
                        })
                        .collect();
                }
                Err(SymbolsError::AddressOutsideImage { .. }) => {
                    entry.note = Some("not in the kernel image".into());
                }
                Err(error) => entry.note = Some(format!("cannot resolve: {error}")),
            }
            entry
        })
        .collect();
    Ok(PanicAnalysis {
        report,
        raw: report_text.to_string(),
        backtrace,
        symbols_note,
    })
}

/// The analysis as plain text, for saved reports: the report's header lines, then each frame
/// with its source lines (the layout of `cadenza-symbols annotate --context 2`).
pub fn to_text(analysis: &PanicAnalysis) -> String {
    let mut out = String::new();
    for line in analysis.raw.lines() {
        if line.trim_start().starts_with("backtrace:") {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("backtrace (symbolized):\n");
    if let Some(note) = &analysis.symbols_note {
        out.push_str(&format!("  ({note})\n"));
    }
    for entry in &analysis.backtrace {
        out.push_str(&format!(
            "  #{} {:#018x} {}",
            entry.index,
            entry.address,
            entry.symbol.as_deref().unwrap_or("?")
        ));
        if let Some(note) = &entry.note {
            out.push_str(&format!(" ({note})"));
        }
        out.push('\n');
        for frame in &entry.frames {
            let inlined = if frame.inlined { " [inlined]" } else { "" };
            out.push_str(&format!(
                "      {} at {}{inlined}\n",
                frame.function, frame.location
            ));
            for line in &frame.context {
                let marker = if line.current { '>' } else { ' ' };
                out.push_str(&format!(
                    "        {marker} {:>5} | {}\n",
                    line.number, line.text
                ));
            }
        }
    }
    out.push_str(END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
==== CADENZA PANIC REPORT v1 ====
kind: panic
message: panic_test: deliberate
location: kernel/src/debug/crash.rs:39:5
cpu: 0
uptime_ns: 5
registers:
  RSP=0x10 RBP=0x20
backtrace:
  #0 0xffffffff80218454 kernel::debug::crash::panic_test+0x14/0xb1
  #1 0x10
==== END CADENZA PANIC REPORT ====";

    #[test]
    fn finds_only_complete_reports() {
        let log = format!("boot\r\n{REPORT}\r\nafter");
        assert_eq!(complete_report(&log), Some(REPORT));
        assert_eq!(complete_report(&log[..log.len() - 40]), None);
        assert_eq!(complete_report("no report"), None);
    }

    #[test]
    fn without_symbols_keeps_addresses_and_the_location() {
        let analysis = analyze(REPORT, None, Some("no kernel ELF".into())).expect("parses");
        assert_eq!(analysis.backtrace.len(), 2);
        assert_eq!(analysis.backtrace[1].address, 0x10);
        assert_eq!(
            analysis.headline_location().as_deref(),
            Some("kernel/src/debug/crash.rs:39:5")
        );
        let text = to_text(&analysis);
        assert!(text.contains("message: panic_test: deliberate"), "{text}");
        assert!(
            text.contains("#1 0x0000000000000010 ? (not symbolized)"),
            "{text}"
        );
        assert!(text.ends_with("==== END CADENZA PANIC REPORT ====\n"));
    }

    #[test]
    fn reads_source_context_around_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        std::fs::write(dir.path().join("f.rs"), body).unwrap();
        let mut sources = Sources {
            root: Some(dir.path().to_path_buf()),
            files: HashMap::new(),
        };
        let context = sources.context("f.rs", 1);
        assert_eq!(context.len(), 3);
        assert!(context[0].current && context[0].text == "line 1");
        let context = sources.context("f.rs", 10);
        assert_eq!(
            context.iter().map(|l| l.number).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        assert!(sources.context("f.rs", 11).is_empty());
        assert!(sources.context("missing.rs", 1).is_empty());
    }
}
