//! The GDB pane: which stub this session started, the gdb command to paste into another
//! terminal, whether the kernel is running or stopped, and gdb itself when attached here. Its
//! state is the stub and the gdb session (`GdbView`); its keys attach gdb (`a`) and open the
//! command line (`:`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{Context, Pane, pane_block};
use crate::app::{Action, App, Mode, SessionInfo, Severity};

/// Which gdb stub the session started, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GdbStub {
    None,
    /// The kernel's own stub on ttyS1, reachable on this TCP port.
    Kgdb {
        port: u16,
        wait: bool,
    },
    /// QEMU's stub; the CPU is frozen until gdb continues.
    Qemu {
        port: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GdbSession {
    Detached,
    Attaching,
    Attached,
    Failed(String),
}

#[derive(Debug)]
pub struct GdbView {
    pub stub: GdbStub,
    pub session: GdbSession,
    /// gdb's output in the pane.
    pub transcript: String,
    /// Kernel stopped/running as the kgdb console lines and gdb's output tell it.
    pub stopped: Option<bool>,
}

impl Default for GdbView {
    fn default() -> Self {
        Self {
            stub: GdbStub::None,
            session: GdbSession::Detached,
            transcript: String::new(),
            stopped: None,
        }
    }
}

impl GdbView {
    /// New gdb output; stop reports in it mean the kernel is stopped, `Continuing.` running.
    pub fn on_output(&mut self, new: &str) {
        let stop_words = ["received signal", "Breakpoint ", "stopped", "Watchpoint "];
        let lines: Vec<&str> = new.lines().collect();
        let last_stop = lines
            .iter()
            .rposition(|l| stop_words.iter().any(|w| l.contains(w)));
        let last_continue = lines.iter().rposition(|l| l.contains("Continuing."));
        match (last_stop, last_continue) {
            (Some(stop), Some(cont)) => self.stopped = Some(stop > cont),
            (Some(_), None) => self.stopped = Some(true),
            (None, Some(_)) => self.stopped = Some(false),
            (None, None) => {}
        }
        self.transcript.push_str(new);
        self.transcript = crate::gdb::tail(&self.transcript);
    }

    /// The gdb command line to paste into another terminal, for the session's stub.
    pub fn command(&self, info: &SessionInfo) -> Option<String> {
        let target = match self.stub {
            GdbStub::None => return None,
            GdbStub::Kgdb { port, .. } | GdbStub::Qemu { port } => format!(":{port}"),
        };
        let elf = info.kernel.as_ref().map_or_else(
            || "KERNEL_ELF".to_string(),
            |p| shell_word(&p.display().to_string()),
        );
        let mut command =
            format!("gdb {elf} -ex 'set remotetimeout 10' -ex 'target remote {target}'");
        if let Some(root) = &info.workspace {
            let script = root.join("scripts/gdb/cadenza.py");
            if script.is_file() {
                command.push_str(&format!(
                    " -ex 'source {}'",
                    script.display().to_string().replace('\'', r"'\''")
                ));
            }
        }
        Some(command)
    }
}

impl Pane for GdbView {
    fn handle_key(&mut self, key: KeyEvent, context: &mut Context<'_>) -> Vec<Action> {
        match key.code {
            KeyCode::Char('a') => match (&self.stub, &self.session) {
                (GdbStub::None, _) => context.set_message(
                    Severity::Warning,
                    "no gdb stub in this session: restart with --kgdb or --gdb-qemu",
                ),
                (_, GdbSession::Attaching | GdbSession::Attached) => {
                    context.set_message(Severity::Info, "gdb is already attached");
                }
                _ if !context.qemu_running => {
                    context.set_message(Severity::Warning, "the guest is not running");
                }
                _ => {
                    self.session = GdbSession::Attaching;
                    return vec![Action::GdbAttach];
                }
            },
            KeyCode::Char(':') | KeyCode::Char('i') | KeyCode::Enter => {
                if self.session == GdbSession::Attached {
                    *context.mode = Mode::GdbInput(String::new());
                } else {
                    context.set_message(Severity::Warning, "attach gdb first (a)");
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn draw(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [info, session] =
        Layout::vertical([Constraint::Length(10), Constraint::Min(3)]).areas(area);
    let label = |t: &'static str| Span::styled(format!("{t:<9}"), Style::new().fg(Color::Gray));
    let (state, detail) = app.kernel_state();
    let state_style = match state {
        "running" => Style::new().fg(Color::Green).bold(),
        "stopped" => Style::new().fg(Color::Yellow).bold(),
        _ => Style::new().fg(Color::Gray).bold(),
    };
    let mut kernel = vec![label("kernel"), Span::styled(state, state_style)];
    if !detail.is_empty() {
        kernel.push(Span::raw(format!(" — {detail}")));
    }
    let stub = match app.gdb.stub {
        GdbStub::None => "none: start the TUI with --kgdb [PORT] (the kernel's own stub on ttyS1) \
                          or --gdb-qemu [PORT] (QEMU's stub)"
            .to_string(),
        GdbStub::Kgdb { port, wait } => format!(
            "the kernel's own stub (kgdboc=ttyS1) on 127.0.0.1:{port}{}: kernel tasks as \
             threads, monitor ps/meminfo/heap/leaks/maps, break-on-oops",
            if wait {
                ", kgdbwait: the kernel waits for gdb early in boot"
            } else {
                ""
            }
        ),
        GdbStub::Qemu { port } => format!(
            "QEMU's stub on 127.0.0.1:{port}: vCPUs, no monitor commands; the CPU starts \
             frozen until gdb continues"
        ),
    };
    let mut lines = vec![
        Line::from(kernel),
        Line::from(vec![label("stub"), Span::raw(stub)]),
        Line::from(""),
    ];
    match app.gdb_command() {
        Some(command) => {
            lines.push(Line::from(vec![
                label("paste"),
                Span::styled("into another terminal:", Style::new().fg(Color::Gray)),
            ]));
            lines.push(Line::styled(command, Style::new().fg(Color::Yellow).bold()));
        }
        None => lines.push(Line::from(vec![
            label("paste"),
            Span::raw("(no stub, no command)"),
        ])),
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(" GDB "))
            .wrap(Wrap { trim: false }),
        info,
    );

    let title = match &app.gdb.session {
        GdbSession::Detached => " gdb in this pane: not attached (a attaches) ".to_string(),
        GdbSession::Attaching => " gdb in this pane: attaching… ".to_string(),
        GdbSession::Attached => " gdb in this pane: attached (i types a command) ".to_string(),
        GdbSession::Failed(_) => " gdb in this pane: failed ".to_string(),
    };
    let block = pane_block(title);
    let inner = block.inner(session);
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let GdbSession::Failed(error) = &app.gdb.session {
        lines.extend(
            error
                .lines()
                .map(|l| Line::styled(l.to_string(), Style::new().fg(Color::Red))),
        );
    }
    lines.extend(
        app.gdb
            .transcript
            .lines()
            .map(|l| Line::from(l.to_string())),
    );
    if let Mode::GdbInput(input) = &app.mode {
        lines.push(Line::from(vec![
            Span::styled("(gdb) ", Style::new().fg(Color::Magenta)),
            Span::raw(input.clone()),
            Span::styled("█", Style::new().fg(Color::Magenta)),
        ]));
    }
    // Show the end of the transcript.
    let skip = lines.len().saturating_sub(usize::from(inner.height));
    let lines: Vec<Line<'_>> = lines.into_iter().skip(skip).collect();
    frame.render_widget(block, session);
    frame.render_widget(Paragraph::new(lines), inner);
}

fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
