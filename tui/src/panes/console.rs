//! The console pane: the `vt100` screen drawn cell by cell (colours and attributes kept), with
//! search matches highlighted and the cursor shown while typing. Its state is the terminal
//! emulator itself (`console::ConsoleView`: screen, scrollback, search); its keys scroll,
//! search and enter typing mode.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{Context, Pane, pane_block};
use crate::app::{Action, App, Mode, QemuState, Severity};
use crate::console::ConsoleView;

impl Pane for ConsoleView {
    fn handle_key(&mut self, key: KeyEvent, context: &mut Context<'_>) -> Vec<Action> {
        let page = isize::try_from(self.size().0.saturating_sub(1).max(1)).unwrap_or(1);
        match key.code {
            KeyCode::Char('i') | KeyCode::Enter => {
                if context.qemu_running {
                    *context.mode = Mode::Typing;
                    self.follow();
                } else {
                    context.set_message(Severity::Warning, "the guest is not running");
                }
            }
            KeyCode::Char('/') => *context.mode = Mode::Search(String::new()),
            KeyCode::Char('n') => self.next_match(true),
            KeyCode::Char('N') => self.next_match(false),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_by(1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_by(-1),
            KeyCode::PageUp => self.scroll_by(page),
            KeyCode::PageDown => self.scroll_by(-page),
            KeyCode::Home | KeyCode::Char('g') => self.scroll_to_top(),
            KeyCode::End | KeyCode::Char('G') => self.follow(),
            _ => {}
        }
        Vec::new()
    }

    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    // After QEMU died with something to say, its stderr stays in view under the console.
    let mut area = area;
    if let QemuState::Exited { stderr, .. } = &app.qemu
        && !stderr.trim().is_empty()
        && !app.console.raw().is_empty()
    {
        let lines: Vec<Line<'_>> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Line::from(l.to_string()))
            .collect();
        let height = (lines.len() as u16 + 2).min(area.height / 3).max(3);
        let [console, below] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(height)]).areas(area);
        let skip = lines.len().saturating_sub(usize::from(height - 2));
        frame.render_widget(
            ratatui::widgets::Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>())
                .style(Style::new().fg(Color::Red))
                .block(pane_block(" QEMU's stderr ")),
            below,
        );
        area = console;
    }
    let mut title = vec![" Console ttyS0 ".into()];
    if app.mode == Mode::Typing {
        title.push(ratatui::text::Span::styled(
            "[typing → guest] ",
            Style::new().fg(Color::Red),
        ));
    }
    if !app.console.is_following() {
        title.push(ratatui::text::Span::styled(
            format!(
                "[scrolled back {} rows; End follows] ",
                app.console.scroll()
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(search) = &app.console.search {
        let at = if search.matches.is_empty() {
            0
        } else {
            search.current + 1
        };
        title.push(ratatui::text::Span::styled(
            format!("[/{}: {at} of {}] ", search.query, search.matches.len()),
            Style::new().fg(Color::Cyan),
        ));
    }
    let block = pane_block(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    app.console.resize(inner.height, inner.width);

    // Before any output, say what is happening instead of showing an empty box.
    if app.console.raw().is_empty() {
        let text = match &app.qemu {
            QemuState::Building => "Building the kernel (cargo build -p kernel --release)…",
            QemuState::Starting => "Starting QEMU…",
            QemuState::Running { .. } => "QEMU is running; waiting for the kernel's first line…",
            QemuState::Exited { .. } => "QEMU exited without console output.",
            QemuState::Failed { .. } => "",
        };
        let mut lines = vec![Line::from(text)];
        if let QemuState::Failed { what, error } = &app.qemu {
            lines = vec![Line::styled(
                format!("{what} failed:"),
                Style::new().fg(Color::Red),
            )];
            lines.extend(error.lines().map(|l| Line::from(l.to_string())));
        }
        if let QemuState::Exited { stderr, .. } = &app.qemu
            && !stderr.trim().is_empty()
        {
            lines.push(Line::from("QEMU said:"));
            lines.extend(stderr.lines().map(|l| Line::from(l.to_string())));
        }
        frame.render_widget(
            ratatui::widgets::Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
        return;
    }

    let top = app.console.top_row();
    let search = app.console.search.clone();
    let following = app.console.is_following();
    let screen = app.console.screen_at_scroll();
    let (rows, cols) = screen.size();
    let buffer = frame.buffer_mut();
    for row in 0..rows.get().min(inner.height) {
        for col in 0..cols.get().min(inner.width) {
            let Some(cell) = screen.cell(row, col) else {
                continue;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let symbol = if cell.has_contents() {
                cell.contents()
            } else {
                " "
            };
            let target = &mut buffer[(inner.x + col, inner.y + row)];
            target.set_symbol(symbol);
            target.set_style(cell_style(cell));
        }
    }
    if let Some(search) = search {
        for (i, m) in search.matches.iter().enumerate() {
            let Some(row) = m.row.checked_sub(top) else {
                continue;
            };
            if row >= usize::from(inner.height) {
                continue;
            }
            let style = if i == search.current {
                Style::new().bg(Color::LightRed).fg(Color::Black)
            } else {
                Style::new().bg(Color::Yellow).fg(Color::Black)
            };
            for col in m.col..m.col.saturating_add(m.len).min(inner.width) {
                buffer[(inner.x + col, inner.y + row as u16)].set_style(style);
            }
        }
    }
    if app.mode == Mode::Typing && following {
        let (row, col) = app.console.screen_at_scroll().cursor_position();
        if row < inner.height && col < inner.width {
            frame.set_cursor_position(Position::new(inner.x + col, inner.y + row));
        }
    }
}

fn color(color: vt100::Color) -> Color {
    match color {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(i) => Color::Indexed(i),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

fn cell_style(cell: &vt100::Cell) -> Style {
    let mut style = Style::new()
        .fg(color(cell.fgcolor()))
        .bg(color(cell.bgcolor()));
    let mut modifier = Modifier::empty();
    if cell.bold() {
        modifier |= Modifier::BOLD;
    }
    if cell.dim() {
        modifier |= Modifier::DIM;
    }
    if cell.italic() {
        modifier |= Modifier::ITALIC;
    }
    if cell.underline() {
        modifier |= Modifier::UNDERLINED;
    }
    if cell.inverse() {
        modifier |= Modifier::REVERSED;
    }
    style = style.add_modifier(modifier);
    style
}
