//! The memory pane: physical frames over time, heap totals and fragmentation, size classes, the
//! call sites holding the most live bytes, and the leak list with the selected leak's stack —
//! all from the latest telemetry snapshot, symbolized with the session's kernel ELF. Its state
//! is the selected leak (`MemoryPane`); its keys ask for a leak scan (`l`), set a mark (`m`) and
//! move the selection.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Row, Table, Wrap};

use cadenza_qemu::telemetry::{Frame as StackFrame, Snapshot};

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{Context, Pane, bytes, notice, pane_block, signed, thousands};
use crate::app::{Action, App, Severity, TelemetryStatus};
use crate::telemetry::{Answered, TelemetryCommand};

/// The memory pane's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPane {
    /// Index of the selected `leak` record.
    pub selected_leak: usize,
}

impl Pane for MemoryPane {
    fn handle_key(&mut self, key: KeyEvent, context: &mut Context<'_>) -> Vec<Action> {
        let leaks = context.telemetry.last.as_ref().map_or(0, |s| s.leaks.len());
        let telemetry_live = context.qemu_running
            && matches!(
                context.telemetry.status,
                Some(TelemetryStatus::Live | TelemetryStatus::Stalled(_))
            );
        match key.code {
            KeyCode::Char('m') | KeyCode::Char('l') if !telemetry_live => {
                context.set_message(Severity::Warning, "telemetry is not live: nothing to ask");
            }
            KeyCode::Char('m') if context.telemetry.host_marks => {
                let (severity, text) = context.telemetry.take_host_mark();
                context.set_message(severity, text);
            }
            KeyCode::Char('m') => return vec![Action::Telemetry(TelemetryCommand::Mark)],
            KeyCode::Char('l') => {
                context.set_message(Severity::Info, "leak scan requested…");
                return vec![Action::Telemetry(TelemetryCommand::Scan)];
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected_leak = self.selected_leak.saturating_sub(1);
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected_leak = (self.selected_leak + 1).min(leaks.saturating_sub(1));
            }
            _ => {}
        }
        Vec::new()
    }

    /// A scan's answer selects its first leak; any snapshot keeps the selection in range.
    fn on_snapshot(&mut self, snapshot: &Snapshot, answered: Answered) {
        if answered == Answered::Scan {
            self.selected_leak = 0;
        }
        self.selected_leak = self
            .selected_leak
            .min(snapshot.leaks.len().saturating_sub(1));
    }

    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(snapshot) = &app.telemetry.last else {
        notice(frame, area, pane_block(" Memory "), empty_reason(app));
        return;
    };
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Min(5),
    ])
    .areas(area);
    let [chart, totals] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [classes, sites] =
        Layout::horizontal([Constraint::Length(69), Constraint::Min(30)]).areas(middle);
    let [leaks, stack] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_chart(frame, chart, app, snapshot);
    draw_totals(frame, totals, app, snapshot);
    draw_classes(frame, classes, snapshot);
    draw_sites(frame, sites, app, snapshot);
    draw_leaks(frame, leaks, app, snapshot);
    draw_leak_stack(frame, stack, app, snapshot);
}

fn empty_reason(app: &App) -> Vec<Line<'static>> {
    let status = match &app.telemetry.status {
        _ if !app.telemetry_requested => "Telemetry is off for this session.".to_string(),
        None | Some(TelemetryStatus::Waiting) => {
            "Waiting for the kernel to announce its telemetry channel (telemetry=ttyS2)…".into()
        }
        Some(TelemetryStatus::Connecting) => "Connecting to the telemetry channel…".into(),
        Some(TelemetryStatus::Live) => "Waiting for the first snapshot…".into(),
        Some(TelemetryStatus::Stalled(why)) => {
            format!("The kernel does not answer telemetry requests: {why}")
        }
        Some(TelemetryStatus::Unavailable(why)) => format!("No telemetry from this kernel: {why}."),
        Some(TelemetryStatus::Ended(why)) => {
            format!("The telemetry channel closed before the first snapshot: {why}.")
        }
    };
    vec![
        Line::from(status),
        Line::from(""),
        Line::styled(
            "Heap, frames, size classes, call sites and leaks appear here once snapshots arrive \
             (docs/telemetry.md).",
            Style::new().fg(Color::Gray),
        ),
    ]
}

fn draw_chart(frame: &mut Frame<'_>, area: Rect, app: &App, snapshot: &Snapshot) {
    let history = &app.telemetry.history;
    let points: Vec<(f64, f64)> = history
        .iter()
        .map(|s| (s.uptime_s, s.used_frames as f64))
        .collect();
    let heap: Vec<(f64, f64)> = history
        .iter()
        .map(|s| (s.uptime_s, s.heap_frames as f64))
        .collect();
    let x_min = points.first().map_or(0.0, |p| p.0);
    let x_max = points.last().map_or(1.0, |p| p.0).max(x_min + 1.0);
    let y_max = points.iter().map(|p| p.1).fold(1.0_f64, f64::max).max(1.0) * 1.25;
    let title = format!(
        " Frames in use (of {}): used cyan, heap magenta ",
        thousands(snapshot.frames.total)
    );
    let datasets = vec![
        Dataset::default()
            .name("used")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(&points),
        Dataset::default()
            .name("heap")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Magenta))
            .data(&heap),
    ];
    let chart = Chart::new(datasets)
        .block(pane_block(title))
        .x_axis(
            Axis::default()
                .title("uptime s")
                .style(Style::new().fg(Color::Gray))
                .bounds([x_min, x_max])
                .labels(vec![
                    Span::raw(format!("{x_min:.1}")),
                    Span::raw(format!("{x_max:.1}")),
                ]),
        )
        .y_axis(
            Axis::default()
                .style(Style::new().fg(Color::Gray))
                .bounds([0.0, y_max])
                .labels(vec![
                    Span::raw("0"),
                    Span::raw(thousands((y_max / 2.0) as u64)),
                    Span::raw(thousands(y_max as u64)),
                ]),
        );
    frame.render_widget(chart, area);
}

fn draw_totals(frame: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot) {
    let label =
        |text: &'static str| Span::styled(format!("{text:<8}"), Style::new().fg(Color::Gray));
    let f = &s.frames;
    let h = &s.heap;
    let t = &s.tracker;
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let mut lines = vec![
        Line::from(vec![
            label("Frames"),
            Span::raw(format!(
                "used {} of {} ({:.1}%) · free {}",
                thousands(f.used),
                thousands(f.total),
                percent(f.used, f.total),
                thousands(f.free)
            )),
        ]),
        Line::from(vec![
            label(""),
            Span::raw(format!(
                "kernel {} · heap {} · heap meta {} · tracker {}",
                thousands(f.kernel),
                thousands(f.heap),
                thousands(f.heap_meta),
                thousands(f.tracker)
            )),
        ]),
        Line::from(vec![
            label("Heap"),
            Span::styled(
                format!("{} objects · {} live", thousands(h.objects), bytes(h.bytes)),
                Style::new().bold(),
            ),
            Span::raw(format!(" · {} footprint", bytes(h.footprint))),
        ]),
        Line::from(vec![
            label(""),
            Span::raw(format!(
                "allocs {} · frees {} · failed {} · large {} ({} frames)",
                thousands(h.allocs),
                thousands(h.frees),
                thousands(h.failed),
                thousands(h.large_objects),
                thousands(h.large_frames)
            )),
        ]),
        Line::from(vec![
            label("Frag"),
            Span::raw(format!(
                "internal {} ({:.0}% of footprint) · external {} · free {}",
                bytes(h.internal_frag),
                percent(h.internal_frag, h.footprint),
                bytes(h.external_frag),
                bytes(h.free_bytes)
            )),
        ]),
    ];
    let tracker = if t.is_on() {
        format!(
            "on · {} objects (peak {}) of {} · {} sites",
            thousands(t.objects),
            thousands(t.peak),
            thousands(t.capacity),
            thousands(t.sites)
        )
    } else {
        format!("off ({})", t.reason.as_deref().unwrap_or("no reason given"))
    };
    lines.push(Line::from(vec![label("Tracker"), Span::raw(tracker)]));
    let scan = match &s.scan {
        Some(scan) => format!(
            "{} scans · last at {:.1} s: {} unreferenced ({} new) in {:.1} ms",
            t.scans,
            scan.at_ns as f64 / 1e9,
            scan.unreferenced,
            scan.new,
            scan.duration_ns as f64 / 1e6
        ),
        None => "no scan yet (l scans)".into(),
    };
    lines.push(Line::from(vec![label("Scans"), Span::raw(scan)]));
    let mark = match &app.telemetry.mark {
        Some(mark) => {
            let (objects, live, allocs, frees) = mark.delta(s);
            let since = s.tracker.seq.saturating_sub(mark.alloc_seq);
            Line::from(vec![
                label("Mark"),
                Span::styled(
                    format!(
                        "since snapshot {}: {} objects, {} bytes live, {} allocs ({} tracked), {} frees",
                        mark.snapshot_seq,
                        signed(objects),
                        signed(live),
                        thousands(allocs),
                        thousands(since),
                        thousands(frees)
                    ),
                    Style::new().fg(Color::Yellow),
                ),
            ])
        }
        None => Line::from(vec![label("Mark"), Span::raw("none (m marks now)")]),
    };
    lines.push(mark);
    let title = format!(
        " Heap · snapshot {} at {:.1} s ",
        s.seq,
        s.uptime.ns as f64 / 1e9
    );
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(title))
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_classes(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let header = Row::new([
        "size",
        "frames",
        "live",
        "free",
        "requested",
        "int-frag",
        "partial",
        "p-free",
        "empty",
    ])
    .style(Style::new().fg(Color::Gray).bold());
    let mut rows: Vec<Row<'_>> = s
        .classes
        .iter()
        .map(|c| {
            // Figures from the kernel (or a garbled line) may be anything: saturate, never overflow.
            let internal = c.live.saturating_mul(c.size).saturating_sub(c.requested);
            Row::new(
                [
                    c.size,
                    c.frames,
                    c.live,
                    c.free,
                    c.requested,
                    internal,
                    c.partial_frames,
                    c.partial_free,
                    c.empty_frames,
                ]
                .map(thousands),
            )
        })
        .collect();
    rows.push(Row::new([
        "large".to_string(),
        thousands(s.heap.large_frames),
        thousands(s.heap.large_objects),
        String::new(),
        thousands(s.heap.large_bytes),
    ]));
    let widths = [6, 6, 6, 6, 9, 8, 7, 6, 5].map(Constraint::Length);
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(pane_block(" Size classes ")),
        area,
    );
}

/// (function, file:line) for a stack frame: from the ELF when it resolves, else the kernel's
/// kallsyms name.
pub(crate) fn describe(app: &App, frame: &StackFrame) -> (String, String) {
    match app.located.get(&frame.address) {
        Some(Some(located)) => (
            located
                .function
                .strip_prefix("kernel::")
                .unwrap_or(&located.function)
                .to_string(),
            // file:line; the column adds nothing at this size.
            match located.location.rsplit_once(':') {
                Some((file_line, column))
                    if file_line.contains(':') && column.parse::<u32>().is_ok() =>
                {
                    file_line.to_string()
                }
                _ => located.location.clone(),
            },
        ),
        _ => (
            frame
                .symbol
                .clone()
                .unwrap_or_else(|| format!("{:#x}", frame.address)),
            String::new(),
        ),
    }
}

fn draw_sites(frame: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot) {
    let mark = app.telemetry.mark.as_ref();
    let mut header = vec!["bytes", "objects", "allocs"];
    if mark.is_some() {
        header.push("Δ mark");
    }
    header.push("allocated at");
    let rows: Vec<Row<'_>> = s
        .sites
        .iter()
        .map(|site| {
            let mut cells = vec![
                thousands(site.bytes),
                thousands(site.objects),
                thousands(site.allocs),
            ];
            if let Some(mark) = mark {
                cells.push(signed(mark.site_delta(site.id, site.bytes)));
            }
            let place = match app.caller_frame(&site.frames) {
                Some(first) => {
                    let (function, location) = describe(app, first);
                    if location.is_empty() {
                        function
                    } else {
                        format!("{function} ({location})")
                    }
                }
                None => "?".into(),
            };
            cells.push(place);
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    if mark.is_some() {
        widths.push(Constraint::Length(8));
    }
    widths.push(Constraint::Min(20));
    let title = if s.sites.is_empty() {
        " Top call sites by live bytes: none (no live tracked objects) "
    } else {
        " Top call sites by live bytes "
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().fg(Color::Gray).bold()))
            .block(pane_block(title)),
        area,
    );
}

fn draw_leaks(frame: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot) {
    let title = match &s.scan {
        _ if !s.tracker.is_on() => " Leaks: the tracker is off ".to_string(),
        None => " Leaks: no scan yet (l scans) ".to_string(),
        Some(_) if s.leaks_total > s.leaks.len() as u64 => format!(
            " Leaks: {} unreferenced (first {} listed) ",
            s.leaks_total,
            s.leaks.len()
        ),
        Some(_) => format!(" Leaks: {} unreferenced ", s.leaks_total),
    };
    let selected = app.memory.selected_leak;
    let rows: Vec<Row<'_>> = s
        .leaks
        .iter()
        .enumerate()
        .map(|(i, leak)| {
            let row = Row::new(vec![
                format!("{:#x}", leak.address),
                bytes(leak.size),
                format!("{:.1}s", leak.age_ms as f64 / 1000.0),
                format!("{} ({})", leak.comm, leak.pid),
                app.caller_frame(&leak.frames)
                    .map(|f| describe(app, f).0)
                    .unwrap_or_default(),
            ]);
            if i == selected {
                row.style(Style::new().reversed())
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(19),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(
                Row::new(["address", "size", "age", "task", "allocated by"])
                    .style(Style::new().fg(Color::Gray).bold()),
            )
            .block(pane_block(title)),
        area,
    );
}

fn draw_leak_stack(frame: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot) {
    let Some(leak) = s.leaks.get(app.memory.selected_leak) else {
        notice(
            frame,
            area,
            pane_block(" Backtrace "),
            vec![Line::from(if s.leaks.is_empty() {
                "No unreferenced objects."
            } else {
                "Select a leak."
            })],
        );
        return;
    };
    let mut lines = Vec::new();
    for (i, stack_frame) in leak.frames.iter().enumerate() {
        let located = app
            .located
            .get(&stack_frame.address)
            .and_then(Option::as_ref);
        let name = stack_frame
            .symbol
            .clone()
            .or_else(|| located.map(|l| l.function.clone()))
            .unwrap_or_else(|| format!("{:#x}", stack_frame.address));
        let style = if located.is_some_and(|l| l.allocator) {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().fg(Color::Cyan)
        };
        lines.push(Line::from(vec![
            Span::styled(format!("#{i:<2} "), Style::new().fg(Color::Gray)),
            Span::styled(name, style),
        ]));
        if let Some(located) = located.filter(|l| !l.location.is_empty()) {
            lines.push(Line::from(vec![
                Span::raw("    "),
                Span::styled(located.location.clone(), Style::new().fg(Color::Yellow)),
            ]));
        }
    }
    let title = format!(
        " Backtrace of {:#x} ({}, seq {}) ",
        leak.address,
        bytes(leak.size),
        leak.seq
    );
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}
