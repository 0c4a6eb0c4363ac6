//! The processes pane: the snapshot's `task` records as a sortable table, and the selected
//! process's details: memory by region, its memory map and where it sleeps in the kernel (the
//! `detail PID` answer the worker asks for while this pane shows a process). Only what the
//! kernel reports is shown: any further fields a newer kernel adds to `task` records become
//! columns; figures the kernel does not send are marked as such, never estimated.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use super::memory::describe;
use super::{notice, pane_block, thousands};
use crate::app::{App, SortKey, TelemetryStatus};
use crate::telemetry::extra_columns;
use cadenza_qemu::telemetry::{KernelPlace, ProcessDetail};

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(snapshot) = &app.telemetry.last else {
        let why = match &app.telemetry.status {
            Some(TelemetryStatus::Unavailable(why)) => {
                format!("No telemetry from this kernel: {why}.")
            }
            _ => "Waiting for the first telemetry snapshot…".into(),
        };
        notice(
            frame,
            area,
            pane_block(" Processes "),
            vec![Line::from(why)],
        );
        return;
    };
    if snapshot.tasks.is_empty() {
        notice(
            frame,
            area,
            pane_block(" Processes "),
            vec![
                Line::styled(
                    "No process data in this kernel's telemetry.",
                    Style::new().bold(),
                ),
                Line::from(""),
                Line::from(format!(
                    "Snapshot {} lists no task records (tasks total={}): no /init is running yet, \
                     or this kernel does not fill the snapshot's task section.",
                    snapshot.seq,
                    thousands(snapshot.tasks_total)
                )),
            ],
        );
        return;
    }
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(16)]).areas(area);
    let extras = extra_columns(&app.telemetry.extras);
    let tasks = app.sorted_tasks();
    let arrow = if app.processes.descending {
        "▼"
    } else {
        "▲"
    };
    let mut names: Vec<String> = [
        "PID", "PPID", "NAME", "STATE", "CPU TIME", "MEMORY", "VIRTUAL",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend(extras.iter().map(|e| e.to_uppercase()));
    let sorted = match app.processes.sort {
        SortKey::Pid => 0,
        SortKey::Ppid => 1,
        SortKey::Name => 2,
        SortKey::State => 3,
        SortKey::Cpu => 4,
        SortKey::Memory => 5,
        SortKey::Virtual => 6,
        SortKey::Extra(i) => 7 + i,
    };
    if let Some(name) = names.get_mut(sorted) {
        name.push_str(arrow);
    }
    let header = Row::new(names).style(Style::new().fg(Color::Gray).bold());
    let rows: Vec<Row<'_>> = tasks
        .iter()
        .map(|task| {
            let mut cells = vec![
                task.pid.to_string(),
                task.ppid.to_string(),
                task.comm.clone(),
                state_name(&task.state),
                task.cpu_ms.map_or_else(|| "n/a".into(), cpu_time),
                task.rss_kib.map_or_else(|| "n/a".into(), memory),
                task.memory
                    .map_or_else(|| "n/a".into(), |m| memory(m.vsz_kib)),
            ];
            let fields = app.telemetry.extras.get(&task.pid);
            for column in &extras {
                cells.push(
                    fields
                        .and_then(|f| f.iter().find(|(k, _)| k == column))
                        .map_or_else(|| "—".to_string(), |(_, v)| v.clone()),
                );
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(17),
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    widths.extend(extras.iter().map(|_| Constraint::Length(14)));
    let shown = if snapshot.tasks_total > snapshot.tasks.len() as u64 {
        format!(
            " Processes: {} of {} (snapshot {}) ",
            snapshot.tasks.len(),
            snapshot.tasks_total,
            snapshot.seq
        )
    } else {
        format!(
            " Processes: {} (snapshot {}) ",
            snapshot.tasks.len(),
            snapshot.seq
        )
    };
    let selected = app.processes.selected.min(tasks.len().saturating_sub(1));
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .row_highlight_style(Style::new().reversed())
            .block(pane_block(shown)),
        table_area,
        &mut state,
    );

    let Some(task) = tasks.get(selected) else {
        return;
    };
    let label = |t: &'static str| Span::styled(format!("{t:<18}"), Style::new().fg(Color::Gray));
    let mut lines = vec![Line::from(vec![
        label("process"),
        Span::styled(
            format!("{} (pid {}, parent {})", task.comm, task.pid, task.ppid),
            Style::new().bold(),
        ),
        Span::raw(format!(" · {}", state_name(&task.state))),
    ])];
    if let Some(fields) = app.telemetry.extras.get(&task.pid) {
        let text = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(Line::from(vec![label("reported"), Span::raw(text)]));
    }
    let missing = Style::new().fg(Color::DarkGray);
    match (task.cpu_ms, task.rss_kib) {
        (None, None) => lines.push(Line::from(vec![
            label("cpu time, memory"),
            Span::styled(
                "not in this kernel's telemetry (task records carry pid, ppid, state, comm)",
                missing,
            ),
        ])),
        (cpu_ms, rss_kib) => lines.push(Line::from(vec![
            label("cpu time, memory"),
            Span::raw(format!(
                "{} on the CPU · {} resident",
                cpu_ms.map_or_else(|| "n/a".into(), cpu_time),
                rss_kib.map_or_else(|| "n/a".into(), memory)
            )),
        ])),
    }
    lines.push(Line::from(vec![
        label("by region"),
        match task.memory {
            Some(m) => Span::raw(format!(
                "image {} · heap {} · stack {} · anonymous {} · {} mapped",
                memory(m.image_kib),
                memory(m.heap_kib),
                memory(m.stack_kib),
                memory(m.anon_kib),
                memory(m.vsz_kib)
            )),
            None => Span::styled("not in this kernel's telemetry", missing),
        },
    ]));
    let block = pane_block(" Selected process ");
    let inner = block.inner(detail_area);
    frame.render_widget(block, detail_area);
    let [summary_area, lists_area] =
        Layout::vertical([Constraint::Length(lines.len() as u16), Constraint::Min(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }),
        summary_area,
    );
    let [maps_area, stack_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(lists_area);
    let detail = snapshot.detail.as_ref().filter(|d| d.pid == task.pid);
    let (maps, stack) = match detail {
        Some(detail) => (map_lines(detail), stack_lines(app, detail)),
        None => {
            let waiting = vec![Line::styled(
                "asking the kernel (telemetry `detail PID`)…",
                missing,
            )];
            (waiting.clone(), waiting)
        }
    };
    let heading = |title: &'static str| Line::styled(title, Style::new().fg(Color::Gray).bold());
    frame.render_widget(
        Paragraph::new([vec![heading("memory map")], maps].concat()),
        maps_area,
    );
    frame.render_widget(
        Paragraph::new([vec![heading("kernel stack")], stack].concat()),
        stack_area,
    );
}

/// `/proc/<pid>/maps`-style lines: range, rights, name.
fn map_lines(detail: &ProcessDetail) -> Vec<Line<'static>> {
    if detail.maps.is_empty() {
        return vec![Line::styled(
            "no regions reported",
            Style::new().fg(Color::DarkGray),
        )];
    }
    detail
        .maps
        .iter()
        .map(|map| {
            Line::from(vec![
                Span::raw(format!("{:012x}-{:012x} ", map.start, map.end)),
                Span::styled(format!("{} ", map.perms), Style::new().fg(Color::Cyan)),
                Span::raw(format!(
                    "{:>9} {}",
                    memory((map.end - map.start) / 1024),
                    map.name
                )),
            ])
        })
        .collect()
}

/// Where the process is in the kernel: its sleeping backtrace, symbolized to file:line when
/// the kernel ELF is at hand.
fn stack_lines(app: &App, detail: &ProcessDetail) -> Vec<Line<'static>> {
    let note = |text: &str| {
        vec![Line::styled(
            text.to_string(),
            Style::new().fg(Color::DarkGray),
        )]
    };
    match &detail.place {
        KernelPlace::Sleeping(frames) => frames
            .iter()
            .map(|frame| {
                let (function, location) = describe(app, frame);
                Line::from(vec![
                    Span::raw(function),
                    Span::styled(format!("  {location}"), Style::new().fg(Color::DarkGray)),
                ])
            })
            .collect(),
        KernelPlace::Running => note("on the CPU when the snapshot was taken (no saved stack)"),
        KernelPlace::Gone => note("the process has exited"),
        KernelPlace::Unknown => note("the kernel could not read it at that instant"),
    }
}

/// `cpu_ms` as `ps` would show it: milliseconds, then seconds, then minutes.
fn cpu_time(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.2} s", ms as f64 / 1000.0),
        _ => format!("{}:{:02} min", ms / 60_000, (ms / 1000) % 60),
    }
}

/// `rss_kib` in KiB up to a MiB, then MiB.
fn memory(kib: u64) -> String {
    if kib < 1024 {
        format!("{kib} KiB")
    } else {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }
}

fn state_name(letter: &str) -> String {
    let name = match letter {
        "R" => "running",
        "S" => "sleeping",
        "Z" => "zombie",
        "D" => "disk sleep",
        "T" => "stopped",
        _ => return letter.to_string(),
    };
    format!("{letter} {name}")
}
