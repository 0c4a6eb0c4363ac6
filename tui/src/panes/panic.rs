//! The panic pane: the report's header, then each backtrace address with its symbol, every
//! source frame (inlined ones marked) and the source lines around it. Its state is the scroll
//! position (`PanicPane`); the analysis itself is shared (`App::panic`: the status line and the
//! tab title show it too).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{Context, Pane, notice, pane_block};
use crate::app::{Action, App};
use crate::panic::PanicAnalysis;

/// The panic pane's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PanicPane {
    /// Lines scrolled off the top of the report.
    pub scroll: u16,
}

impl Pane for PanicPane {
    fn handle_key(&mut self, key: KeyEvent, _: &mut Context<'_>) -> Vec<Action> {
        let scroll = &mut self.scroll;
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
            KeyCode::PageUp => *scroll = scroll.saturating_sub(20),
            KeyCode::PageDown => *scroll = scroll.saturating_add(20),
            KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
            _ => {}
        }
        Vec::new()
    }

    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    if let Some(analysis) = &app.panic {
        let lines = lines(
            analysis,
            app.symbolizer.as_ref().map(|s| s.path()),
            area.width,
        );
        let block = pane_block(Line::from(vec![
            Span::styled(
                " PANIC ",
                Style::new().bg(Color::Red).fg(Color::White).bold(),
            ),
            Span::raw(" symbolized backtrace "),
        ]));
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((app.panic_pane.scroll, 0)),
            area,
        );
        return;
    }
    if let Some(error) = &app.panic_error {
        let mut lines = vec![
            Line::styled(
                "A panic report appeared on the console but could not be read:",
                Style::new().fg(Color::Red),
            ),
            Line::from(error.clone()),
            Line::from(""),
        ];
        if let Some(raw) = crate::panic::complete_report(app.console.text()) {
            lines.extend(raw.lines().map(|l| Line::from(l.trim_end().to_string())));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(pane_block(" Panic "))
                .wrap(Wrap { trim: false })
                .scroll((app.panic_pane.scroll, 0)),
            area,
        );
        return;
    }
    notice(
        frame,
        area,
        pane_block(" Panic "),
        vec![
            Line::from("No panic so far."),
            Line::from(""),
            Line::from(
                "When the kernel prints a panic report (==== CADENZA PANIC REPORT v1 ====), \
                 this pane opens by itself with the backtrace resolved to functions, \
                 source lines and inlined frames.",
            ),
        ],
    );
}

fn lines<'a>(
    analysis: &'a PanicAnalysis,
    elf: Option<&std::path::Path>,
    width: u16,
) -> Vec<Line<'a>> {
    let report = &analysis.report;
    let label = Style::new().fg(Color::Gray);
    let mut out = Vec::new();
    let kind = match report.kind {
        ::symbols::PanicKind::Panic => "panic",
        ::symbols::PanicKind::Exception => "CPU exception",
    };
    out.push(Line::from(vec![
        Span::styled(kind.to_string(), Style::new().fg(Color::Red).bold()),
        Span::styled(
            format!(
                "  cpu {}  uptime {:.6} s",
                report.cpu,
                report.uptime_ns as f64 / 1e9
            ),
            label,
        ),
    ]));
    out.push(Line::from(vec![
        Span::styled("message   ", label),
        Span::styled(report.message.clone(), Style::new().bold()),
    ]));
    if let Some(location) = &report.location {
        out.push(Line::from(vec![
            Span::styled("location  ", label),
            Span::raw(format!(
                "{}:{}:{}",
                location.file, location.line, location.column
            )),
        ]));
    }
    if let Some(exception) = &report.exception {
        let mut text = format!(
            "{} {} {}",
            exception.mnemonic, exception.vector, exception.name
        );
        if let Some(code) = report.error_code {
            text.push_str(&format!(", error code {code:#x}"));
        }
        out.push(Line::from(vec![
            Span::styled("exception ", label),
            Span::raw(text),
        ]));
    }
    let printed = report
        .location
        .as_ref()
        .map(|l| format!("{}:{}:{}", l.file, l.line, l.column));
    if let Some(location) = analysis
        .headline_location()
        .filter(|l| Some(l) != printed.as_ref())
    {
        out.push(Line::from(vec![
            Span::styled("where     ", label),
            Span::styled(location, Style::new().fg(Color::Yellow).bold()),
        ]));
    }
    // `  RFLAGS=0x0000000000000082` is 26 columns; as many per line as fit.
    let per_line = usize::from(width.saturating_sub(12) / 26).max(1);
    for chunk in report.registers.chunks(per_line) {
        let text = chunk
            .iter()
            .map(|(name, value)| format!("{name:>6}={value:#018x}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Line::styled(format!("          {text}"), label));
    }
    out.push(Line::from(""));
    let source = match (elf, &analysis.symbols_note) {
        (_, Some(note)) => format!("backtrace ({note})"),
        (Some(elf), None) => format!("backtrace, symbolized with {}", elf.display()),
        (None, None) => "backtrace".to_string(),
    };
    out.push(Line::styled(source, Style::new().bold().underlined()));
    if analysis.backtrace.is_empty() {
        out.push(Line::from("  (the report has no backtrace frames)"));
    }
    for entry in &analysis.backtrace {
        let mut spans = vec![
            Span::styled(
                format!("#{:<2} ", entry.index),
                Style::new().fg(Color::Gray),
            ),
            Span::styled(
                format!("{:#018x} ", entry.address),
                Style::new().fg(Color::DarkGray),
            ),
            Span::styled(
                entry.symbol.clone().unwrap_or_else(|| "?".into()),
                Style::new().fg(Color::Cyan),
            ),
        ];
        if entry.exact {
            spans.push(Span::styled(
                "  (faulting instruction)",
                Style::new().fg(Color::Red),
            ));
        }
        if let Some(note) = &entry.note {
            spans.push(Span::styled(
                format!("  ({note})"),
                Style::new().fg(Color::Yellow),
            ));
        }
        out.push(Line::from(spans));
        for source in &entry.frames {
            let mut spans = vec![
                Span::raw("     "),
                Span::styled(source.function.clone(), Style::new().bold()),
                Span::raw("  "),
                Span::styled(
                    source.location.clone(),
                    if source.location.starts_with("kernel/") {
                        Style::new().fg(Color::Yellow)
                    } else {
                        Style::new().fg(Color::Gray)
                    },
                ),
            ];
            if source.inlined {
                spans.push(Span::styled(" [inlined]", Style::new().fg(Color::Magenta)));
            }
            out.push(Line::from(spans));
            for line in &source.context {
                let (marker, style) = if line.current {
                    ('>', Style::new().add_modifier(Modifier::BOLD))
                } else {
                    (' ', Style::new().fg(Color::DarkGray))
                };
                out.push(Line::styled(
                    format!("        {marker} {:>5} │ {}", line.number, line.text),
                    style,
                ));
            }
        }
    }
    out
}
