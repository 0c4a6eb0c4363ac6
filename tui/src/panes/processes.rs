//! The processes pane: the snapshot's `task` records as a sortable table (its state: the sort
//! order and the selection; its keys: move, `o` order, `r` reverse), and the selected
//! process's details: memory by region, its memory map and where it sleeps in the kernel (the
//! `detail PID` answer the worker asks for while this pane shows a process). Only what the
//! kernel reports is shown: any further fields a newer kernel adds to `task` records become
//! columns; figures the kernel does not send are marked as such, never estimated.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::memory::describe;
use super::{Context, Pane, notice, pane_block, thousands};
use crate::app::{Action, App, TelemetryStatus};
use crate::telemetry::extra_columns;
use cadenza_qemu::telemetry::{KernelPlace, ProcessDetail, Task};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Pid,
    Ppid,
    Name,
    State,
    /// CPU time used (`cpu_ms`).
    Cpu,
    /// Resident memory (`rss_kib`).
    Memory,
    /// Mapped memory (`vsz_kib`).
    Virtual,
    /// An extra field of the task records, by column index.
    Extra(usize),
}

#[derive(Debug)]
pub struct ProcessesView {
    pub sort: SortKey,
    pub descending: bool,
    pub selected: usize,
}

impl Default for ProcessesView {
    fn default() -> Self {
        Self {
            sort: SortKey::Pid,
            descending: false,
            selected: 0,
        }
    }
}

impl ProcessesView {
    /// `tasks` in the chosen order.
    pub fn sorted<'t>(&self, tasks: &'t [Task]) -> Vec<&'t Task> {
        let columns = extra_columns(tasks);
        let extra =
            |task: &'t Task, i: usize| -> Option<&'t str> { task.extra_field(columns.get(i)?) };
        let mut sorted: Vec<&Task> = tasks.iter().collect();
        sorted.sort_by(|a, b| {
            let order = match self.sort {
                SortKey::Pid => a.pid.cmp(&b.pid),
                SortKey::Ppid => a.ppid.cmp(&b.ppid),
                SortKey::Name => a.comm.cmp(&b.comm),
                SortKey::State => a.state.cmp(&b.state),
                SortKey::Cpu => a.cpu_ms.cmp(&b.cpu_ms),
                SortKey::Memory => a.rss_kib.cmp(&b.rss_kib),
                SortKey::Virtual => a
                    .memory
                    .map(|m| m.vsz_kib)
                    .cmp(&b.memory.map(|m| m.vsz_kib)),
                SortKey::Extra(i) => compare_values(extra(a, i), extra(b, i)),
            };
            order.then(a.pid.cmp(&b.pid))
        });
        if self.descending {
            sorted.reverse();
        }
        sorted
    }
}

impl Pane for ProcessesView {
    fn handle_key(&mut self, key: KeyEvent, context: &mut Context<'_>) -> Vec<Action> {
        let tasks = context
            .telemetry
            .last
            .as_ref()
            .map_or(&[][..], |s| s.tasks.as_slice());
        let count = tasks.len();
        let extra = extra_columns(tasks).len();
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(count.saturating_sub(1));
            }
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = count.saturating_sub(1),
            KeyCode::Char('o') => {
                self.sort = match self.sort {
                    SortKey::Pid => SortKey::Ppid,
                    SortKey::Ppid => SortKey::Name,
                    SortKey::Name => SortKey::State,
                    SortKey::State => SortKey::Cpu,
                    SortKey::Cpu => SortKey::Memory,
                    SortKey::Memory => SortKey::Virtual,
                    SortKey::Virtual if extra > 0 => SortKey::Extra(0),
                    SortKey::Extra(i) if i + 1 < extra => SortKey::Extra(i + 1),
                    SortKey::Virtual | SortKey::Extra(_) => SortKey::Pid,
                };
            }
            KeyCode::Char('r') => self.descending = !self.descending,
            _ => {}
        }
        Vec::new()
    }

    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
        draw(frame, area, app);
    }
}

/// Numbers (decimal or 0x-hex) compare as numbers, anything else as text; missing sorts first.
fn compare_values(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    let number = |s: &str| match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse::<u64>().ok(),
    };
    match (a, b) {
        (Some(a), Some(b)) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
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
    let extras = extra_columns(&snapshot.tasks);
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
            for column in &extras {
                cells.push(
                    task.extra_field(column)
                        .map_or_else(|| "—".to_string(), str::to_string),
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
    if !task.extra.is_empty() {
        let text = task
            .extra
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
