//! Annotating a console log as it streams: backtrace lines gain their source frames, everything
//! else passes through untouched.
//!
//! The annotator is fed one line at a time because its main use is live
//! (`qemu … | cadenza-symbols annotate`): a whole-log API would sit on the output until QEMU
//! exits, which for a hung kernel is never. It keeps only the little state that needs the lines
//! before: whether we are inside a panic report and of which kind, since that decides how frame
//! `#0` is read (docs/panic-report.md):
//!
//! - in a `kind: exception` report, `#0` is the faulting RIP itself: resolved exactly;
//! - every other frame is a return address: resolved at `address - 1`, so the line reported is
//!   the call, not whatever follows it (Linux's `%pB`, `decode_stacktrace.sh`);
//! - outside a report (other dumps, future leak reports) frames are taken as return addresses,
//!   `#0` included. Both readings of `#0` agree on the line unless the address starts a line; when
//!   they differ, misreading a return address as exact names the line *after* the call, which is
//!   the more misleading error, and only the exception report vouches for an exact `#0`.
//!
//! Lines that are not backtrace lines are returned exactly as given; a log is evidence and a tool
//! that "tidies" it cannot be trusted with it. Backtrace lines keep their text and gain
//! ` symbol+0xoff/0xsize` if the kernel did not print it, plus one line per source frame below.
//! An address that cannot be resolved gets a short note and never stops the stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::report::{BEGIN, END};
use crate::symbolizer::{AddressKind, Frame, Resolution, Symbolizer, SymbolsError};

/// How to annotate.
#[derive(Clone, Debug, Default)]
pub struct AnnotateOptions {
    /// Source lines shown before and after each resolved line (0: none). Read from the
    /// symbolizer's source root; a missing file just shows no context.
    pub context: usize,
}

/// A recognised backtrace line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacktraceLine<'a> {
    /// Characters before the frame marker (`#` or `[<`), console timestamp included: frames
    /// are indented relative to this.
    pub indent: usize,
    /// `N` of `#N`; `None` for `[<address>]` lines.
    pub index: Option<u32>,
    pub address: u64,
    /// Whatever follows the address (e.g. the kernel's own ` symbol+0xoff/0xsize`).
    pub rest: &'a str,
}

/// `[    0.005416] ` console timestamp, if present: (prefix, rest).
fn split_timestamp(line: &str) -> (&str, &str) {
    if let Some(inner) = line.strip_prefix('[')
        && let Some((stamp, _)) = inner.split_once("] ")
        && !stamp.trim().is_empty()
        && stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        let prefix_len = 1 + stamp.len() + 2;
        return line.split_at(prefix_len);
    }
    ("", line)
}

/// Splits `text` into the leading hex digits (1 to 16) and the rest.
fn take_hex(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_hexdigit).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let value = u64::from_str_radix(&text[..digits], 16).ok()?;
    Some((value, &text[digits..]))
}

impl<'a> BacktraceLine<'a> {
    /// Recognises `  #3 0xffffffff8020c792[ rest]` and `    [<ffffffff8020c792>][ rest]`, with
    /// or without a console timestamp in front. `line` must not contain the line terminator.
    pub fn parse(line: &'a str) -> Option<Self> {
        let (stamp, body) = split_timestamp(line);
        let marker = body.trim_start();
        let indent = stamp.chars().count() + (body.len() - marker.len());
        let (index, address, rest) = if let Some(after_hash) = marker.strip_prefix('#') {
            let digits = after_hash.bytes().take_while(u8::is_ascii_digit).count();
            let index: u32 = after_hash[..digits].parse().ok()?;
            let after_index = &after_hash[digits..];
            let spaced = after_index.trim_start();
            if spaced.len() == after_index.len() {
                return None;
            }
            let (address, rest) = take_hex(spaced.strip_prefix("0x")?)?;
            (Some(index), address, rest)
        } else {
            let (address, rest) = take_hex(marker.strip_prefix("[<")?)?;
            (None, address, rest.strip_prefix(">]")?)
        };
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return None;
        }
        Some(Self {
            indent,
            index,
            address,
            rest,
        })
    }

    /// The kernel's own `symbol+0xoff/0xsize` at the end of the line, as (offset, size).
    fn printed_symbol(&self) -> Option<(u64, u64)> {
        let text = self.rest.trim_end();
        let (_, tail) = text.rsplit_once("+0x")?;
        let (offset, size) = tail.split_once("/0x")?;
        let offset = u64::from_str_radix(offset, 16).ok()?;
        let size = u64::from_str_radix(size, 16).ok()?;
        Some((offset, size))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReportState {
    Outside,
    /// Inside a report whose `kind:` line said `exception` (true) or not (yet).
    Inside {
        exception: bool,
    },
}

/// Annotates a log fed line by line. Keep one per stream: it remembers whether it is inside a
/// panic report.
pub struct Annotator<'s> {
    symbolizer: &'s Symbolizer,
    options: AnnotateOptions,
    state: ReportState,
    /// Source file -> its lines (`None`: unreadable, don't retry).
    sources: HashMap<PathBuf, Option<Arc<Vec<String>>>>,
}

impl<'s> Annotator<'s> {
    pub fn new(symbolizer: &'s Symbolizer, options: AnnotateOptions) -> Self {
        Self {
            symbolizer,
            options,
            state: ReportState::Outside,
            sources: HashMap::new(),
        }
    }

    /// Annotates one line (without its `\n`; a trailing `\r` is kept on every output line).
    /// Returns the output lines: the input line itself first (unchanged unless it is a backtrace
    /// line), then any added lines.
    pub fn line(&mut self, line: &str) -> Vec<String> {
        let (content, cr) = match line.strip_suffix('\r') {
            Some(content) => (content, "\r"),
            None => (line, ""),
        };
        self.track_report(content);
        let Some(frame) = BacktraceLine::parse(content) else {
            return vec![line.to_owned()];
        };
        let kind = match (self.state, frame.index) {
            (ReportState::Inside { exception: true }, Some(0)) => AddressKind::Exact,
            _ => AddressKind::ReturnAddress,
        };
        let mut first = content.to_owned();
        let mut added = Vec::new();
        match self.symbolizer.resolve_as(frame.address, kind) {
            Ok(resolution) => {
                self.describe(&frame, &resolution, &mut first, &mut added);
            }
            Err(SymbolsError::AddressOutsideImage { .. }) => {
                first.push_str(" (not in kernel image)");
            }
            Err(error) => {
                first.push_str(&format!(" (cannot resolve: {error})"));
            }
        }
        std::iter::once(first)
            .chain(added)
            .map(|mut text| {
                text.push_str(cr);
                text
            })
            .collect()
    }

    /// Annotates a whole log; line terminators (`\n`, `\r\n`, none at the end) are preserved.
    pub fn annotate_str(&mut self, log: &str) -> String {
        let mut out = String::with_capacity(log.len());
        for chunk in log.split_inclusive('\n') {
            let (line, newline) = match chunk.strip_suffix('\n') {
                Some(line) => (line, true),
                None => (chunk, false),
            };
            let lines = self.line(line);
            let count = lines.len();
            for (i, text) in lines.into_iter().enumerate() {
                out.push_str(&text);
                if newline || i + 1 < count {
                    out.push('\n');
                }
            }
        }
        out
    }

    fn track_report(&mut self, line: &str) {
        let text = split_timestamp(line).1.trim();
        self.state = match self.state {
            _ if text == BEGIN => ReportState::Inside { exception: false },
            ReportState::Inside { .. } if text == END || text.is_empty() => ReportState::Outside,
            ReportState::Inside { .. } if text.starts_with("kind:") => ReportState::Inside {
                exception: text.trim_start_matches("kind:").trim() == "exception",
            },
            state => state,
        };
    }

    fn describe(
        &mut self,
        frame: &BacktraceLine<'_>,
        resolution: &Resolution,
        first: &mut String,
        added: &mut Vec<String>,
    ) {
        match (&resolution.symbol, frame.printed_symbol()) {
            (Some(ours), Some(printed)) if printed != (ours.offset, ours.size) => {
                first.push_str(&format!(
                    " (image has {ours}: wrong kernel image for this log?)"
                ));
            }
            (Some(_), Some(_)) => {}
            (Some(ours), None) => first.push_str(&format!(" {ours}")),
            (None, Some(_)) => {
                first.push_str(" (image has no symbol here: wrong kernel image for this log?)");
            }
            (None, None) if resolution.frames.is_empty() => {
                first.push_str(" (no symbol or debug info)");
            }
            (None, None) => {}
        }
        let indent = " ".repeat(frame.indent + 4);
        for source_frame in &resolution.frames {
            added.push(format!("{indent}{source_frame}"));
            if self.options.context > 0 {
                self.add_context(source_frame, &indent, added);
            }
        }
    }

    fn add_context(&mut self, frame: &Frame, indent: &str, added: &mut Vec<String>) {
        let (Some(file), Some(line)) = (&frame.file, frame.line) else {
            return;
        };
        let Some(lines) = self.source(file) else {
            return;
        };
        let line = line as usize;
        if line == 0 || line > lines.len() {
            return;
        }
        let first = line.saturating_sub(self.options.context).max(1);
        let last = (line + self.options.context).min(lines.len());
        let width = last.to_string().len();
        for number in first..=last {
            let marker = if number == line { '>' } else { ' ' };
            let text = lines[number - 1].trim_end();
            let separator = if text.is_empty() { "|" } else { "| " };
            added.push(format!(
                "{indent}  {marker} {number:>width$} {separator}{text}"
            ));
        }
    }

    fn source(&mut self, file: &str) -> Option<Arc<Vec<String>>> {
        let path = match self.symbolizer.source_root() {
            Some(root) => root.join(file),
            None => PathBuf::from(file),
        };
        self.sources
            .entry(path)
            .or_insert_with_key(|path| {
                let text = std::fs::read(path).ok()?;
                let text = String::from_utf8_lossy(&text);
                Some(Arc::new(text.lines().map(str::to_owned).collect()))
            })
            .clone()
    }
}

/// Annotates a whole log with a fresh [`Annotator`].
pub fn annotate_str(symbolizer: &Symbolizer, options: AnnotateOptions, log: &str) -> String {
    Annotator::new(symbolizer, options).annotate_str(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_backtrace_lines() {
        let line = BacktraceLine::parse("  #3 0xffffffff8020c792").expect("report frame");
        assert_eq!(
            (line.indent, line.index, line.address, line.rest),
            (2, Some(3), 0xffff_ffff_8020_c792, "")
        );
        let line = BacktraceLine::parse("[    0.005416]   #12 0xffffffff8020c792 foo+0x1/0x2")
            .expect("timestamped frame");
        assert_eq!((line.indent, line.index), (17, Some(12)));
        assert_eq!(line.printed_symbol(), Some((1, 2)));
        let line = BacktraceLine::parse("    [<ffffffff8020c792>] <a as b>::c+0x22/0x30")
            .expect("kmemleak frame");
        assert_eq!((line.indent, line.index), (4, None));
        assert_eq!(line.printed_symbol(), Some((0x22, 0x30)));

        for not_a_frame in [
            "#3",
            "  #3 ffffffff8020c792",
            "  #3 0x",
            "  #x 0x10",
            "  #30x10",
            "  #3 0x10abcz",
            "  #3 0x11111111111111111",
            "[<ffff>",
            "[ 1.0] hello #3 0x10",
            "RIP=0xffffffff80214204",
        ] {
            assert_eq!(BacktraceLine::parse(not_a_frame), None, "{not_a_frame:?}");
        }
    }

    #[test]
    fn splits_console_timestamps() {
        assert_eq!(split_timestamp("[    0.1] x"), ("[    0.1] ", "x"));
        assert_eq!(split_timestamp("[<ffff>] x"), ("", "[<ffff>] x"));
        assert_eq!(split_timestamp("[] x"), ("", "[] x"));
    }
}
