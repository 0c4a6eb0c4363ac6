//! The panes and the frame around them (tabs, status line, key hints, help overlay).
//!
//! Each pane is one module holding its state, its keys and its drawing, behind the `Pane`
//! trait (the way gitui's components are): `App` keeps one value of each pane type and routes
//! keys and snapshots to them, so adding to a pane touches its module, not a central file.
//! Drawing reads an `App` and writes a ratatui buffer, nothing else, so each pane is
//! covered by `TestBackend` snapshot tests with fixed app states. Layout adapts to the terminal
//! (constraints, not absolute positions); below `MIN_WIDTH` x `MIN_HEIGHT` the screen says so
//! instead of drawing a garbled layout.

pub mod console;
pub mod gdb;
pub mod memory;
pub mod panic;
pub mod processes;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Tabs, Wrap};

use ratatui::crossterm::event::KeyEvent;

use cadenza_qemu::telemetry::Snapshot;

use crate::app::{Action, App, Mode, QemuState, Severity, Tab, TelemetryStatus, TelemetryView};
use crate::console::ConsoleView;
use crate::input::KEYS;
use crate::telemetry::Answered;

/// What a pane's key handler may touch besides its own state: the shared pieces of `App` it
/// needs, borrowed for the one key.
pub struct Context<'a> {
    pub qemu_running: bool,
    /// Who gets the keyboard next (a pane can open typing, search or gdb input).
    pub mode: &'a mut Mode,
    /// The status-line message.
    pub message: &'a mut Option<(Severity, String)>,
    pub telemetry: &'a mut TelemetryView,
}

impl Context<'_> {
    pub fn set_message(&mut self, severity: Severity, text: impl Into<String>) {
        *self.message = Some((severity, text.into()));
    }
}

/// One pane: its state is the implementing type, its keys `handle_key`, its drawing `draw`.
pub trait Pane {
    /// A key the global key table did not take, while this pane is on screen; returns what
    /// only the launcher can do.
    fn handle_key(&mut self, key: KeyEvent, context: &mut Context<'_>) -> Vec<Action>;

    /// A telemetry snapshot arrived (before it becomes `App::telemetry.last`).
    fn on_snapshot(&mut self, _snapshot: &Snapshot, _answered: Answered) {}

    /// Draws the pane into `area`, reading its own state and the shared state from `app`.
    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App)
    where
        Self: Sized;
}

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    let [tabs, status, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, tabs, app);
    draw_status(frame, status, app);
    match app.tab {
        Tab::Console => ConsoleView::draw(frame, body, app),
        Tab::Panic => panic::PanicPane::draw(frame, body, app),
        Tab::Memory => memory::MemoryPane::draw(frame, body, app),
        Tab::Processes => processes::ProcessesView::draw(frame, body, app),
        Tab::Gdb => gdb::GdbView::draw(frame, body, app),
    }
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, body);
    }
}

fn draw_too_small(frame: &mut Frame<'_>, area: Rect) {
    let text = vec![
        Line::from("Terminal too small".bold()),
        Line::from(format!(
            "{}x{}: Cadenza TUI needs at least {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        )),
        Line::from("enlarge the window, or press q to quit"),
    ];
    let y = area.height.saturating_sub(3) / 2;
    let centered = Rect::new(area.x, area.y + y, area.width, area.height.min(3));
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        centered,
    );
}

fn draw_tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let titles: Vec<Line<'_>> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, tab)| {
            let mut spans = vec![Span::raw(format!("{} {}", i + 1, tab.title()))];
            if *tab == Tab::Panic && (app.panic.is_some() || app.panic_error.is_some()) {
                spans.push(Span::styled(" !", Style::new().fg(Color::Red).bold()));
            }
            Line::from(spans)
        })
        .collect();
    let selected = Tab::ALL.iter().position(|&t| t == app.tab).unwrap_or(0);
    let [name, tabs] = Layout::horizontal([Constraint::Length(15), Constraint::Min(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(" Cadenza TUI ").style(Style::new().bg(Color::Blue).fg(Color::White).bold()),
        name,
    );
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().reversed().bold())
            .divider("│"),
        tabs,
    );
}

/// `QEMU … · kernel … · telemetry …` (plus a hang warning when there is one).
fn draw_status(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let qemu = match &app.qemu {
        QemuState::Building => Span::styled("building the kernel…", Style::new().fg(Color::Yellow)),
        QemuState::Starting => Span::styled("starting QEMU…", Style::new().fg(Color::Yellow)),
        QemuState::Running { pid } => Span::styled(
            format!("QEMU running (pid {pid})"),
            Style::new().fg(Color::Green),
        ),
        QemuState::Exited { exit, .. } => Span::styled(
            format!("QEMU exited: {}", crate::app::describe_exit(*exit)),
            Style::new().fg(Color::Red),
        ),
        QemuState::Failed { what, .. } => {
            Span::styled(format!("{what} failed"), Style::new().fg(Color::Red).bold())
        }
    };
    let (state, detail) = app.kernel_state();
    let kernel_color = match state {
        "running" => Color::Green,
        "stopped" => Color::Yellow,
        _ => Color::Gray,
    };
    let mut kernel = format!("kernel {state}");
    if !detail.is_empty() && state == "stopped" {
        kernel.push_str(&format!(" ({detail})"));
    }
    let mut spans = vec![
        Span::raw(" "),
        qemu,
        Span::raw(" · "),
        Span::styled(kernel, Style::new().fg(kernel_color)),
        Span::raw(" · "),
        telemetry_span(app),
    ];
    if let Some(warning) = app.hang_warning() {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(warning, Style::new().fg(Color::Red).bold()));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::Black)),
        area,
    );
}

fn telemetry_span(app: &App) -> Span<'static> {
    let t = &app.telemetry;
    let seq = t.last.as_ref().map(|s| s.seq).unwrap_or(0);
    match &t.status {
        _ if !app.telemetry_requested => Span::raw("telemetry off"),
        None if matches!(app.qemu, QemuState::Building | QemuState::Starting) => {
            Span::styled("telemetry: not started", Style::new().fg(Color::Gray))
        }
        None if matches!(app.qemu, QemuState::Failed { .. }) => {
            Span::styled("no telemetry", Style::new().fg(Color::Gray))
        }
        None | Some(TelemetryStatus::Waiting) => Span::styled(
            "telemetry: waiting for the kernel",
            Style::new().fg(Color::Gray),
        ),
        Some(TelemetryStatus::Connecting) => {
            Span::styled("telemetry: connecting", Style::new().fg(Color::Yellow))
        }
        Some(TelemetryStatus::Live) => Span::styled(
            match t.rate() {
                0.0 => format!("telemetry live: snapshot {seq}"),
                rate => format!("telemetry live: snapshot {seq}, {rate:.1}/s"),
            },
            Style::new().fg(Color::Green),
        ),
        Some(TelemetryStatus::Stalled(_)) => Span::styled(
            format!("telemetry stalled (last snapshot {seq})"),
            Style::new().fg(Color::Yellow),
        ),
        Some(TelemetryStatus::Unavailable(_)) => {
            Span::styled("no telemetry", Style::new().fg(Color::Red))
        }
        Some(TelemetryStatus::Ended(_)) => Span::styled(
            if t.last.is_some() {
                format!("telemetry ended (last snapshot {seq})")
            } else {
                "telemetry ended".into()
            },
            Style::new().fg(Color::Gray),
        ),
    }
}

/// Key hints for the current pane and mode, or the latest message.
fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let line = match &app.mode {
        Mode::Typing => Line::from(vec![
            Span::styled(
                " TYPING → guest ",
                Style::new().bg(Color::Red).fg(Color::White).bold(),
            ),
            Span::raw(" every key goes to the guest's console · Ctrl-] leaves typing mode"),
        ]),
        Mode::Search(query) => Line::from(vec![
            Span::styled(" search ", Style::new().bg(Color::Yellow).fg(Color::Black)),
            Span::raw(format!(" /{query}")),
            Span::styled("█", Style::new().fg(Color::Yellow)),
            Span::raw("   Enter: find · Esc: cancel"),
        ]),
        Mode::GdbInput(_) => Line::from(vec![
            Span::styled(" gdb ", Style::new().bg(Color::Magenta).fg(Color::White)),
            Span::raw(" Enter runs the command · Ctrl-C interrupts the kernel · Esc leaves"),
        ]),
        Mode::Normal => match &app.message {
            Some((severity, text)) => {
                let style = match severity {
                    Severity::Info => Style::new().fg(Color::Cyan),
                    Severity::Warning => Style::new().fg(Color::Yellow),
                    Severity::Error => Style::new().fg(Color::Red).bold(),
                };
                Line::from(Span::styled(format!(" {text}"), style))
            }
            None => Line::from(Span::styled(
                format!(" {}", hints(app.tab)),
                Style::new().fg(Color::Gray),
            )),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(tab: Tab) -> &'static str {
    match tab {
        Tab::Console => {
            "i: type into the guest · /: search · PgUp/PgDn: scroll · Tab: next pane · ?: keys · s: save · q: quit"
        }
        Tab::Panic => "Up/Down/PgUp/PgDn: scroll · Tab: next pane · ?: keys · s: save · q: quit",
        Tab::Memory => {
            "m: mark · l: leak scan · Up/Down: select leak · Tab: next pane · ?: keys · s: save · q: quit"
        }
        Tab::Processes => {
            "Up/Down: select · o: sort column · r: reverse · Tab: next pane · ?: keys · q: quit"
        }
        Tab::Gdb => "a: attach gdb here · i: gdb command · Tab: next pane · ?: keys · q: quit",
    }
}

fn draw_help(frame: &mut Frame<'_>, body: Rect) {
    let width = body.width.min(96);
    let height = body.height.min(KEYS.len() as u16 + 2);
    let area = Rect::new(
        body.x + (body.width - width) / 2,
        body.y + (body.height - height) / 2,
        width,
        height,
    );
    let rows = KEYS.iter().map(|(place, keys, what)| {
        Row::new(vec![
            Span::styled(*place, Style::new().fg(Color::Gray)),
            Span::styled(*keys, Style::new().fg(Color::Yellow).bold()),
            Span::raw(*what),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(20),
            Constraint::Min(10),
        ],
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" Keys ")
            .title_bottom(Line::from(" ? or Esc closes ").right_aligned()),
    );
    frame.render_widget(Clear, area);
    frame.render_widget(table, area);
}

/// A bordered block with a title, the common frame of every pane.
pub(crate) fn pane_block(title: impl Into<Line<'static>>) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(title)
}

/// A centred, wrapped explanation filling `area` (empty panes say why they are empty).
pub(crate) fn notice(frame: &mut Frame<'_>, area: Rect, block: Block<'_>, lines: Vec<Line<'_>>) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = (lines.len() as u16).min(inner.height);
    let y = inner.y + inner.height.saturating_sub(height) / 2;
    frame.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        Rect::new(inner.x, y, inner.width, inner.height - (y - inner.y)),
    );
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes for people: `512 B`, `60.0 KiB`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `+12` / `-3` / `0`.
pub fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", thousands(n.unsigned_abs()))
    } else if n < 0 {
        format!("-{}", thousands(n.unsigned_abs()))
    } else {
        "0".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(61440), "60.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(signed(-1500), "-1,500");
        assert_eq!(signed(7), "+7");
    }
}
