//! The processes pane: the snapshot's `task` records as a sortable table, and the selected
//! process's details. Only what the kernel reports is shown: telemetry v1 carries pid, ppid,
//! state and name; any further fields a newer kernel adds to `task` records become columns;
//! figures the kernel does not send are marked as such, never estimated.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use super::{notice, pane_block, thousands};
use crate::app::{App, SortKey, TelemetryStatus};
use crate::telemetry::extra_columns;

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
        Layout::vertical([Constraint::Min(5), Constraint::Length(9)]).areas(area);
    let extras = extra_columns(&app.telemetry.extras);
    let tasks = app.sorted_tasks();
    let arrow = if app.processes.descending {
        "▼"
    } else {
        "▲"
    };
    let mut names: Vec<String> = ["PID", "PPID", "NAME", "STATE", "CPU TIME", "MEMORY"]
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
        SortKey::Extra(i) => 6 + i,
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
        label("memory map"),
        Span::styled(
            "not in telemetry v1; with --kgdb, gdb's `monitor maps PID` prints it",
            missing,
        ),
    ]));
    lines.push(Line::from(vec![
        label("kernel backtrace"),
        Span::styled(
            "not in telemetry v1; with a gdb stub, `info threads` + `bt` show it",
            missing,
        ),
    ]));
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(" Selected process "))
            .wrap(Wrap { trim: true }),
        detail_area,
    );
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
