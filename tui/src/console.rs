//! The guest's serial console as a terminal: every byte goes through a `vt100` parser, so
//! whatever the guest draws (colours, cursor movement, `\r` progress lines) looks as it would in
//! a real terminal, and the raw bytes are kept too.
//!
//! Why both: the parser owns what is *shown* (with scrollback), while the raw log is the
//! evidence — saved verbatim in reports, scanned for panic reports and telemetry announcements,
//! and replayed into a fresh parser when the pane changes size, so a resize re-wraps the whole
//! history instead of leaving it cut at the old width.
//!
//! Scrolling is `vt100`'s scrollback offset (rows above the live screen). While the user is
//! scrolled back, new output grows the offset by as many rows as scrolled off the top, so the
//! rows being read stay put. Search works on the rows of the emulated terminal (scrollback
//! plus screen), which are exactly what is displayed.

use std::num::NonZeroU16;

/// Rows of scrollback kept by the emulator (the raw log keeps everything).
pub const SCROLLBACK_ROWS: usize = 20_000;

/// A search match: absolute row (0 = oldest scrollback row) and the columns it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub row: usize,
    pub col: u16,
    pub len: u16,
}

/// Search state: the query and where its matches are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    pub matches: Vec<Match>,
    /// Index into `matches` of the one in view.
    pub current: usize,
}

pub struct ConsoleView {
    parser: vt100::Parser,
    /// Every byte the guest wrote, as received.
    raw: Vec<u8>,
    /// The raw log decoded as UTF-8 (lossily), for scanning and reports.
    text: String,
    /// Rows scrolled back from the live screen (0: following the output).
    scroll: usize,
    pub search: Option<Search>,
}

impl std::fmt::Debug for ConsoleView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleView")
            .field("bytes", &self.raw.len())
            .field("size", &self.size())
            .field("scroll", &self.scroll)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleView {
    fn default() -> Self {
        Self::new(24, 80)
    }
}

fn nonzero(value: u16) -> NonZeroU16 {
    NonZeroU16::new(value).unwrap_or(NonZeroU16::MIN)
}

impl ConsoleView {
    pub fn new(rows: u16, cols: u16) -> Self {
        Self {
            parser: vt100::Parser::new(nonzero(rows), nonzero(cols), SCROLLBACK_ROWS),
            raw: Vec::new(),
            text: String::new(),
            scroll: 0,
            search: None,
        }
    }

    /// Feeds guest output.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let before = self.parser.screen().scrollback_len();
        let was_full = before == SCROLLBACK_ROWS;
        self.parser.process(bytes);
        self.raw.extend_from_slice(bytes);
        self.text.push_str(&String::from_utf8_lossy(bytes));
        if self.scroll > 0 {
            // Keep the rows being read in view: they moved up by the rows that scrolled off.
            let after = self.parser.screen().scrollback_len();
            let grown = if was_full {
                // A full scrollback drops its oldest rows; count the rows added by the newlines.
                bytes.iter().filter(|&&b| b == b'\n').count()
            } else {
                after - before
            };
            self.scroll = (self.scroll + grown).min(after);
        }
        if let Some(search) = self.search.take() {
            // Rows moved; recompute where the matches are (cheap next to a redraw).
            let query = search.query;
            let current = search.current;
            self.search = Some(self.find(&query));
            if let Some(s) = &mut self.search {
                s.current = current.min(s.matches.len().saturating_sub(1));
            }
        }
    }

    /// The console so far, decoded as UTF-8 (invalid bytes replaced).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The console so far, byte for byte.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (rows.get(), cols.get())
    }

    /// Makes the emulated terminal `rows` x `cols`, replaying the whole log so that history is
    /// re-wrapped at the new width. A no-op when the size is unchanged.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let (rows, cols) = (rows.max(1), cols.max(1));
        if self.size() == (rows, cols) {
            return;
        }
        self.parser = vt100::Parser::new(nonzero(rows), nonzero(cols), SCROLLBACK_ROWS);
        self.parser.process(&self.raw);
        self.scroll = 0;
        if let Some(search) = self.search.take() {
            self.search = Some(self.find(&search.query));
        }
    }

    /// Rows scrolled back (0: following the live output).
    pub fn scroll(&self) -> usize {
        self.scroll
    }

    pub fn scrollback_len(&self) -> usize {
        self.parser.screen().scrollback_len()
    }

    pub fn is_following(&self) -> bool {
        self.scroll == 0
    }

    /// Scrolls back (positive) or forward (negative) by `rows`.
    pub fn scroll_by(&mut self, rows: isize) {
        let max = self.scrollback_len();
        self.scroll = self.scroll.saturating_add_signed(rows).min(max);
    }

    pub fn scroll_to_top(&mut self) {
        self.scroll = self.scrollback_len();
    }

    pub fn follow(&mut self) {
        self.scroll = 0;
    }

    /// The screen as displayed at the current scroll position. `vt100` answers relative to its
    /// own scrollback setting, so it is set here, just before reading.
    pub fn screen_at_scroll(&mut self) -> &vt100::Screen {
        self.parser.screen_mut().set_scrollback(self.scroll);
        self.parser.screen()
    }

    /// The absolute row (0 = oldest) shown at the top of the pane.
    pub fn top_row(&self) -> usize {
        self.scrollback_len() - self.scroll.min(self.scrollback_len())
    }

    /// Every row of the terminal, oldest scrollback row first, as plain text.
    pub fn all_rows(&mut self) -> Vec<String> {
        let (rows, cols) = self.size();
        let rows = usize::from(rows);
        let total = self.scrollback_len();
        let mut out: Vec<String> = Vec::with_capacity(total + rows);
        let mut offset = total;
        loop {
            self.parser.screen_mut().set_scrollback(offset);
            let top = total - offset;
            for (i, row) in self.parser.screen().rows(0, cols).enumerate() {
                if top + i == out.len() {
                    out.push(row);
                }
            }
            if offset == 0 {
                break;
            }
            offset = offset.saturating_sub(rows);
        }
        self.parser.screen_mut().set_scrollback(self.scroll);
        out
    }

    /// Finds `query` (case-insensitive) in every row.
    pub fn find(&mut self, query: &str) -> Search {
        let mut matches = Vec::new();
        let needle = query.to_lowercase();
        if !needle.is_empty() {
            for (row, text) in self.all_rows().iter().enumerate() {
                for (col, len) in find_in_row(text, &needle) {
                    matches.push(Match { row, col, len });
                }
            }
        }
        Search {
            query: query.to_string(),
            matches,
            current: 0,
        }
    }

    /// Starts a search and shows the last match before the live screen's bottom (the newest).
    pub fn search(&mut self, query: &str) -> usize {
        let mut search = self.find(query);
        search.current = search.matches.len().saturating_sub(1);
        let count = search.matches.len();
        self.search = Some(search);
        self.show_current_match();
        count
    }

    /// Moves to the next (`forward`) or previous match, wrapping around.
    pub fn next_match(&mut self, forward: bool) {
        if let Some(search) = &mut self.search {
            let count = search.matches.len();
            if count == 0 {
                return;
            }
            search.current = if forward {
                (search.current + 1) % count
            } else {
                (search.current + count - 1) % count
            };
        }
        self.show_current_match();
    }

    fn show_current_match(&mut self) {
        let Some(row) = self
            .search
            .as_ref()
            .and_then(|s| s.matches.get(s.current))
            .map(|m| m.row)
        else {
            return;
        };
        let rows = usize::from(self.size().0);
        let total = self.scrollback_len();
        // Put the match in the middle of the pane where possible.
        let top = row.saturating_sub(rows / 2);
        self.scroll = total.saturating_sub(top).min(total);
    }

    pub fn clear_search(&mut self) {
        self.search = None;
    }
}

/// Case-insensitive occurrences of `needle` (already lowercase) in `row`, as (column, length)
/// in characters. Rows of the emulator hold one character per column for the ASCII the kernel
/// prints; wide characters only shift highlights, never hide a match.
pub fn find_in_row(row: &str, needle: &str) -> Vec<(u16, u16)> {
    let chars: Vec<char> = row.chars().flat_map(char::to_lowercase).collect();
    let needle: Vec<char> = needle.chars().collect();
    let mut found = Vec::new();
    if needle.is_empty() || chars.len() < needle.len() {
        return found;
    }
    let mut i = 0;
    while i + needle.len() <= chars.len() {
        if chars[i..i + needle.len()] == needle[..] {
            let col = u16::try_from(i).unwrap_or(u16::MAX);
            let len = u16::try_from(needle.len()).unwrap_or(u16::MAX);
            found.push((col, len));
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("line {i}\r\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn keeps_raw_bytes_and_emulates_the_screen() {
        let mut console = ConsoleView::new(4, 20);
        console.push(b"hello\r\nwor");
        console.push(b"ld\x1b[31m red\x1b[0m\r\n");
        assert_eq!(console.text(), "hello\r\nworld\x1b[31m red\x1b[0m\r\n");
        let rows = console.all_rows();
        assert_eq!(rows[0], "hello");
        assert_eq!(rows[1], "world red");
    }

    #[test]
    fn scrolling_back_stays_put_while_output_arrives() {
        let mut console = ConsoleView::new(5, 20);
        console.push(&lines(20));
        assert_eq!(console.scrollback_len(), 16);
        console.scroll_by(3);
        let top = console.top_row();
        console.push(&lines(4));
        assert_eq!(console.top_row(), top, "the rows being read do not move");
        console.follow();
        assert!(console.is_following());
        console.scroll_by(-5);
        assert_eq!(console.scroll(), 0);
        console.scroll_by(1000);
        assert_eq!(console.scroll(), console.scrollback_len());
    }

    #[test]
    fn search_finds_rows_in_scrollback_and_scrolls_to_them() {
        let mut console = ConsoleView::new(5, 30);
        console.push(b"Boot Banner here\r\n");
        console.push(&lines(30));
        assert_eq!(console.search("banner"), 1);
        let m = console.search.as_ref().unwrap().matches[0];
        assert_eq!((m.row, m.col, m.len), (0, 5, 6));
        assert_eq!(console.top_row(), 0, "the match is in view");
        assert_eq!(console.search("line 1"), 11, "line 1, line 10..19");
        let last = console.search.as_ref().unwrap().current;
        console.next_match(true);
        assert_eq!(console.search.as_ref().unwrap().current, (last + 1) % 11);
        console.next_match(false);
        console.next_match(false);
        assert_eq!(console.search.as_ref().unwrap().current, last - 1);
        assert_eq!(console.search("absent"), 0);
    }

    #[test]
    fn resize_rewraps_history() {
        let mut console = ConsoleView::new(5, 10);
        console.push(b"0123456789abcdef\r\n");
        assert_eq!(console.all_rows()[..2], ["0123456789", "abcdef"]);
        console.resize(5, 20);
        assert_eq!(console.all_rows()[0], "0123456789abcdef");
        assert_eq!(console.size(), (5, 20));
    }

    #[test]
    fn finds_case_insensitively() {
        assert_eq!(
            find_in_row("Panic panic PANIC", "panic"),
            [(0, 5), (6, 5), (12, 5)]
        );
        assert!(find_in_row("short", "longer needle").is_empty());
    }
}
