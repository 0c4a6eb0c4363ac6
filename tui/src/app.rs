//! The state the panes share, and the routing of keys and events to them.
//!
//! Each pane is a module of `panes` holding its own state, its keys and its drawing (the
//! `panes::Pane` trait); `App` holds those panes plus what several of them read — QEMU's state,
//! the console, the latest telemetry, the panic analysis, the session's facts — and routes keys
//! (global keys here, the rest to the pane on screen) and events to them.
//!
//! `App` does no I/O: the launcher glue (`session`) feeds it console bytes, telemetry events,
//! QEMU's fate and the time, and carries out the `Action`s its key handling returns (send bytes
//! to the guest, ask for a scan, save a report, quit). That split is what makes every pane
//! testable with a hand-made `App` and ratatui's `TestBackend`, and it keeps all waiting off the
//! UI thread: nothing here can block.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ::symbols::{AddressKind, Symbolizer};
use cadenza_qemu::GuestExit;
use cadenza_qemu::telemetry::Snapshot;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::console::ConsoleView;
use crate::input::{is_ctrl, is_escape_from_typing, key_to_bytes};
use crate::panes::memory::MemoryPane;
use crate::panes::panic::PanicPane;
use crate::panes::{Context, Pane};
use crate::panic::{self, PanicAnalysis};
use crate::telemetry::{Answered, MarkBaseline, TelemetryCommand, TelemetryEvent};

pub use crate::panes::gdb::{GdbSession, GdbStub, GdbView};
pub use crate::panes::processes::{ProcessesView, SortKey};
/// The allocator-frame rule, shared with the kernel (`cadenza_abi::allocator`): a kernel whose
/// symbol table was not embedded cannot strip those frames itself, and its call sites then
/// start inside `__rust_alloc`, so the TUI applies the same rule on the host.
pub use cadenza_abi::allocator::is_allocator_name;

/// The line the kernel prints once it answers telemetry requests (docs/telemetry.md).
pub const TELEMETRY_ANNOUNCEMENT: &str = cadenza_qemu::telemetry::ANNOUNCEMENT_PREFIX;
/// Snapshots kept for the charts.
pub const HISTORY: usize = 600;
/// Without console output or telemetry for this long, a running guest is called unresponsive.
pub const HANG_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Console,
    Panic,
    Memory,
    Processes,
    Gdb,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Console,
        Tab::Panic,
        Tab::Memory,
        Tab::Processes,
        Tab::Gdb,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Console => "Console",
            Tab::Panic => "Panic",
            Tab::Memory => "Memory",
            Tab::Processes => "Processes",
            Tab::Gdb => "GDB",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    fn step(self, forward: bool) -> Tab {
        let n = Self::ALL.len();
        let i = self.index();
        Self::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// Who gets the keyboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Console keys go to the guest until Ctrl-].
    Typing,
    /// Typing a console search.
    Search(String),
    /// Typing a gdb command.
    GdbInput(String),
}

/// Something only the launcher glue can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendToGuest(Vec<u8>),
    Telemetry(TelemetryCommand),
    SaveReport,
    GdbAttach,
    GdbCommand(String),
    GdbInterrupt,
    Quit,
}

/// QEMU, from the TUI's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuState {
    Building,
    Starting,
    Running {
        pid: u32,
    },
    Exited {
        exit: GuestExit,
        stderr: String,
    },
    /// The kernel build or QEMU's start failed; nothing runs.
    Failed {
        what: String,
        error: String,
    },
}

/// The telemetry channel's state, for the status line and the memory pane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelemetryStatus {
    /// The kernel has not announced the channel yet.
    Waiting,
    Connecting,
    Live,
    /// Requests stopped being answered (kernel stopped in a debugger, hung, very slow).
    Stalled(String),
    /// This kernel has no telemetry channel (or refused it).
    Unavailable(String),
    /// The channel closed (QEMU exited); the last snapshot stays on screen.
    Ended(String),
}

/// One point of the charts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub uptime_s: f64,
    pub used_frames: u64,
    pub heap_frames: u64,
    pub heap_bytes: u64,
}

/// A resolved return address: the function that made the call and the line of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub function: String,
    pub location: String,
    /// The function belongs to the allocation machinery (`__rust_alloc`, `alloc::…`, the heap),
    /// not to the code that wanted the memory.
    pub allocator: bool,
}

#[derive(Debug, Default)]
pub struct TelemetryView {
    pub status: Option<TelemetryStatus>,
    pub last: Option<Snapshot>,
    pub last_raw: String,
    /// When (session time) the last snapshot arrived.
    pub last_at: Option<Duration>,
    pub history: VecDeque<Sample>,
    /// Snapshots received, and arrival times of the recent ones (for the rate).
    pub received: u64,
    pub recent: VecDeque<Duration>,
    pub mark: Option<MarkBaseline>,
    /// True once the kernel refused `mark` (so the TUI keeps marks itself).
    pub host_marks: bool,
    pub last_error: Option<String>,
}

impl TelemetryView {
    /// Snapshots per second over the last few seconds.
    pub fn rate(&self) -> f64 {
        match (self.recent.front(), self.recent.back()) {
            (Some(first), Some(last)) if self.recent.len() > 1 && last > first => {
                (self.recent.len() - 1) as f64 / (*last - *first).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Takes the mark on the host (a kernel without the `mark` request): the last snapshot
    /// becomes the baseline. Returns what to tell the user.
    pub fn take_host_mark(&mut self) -> (Severity, String) {
        match &self.last {
            Some(snapshot) => {
                self.mark = Some(MarkBaseline::from_snapshot(snapshot, false));
                (
                    Severity::Info,
                    format!(
                        "mark set at snapshot {} (kept by the TUI: this kernel's telemetry has no `mark` request)",
                        snapshot.seq
                    ),
                )
            }
            None => (Severity::Warning, "mark: no snapshot yet".into()),
        }
    }
}

/// Facts about the session fixed at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub kernel: Option<PathBuf>,
    pub workspace: Option<PathBuf>,
    pub append: String,
    pub accel: String,
    pub memory_mib: u32,
    pub initrd: String,
    pub qemu_command: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

pub struct App {
    pub tab: Tab,
    pub mode: Mode,
    pub help: bool,
    pub console: ConsoleView,
    pub panic: Option<PanicAnalysis>,
    /// A report that could not be parsed (its error), shown in the panic pane.
    pub panic_error: Option<String>,
    /// The panic pane (its scroll position).
    pub panic_pane: PanicPane,
    pub symbolizer: Option<Symbolizer>,
    /// Why there is no symbolizer.
    pub symbols_error: Option<String>,
    /// Resolved return addresses of call sites and leaks.
    pub located: HashMap<u64, Option<Located>>,
    pub telemetry: TelemetryView,
    /// The memory pane (the selected leak).
    pub memory: MemoryPane,
    pub processes: ProcessesView,
    pub gdb: GdbView,
    pub qemu: QemuState,
    pub info: SessionInfo,
    /// Time since the session started, set by the launcher on every tick.
    pub now: Duration,
    pub qemu_started_at: Option<Duration>,
    pub last_output_at: Option<Duration>,
    pub message: Option<(Severity, String)>,
    pub quit: bool,
    /// Whether telemetry was asked for on the kernel command line.
    pub telemetry_requested: bool,
    /// How far `console.text()` has been scanned for markers.
    scanned: usize,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    pub fn new() -> Self {
        Self {
            tab: Tab::Console,
            mode: Mode::Normal,
            help: false,
            console: ConsoleView::default(),
            panic: None,
            panic_error: None,
            panic_pane: PanicPane::default(),
            symbolizer: None,
            symbols_error: None,
            located: HashMap::new(),
            telemetry: TelemetryView::default(),
            memory: MemoryPane::default(),
            processes: ProcessesView::default(),
            gdb: GdbView::default(),
            qemu: QemuState::Building,
            info: SessionInfo::default(),
            now: Duration::ZERO,
            qemu_started_at: None,
            last_output_at: None,
            message: None,
            quit: false,
            telemetry_requested: true,
            scanned: 0,
        }
    }

    pub fn set_message(&mut self, severity: Severity, text: impl Into<String>) {
        self.message = Some((severity, text.into()));
    }

    pub fn qemu_running(&self) -> bool {
        matches!(self.qemu, QemuState::Running { .. })
    }

    // ---- feeding state -------------------------------------------------------------------

    /// Guest console output.
    pub fn on_console(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.console.push(bytes);
        self.last_output_at = Some(self.now);
        self.scan_console();
    }

    /// Looks at complete new lines for the markers the TUI reacts to.
    fn scan_console(&mut self) {
        let text = self.console.text();
        let Some(end) = text.rfind('\n').map(|i| i + 1) else {
            return;
        };
        if end <= self.scanned {
            return;
        }
        let new: Vec<String> = text[self.scanned..end]
            .lines()
            .map(|l| strip_stamp(l.trim_end_matches('\r')).to_string())
            .collect();
        self.scanned = end;
        for line in new {
            self.on_console_line(&line);
        }
        if self.panic.is_none()
            && self.panic_error.is_none()
            && let Some(report) = panic::complete_report(self.console.text()).map(str::to_owned)
        {
            self.on_panic_report(&report);
        }
    }

    fn on_console_line(&mut self, line: &str) {
        if line.starts_with("kgdb: waiting for gdb")
            || line.starts_with("kgdb: panic: stopping")
            || line.starts_with("kgdb: fatal exception: stopping")
        {
            self.gdb.stopped = Some(true);
        } else if line.starts_with("kgdb: continuing boot") {
            self.gdb.stopped = Some(false);
        }
        if !self.telemetry_requested {
            return;
        }
        if line.starts_with("telemetry:") {
            if line.starts_with(TELEMETRY_ANNOUNCEMENT) {
                if self.telemetry.status.is_none() {
                    self.telemetry.status = Some(TelemetryStatus::Connecting);
                }
            } else if line.contains("telemetry off") {
                self.telemetry.status = Some(TelemetryStatus::Unavailable(format!(
                    "the kernel refused the channel: {line}"
                )));
            }
        } else if self.telemetry.status.is_none()
            && (line.starts_with("init:")
                || line.starts_with("Run /init")
                || line.starts_with("Cadenza: nothing to run"))
        {
            // The kernel reads `telemetry=` before starting init: past that point without the
            // announcement, this kernel has no telemetry channel.
            self.telemetry.status = Some(TelemetryStatus::Unavailable(
                "the kernel never announced its telemetry channel (a kernel without \
                 `telemetry=` support?)"
                    .into(),
            ));
        }
    }

    /// True when the launcher should start polling telemetry.
    pub fn telemetry_announced(&self) -> bool {
        self.telemetry.status == Some(TelemetryStatus::Connecting)
    }

    fn on_panic_report(&mut self, report: &str) {
        let note = self.symbols_error.clone().or_else(|| {
            self.symbolizer
                .is_none()
                .then(|| "no symbolizer".to_string())
        });
        match panic::analyze(report, self.symbolizer.as_ref(), note) {
            Ok(analysis) => self.panic = Some(analysis),
            Err(error) => self.panic_error = Some(error.to_string()),
        }
        self.panic_pane = PanicPane::default();
        self.tab = Tab::Panic;
        if self.mode == Mode::Typing {
            self.mode = Mode::Normal;
        }
        self.set_message(
            Severity::Error,
            "the kernel panicked: the Panic pane shows the report",
        );
    }

    /// The symbolizer for the session's kernel (or why there is none).
    pub fn set_symbolizer(&mut self, symbolizer: Result<Symbolizer, String>) {
        match symbolizer {
            Ok(symbolizer) => {
                self.symbols_error = symbolizer.missing_debug_info().map(|e| e.to_string());
                self.symbolizer = Some(symbolizer);
            }
            Err(error) => self.symbols_error = Some(error),
        }
    }

    pub fn on_telemetry(&mut self, event: TelemetryEvent) {
        match event {
            TelemetryEvent::Connected => {
                self.telemetry.status = Some(TelemetryStatus::Connecting);
            }
            TelemetryEvent::Snapshot {
                snapshot,
                raw,
                answered,
            } => self.on_snapshot(*snapshot, raw, answered),
            TelemetryEvent::Refused { answered, message } => {
                if answered == Answered::Mark {
                    self.telemetry.host_marks = true;
                    let (severity, text) = self.telemetry.take_host_mark();
                    self.set_message(severity, text);
                } else {
                    self.set_message(
                        Severity::Warning,
                        format!("telemetry: the kernel refused {answered:?}: {message}"),
                    );
                }
            }
            TelemetryEvent::Error(error) => {
                self.telemetry.last_error = Some(error.clone());
                // One missed answer is noise; no answer for a while is a stall.
                let stale = self
                    .telemetry
                    .last_at
                    .is_none_or(|at| self.now.saturating_sub(at) > Duration::from_secs(2));
                if stale {
                    self.telemetry.status = Some(TelemetryStatus::Stalled(error));
                }
            }
            TelemetryEvent::Closed(reason) => {
                let status = if self.telemetry.last.is_some() || !self.qemu_running() {
                    TelemetryStatus::Ended(reason)
                } else {
                    TelemetryStatus::Unavailable(reason)
                };
                self.telemetry.status = Some(status);
            }
        }
    }

    fn on_snapshot(&mut self, snapshot: Snapshot, raw: String, answered: Answered) {
        let t = &mut self.telemetry;
        t.status = Some(TelemetryStatus::Live);
        t.last_error = None;
        t.received += 1;
        t.last_at = Some(self.now);
        t.recent.push_back(self.now);
        while t.recent.len() > 10 {
            t.recent.pop_front();
        }
        t.history.push_back(Sample {
            uptime_s: snapshot.uptime.ns as f64 / 1e9,
            used_frames: snapshot.frames.used,
            heap_frames: snapshot.frames.heap,
            heap_bytes: snapshot.heap.bytes,
        });
        while t.history.len() > HISTORY {
            t.history.pop_front();
        }
        self.memory.on_snapshot(&snapshot, answered);
        self.processes.on_snapshot(&snapshot, answered);
        match answered {
            Answered::Scan => {
                let text = match &snapshot.scan {
                    Some(scan) => format!(
                        "leak scan: {} unreferenced ({} new) among {} objects",
                        scan.unreferenced, scan.new, scan.objects
                    ),
                    None => format!("leak scan: tracker {}", snapshot.tracker.state),
                };
                self.set_message(Severity::Info, text);
            }
            Answered::Mark => {
                self.telemetry.mark = Some(MarkBaseline::from_snapshot(&snapshot, true));
                self.set_message(Severity::Info, "mark set by the kernel");
            }
            Answered::Poll => {}
        }
        self.resolve_addresses(&snapshot);
        self.telemetry.last = Some(snapshot);
        self.telemetry.last_raw = raw;
    }

    /// Symbolizes the return addresses of call sites and leaks once each.
    fn resolve_addresses(&mut self, snapshot: &Snapshot) {
        let Some(symbolizer) = &self.symbolizer else {
            return;
        };
        let addresses = snapshot
            .sites
            .iter()
            .flat_map(|s| s.frames.iter())
            .chain(snapshot.leaks.iter().flat_map(|l| l.frames.iter()))
            .chain(snapshot.detail.iter().flat_map(|d| match &d.place {
                cadenza_qemu::telemetry::KernelPlace::Sleeping(frames) => frames.as_slice(),
                _ => &[],
            }))
            .map(|f| f.address);
        for address in addresses {
            self.located.entry(address).or_insert_with(|| {
                let resolution = symbolizer
                    .resolve_as(address, AddressKind::ReturnAddress)
                    .ok()?;
                // The outermost frame is the function the call is in, at the line of the call.
                let outer = resolution.frames.last();
                let function = outer
                    .and_then(|f| f.function.as_deref())
                    .map(str::to_string)
                    .or_else(|| resolution.symbol.as_ref().map(|s| s.name.to_string()))?;
                let symbol = resolution.symbol.as_ref().map(|s| s.name.to_string());
                let allocator = is_allocator_name(&function)
                    || symbol.as_deref().is_some_and(is_allocator_name);
                Some(Located {
                    function,
                    location: outer.map(|f| f.location()).unwrap_or_default(),
                    allocator,
                })
            });
        }
    }

    /// The first frame of a stack that is not the allocator's own (the code that asked for the
    /// memory), judged by the kernel's symbol or, without one, by the ELF.
    pub fn caller_frame<'f>(
        &self,
        frames: &'f [cadenza_qemu::telemetry::Frame],
    ) -> Option<&'f cadenza_qemu::telemetry::Frame> {
        let allocator = |f: &cadenza_qemu::telemetry::Frame| match &f.symbol {
            Some(symbol) => is_allocator_name(symbol),
            None => self
                .located
                .get(&f.address)
                .and_then(Option::as_ref)
                .is_some_and(|l| l.allocator),
        };
        frames.iter().find(|f| !allocator(f)).or(frames.first())
    }

    pub fn on_qemu_started(&mut self, pid: u32) {
        self.qemu = QemuState::Running { pid };
        self.qemu_started_at = Some(self.now);
    }

    pub fn on_qemu_exit(&mut self, exit: GuestExit, stderr: String) {
        let severity = match exit {
            GuestExit::Clean => Severity::Info,
            _ => Severity::Error,
        };
        let mut text = format!("QEMU exited: {}", describe_exit(exit));
        if let GuestExit::QemuFailed { .. } = exit
            && let Some(line) = stderr.lines().rfind(|l| !l.trim().is_empty())
        {
            text.push_str(&format!(": {}", line.trim()));
        }
        text.push_str(" — post-mortem view; s saves a report, q quits");
        self.set_message(severity, text);
        match &self.telemetry.status {
            None if self.telemetry_requested => {
                self.telemetry.status = Some(TelemetryStatus::Unavailable(
                    "the kernel exited before announcing its telemetry channel".into(),
                ));
            }
            Some(TelemetryStatus::Connecting) => {
                self.telemetry.status = Some(TelemetryStatus::Ended(
                    "the guest exited before the first snapshot".into(),
                ));
            }
            Some(TelemetryStatus::Live | TelemetryStatus::Stalled(_)) => {
                self.telemetry.status = Some(TelemetryStatus::Ended("the guest exited".into()));
            }
            _ => {}
        }
        self.qemu = QemuState::Exited { exit, stderr };
    }

    pub fn on_failure(&mut self, what: &str, error: String) {
        self.set_message(
            Severity::Error,
            format!("{what} failed (see the Console pane)"),
        );
        self.qemu = QemuState::Failed {
            what: what.to_string(),
            error,
        };
    }

    /// A warning when a running guest has been silent for long (no output, no telemetry).
    pub fn hang_warning(&self) -> Option<String> {
        if !self.qemu_running() || self.gdb.stopped == Some(true) {
            return None;
        }
        let since = |at: Option<Duration>| at.map(|at| self.now.saturating_sub(at));
        let output = since(self.last_output_at.or(self.qemu_started_at))?;
        let telemetry = since(self.telemetry.last_at).unwrap_or(output);
        if output < HANG_AFTER || telemetry < HANG_AFTER {
            return None;
        }
        Some(if self.console.text().is_empty() {
            format!(
                "no console output {}s after QEMU started: is the kernel booting? \
                 (a kernel stuck before its banner, or QEMU frozen by a gdb stub)",
                output.as_secs()
            )
        } else {
            format!(
                "no console output or telemetry for {}s: the guest may be hung",
                output.as_secs().min(telemetry.as_secs())
            )
        })
    }

    // ---- keys ----------------------------------------------------------------------------

    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        match self.mode.clone() {
            Mode::Typing => self.typing_key(key),
            Mode::Search(query) => {
                self.search_key(key, query);
                Vec::new()
            }
            Mode::GdbInput(line) => self.gdb_input_key(key, line),
            Mode::Normal => self.normal_key(key),
        }
    }

    fn typing_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if is_escape_from_typing(&key) {
            self.mode = Mode::Normal;
            return Vec::new();
        }
        if !self.qemu_running() {
            self.mode = Mode::Normal;
            self.set_message(
                Severity::Warning,
                "the guest is not running: typing mode off",
            );
            return Vec::new();
        }
        let bytes = key_to_bytes(&key);
        if bytes.is_empty() {
            return Vec::new();
        }
        self.console.follow();
        vec![Action::SendToGuest(bytes)]
    }

    fn search_key(&mut self, key: KeyEvent, mut query: String) {
        match key.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                if query.is_empty() {
                    self.console.clear_search();
                    return;
                }
                let count = self.console.search(&query);
                let text = match count {
                    0 => format!("/{query}: not found"),
                    1 => format!("/{query}: 1 match"),
                    n => format!("/{query}: {n} matches (n / N: next / previous)"),
                };
                self.set_message(Severity::Info, text);
            }
            KeyCode::Backspace => {
                query.pop();
                self.mode = Mode::Search(query);
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                query.push(c);
                self.mode = Mode::Search(query);
            }
            _ => {}
        }
    }

    fn gdb_input_key(&mut self, key: KeyEvent, mut line: String) -> Vec<Action> {
        if is_ctrl(&key, 'c') {
            return vec![Action::GdbInterrupt];
        }
        match key.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Enter => {
                self.mode = Mode::GdbInput(String::new());
                if !line.trim().is_empty() {
                    return vec![Action::GdbCommand(line.trim().to_string())];
                }
            }
            KeyCode::Backspace => {
                line.pop();
                self.mode = Mode::GdbInput(line);
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                line.push(c);
                self.mode = Mode::GdbInput(line);
            }
            _ => {}
        }
        Vec::new()
    }

    fn switch_to(&mut self, tab: Tab) {
        self.tab = tab;
        self.help = false;
    }

    fn normal_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if is_ctrl(&key, 'c') {
            return vec![Action::Quit];
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('q') => return vec![Action::Quit],
            KeyCode::Char('?') => self.help = !self.help,
            KeyCode::Esc => {
                self.help = false;
                self.console.clear_search();
            }
            KeyCode::Tab => self.switch_to(self.tab.step(true)),
            KeyCode::BackTab => self.switch_to(self.tab.step(false)),
            KeyCode::Char(c @ '1'..='5') => {
                self.switch_to(Tab::ALL[usize::from(c as u8 - b'1')]);
            }
            KeyCode::F(n @ 1..=5) => self.switch_to(Tab::ALL[usize::from(n - 1)]),
            KeyCode::Char('s') => return vec![Action::SaveReport],
            _ => return self.pane_key(key),
        }
        Vec::new()
    }

    /// Keys the global table does not take go to the pane on screen, with the shared state it
    /// may touch.
    fn pane_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let mut context = Context {
            qemu_running: matches!(self.qemu, QemuState::Running { .. }),
            mode: &mut self.mode,
            message: &mut self.message,
            telemetry: &mut self.telemetry,
        };
        match self.tab {
            Tab::Console => self.console.handle_key(key, &mut context),
            Tab::Panic => self.panic_pane.handle_key(key, &mut context),
            Tab::Memory => self.memory.handle_key(key, &mut context),
            Tab::Processes => self.processes.handle_key(key, &mut context),
            Tab::Gdb => self.gdb.handle_key(key, &mut context),
        }
    }

    pub fn on_gdb_attached(&mut self, transcript: String) {
        self.gdb.session = GdbSession::Attached;
        // Attaching stops the kernel (kgdb) or finds QEMU's CPU frozen.
        self.gdb.stopped = Some(true);
        self.gdb.transcript = transcript;
        self.mode = Mode::GdbInput(String::new());
        self.set_message(
            Severity::Info,
            "gdb attached: the kernel is stopped; `c` continues, Ctrl-C interrupts",
        );
    }

    pub fn on_gdb_failed(&mut self, error: String) {
        self.gdb.session = GdbSession::Failed(error);
        if matches!(self.mode, Mode::GdbInput(_)) {
            self.mode = Mode::Normal;
        }
    }

    /// New gdb output (see `GdbView::on_output`).
    pub fn on_gdb_output(&mut self, new: &str) {
        self.gdb.on_output(new);
    }

    /// The gdb command line to paste into another terminal, for the session's stub.
    pub fn gdb_command(&self) -> Option<String> {
        self.gdb.command(&self.info)
    }

    /// Running / stopped / not running, with the reason, for the status line and GDB pane.
    pub fn kernel_state(&self) -> (&'static str, String) {
        match &self.qemu {
            QemuState::Building => ("not started", "building the kernel".into()),
            QemuState::Starting => ("starting", "QEMU is starting".into()),
            QemuState::Failed { what, .. } => ("not running", format!("{what} failed")),
            QemuState::Exited { exit, .. } => ("exited", describe_exit(*exit)),
            QemuState::Running { .. } => {
                if let GdbStub::Qemu { .. } = self.gdb.stub
                    && self.console.raw().is_empty()
                    && self.gdb.stopped.is_none()
                {
                    return ("stopped", "frozen until gdb continues".into());
                }
                match self.gdb.stopped {
                    Some(true) => ("stopped", "in the debugger".into()),
                    _ if self.panic.is_some() => ("stopped", "after a panic".into()),
                    _ => ("running", String::new()),
                }
            }
        }
    }

    /// The process whose memory map and kernel stack the processes pane shows, if it is on
    /// screen.
    pub fn detail_focus(&self) -> Option<u32> {
        if self.tab != Tab::Processes {
            return None;
        }
        let tasks = self.sorted_tasks();
        let selected = self.processes.selected.min(tasks.len().saturating_sub(1));
        tasks.get(selected).map(|task| task.pid)
    }

    /// Tasks of the last snapshot in the processes pane's order.
    pub fn sorted_tasks(&self) -> Vec<&cadenza_qemu::telemetry::Task> {
        match &self.telemetry.last {
            Some(snapshot) => self.processes.sorted(&snapshot.tasks),
            None => Vec::new(),
        }
    }
}

/// How the guest ended, in the TUI's words (`GuestExit`'s own text points at a console above).
pub fn describe_exit(exit: GuestExit) -> String {
    match exit {
        GuestExit::Panic => "the kernel panicked (see the Panic pane)".into(),
        other => other.to_string(),
    }
}

/// Drops a `[    1.234567] ` console timestamp.
fn strip_stamp(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[')
        && let Some((stamp, after)) = rest.split_once("] ")
        && stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return after;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn running() -> App {
        let mut app = App::new();
        app.on_qemu_started(42);
        app
    }

    #[test]
    fn typing_mode_sends_every_key_until_ctrl_bracket() {
        let mut app = running();
        assert_eq!(app.handle_key(key(KeyCode::Char('i'))), []);
        assert_eq!(app.mode, Mode::Typing);
        assert_eq!(
            app.handle_key(key(KeyCode::Char('q'))),
            [Action::SendToGuest(b"q".to_vec())]
        );
        assert_eq!(app.handle_key(ctrl('c')), [Action::SendToGuest(vec![3])]);
        assert_eq!(
            app.handle_key(key(KeyCode::Tab)),
            [Action::SendToGuest(b"\t".to_vec())]
        );
        assert_eq!(app.handle_key(ctrl(']')), []);
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(app.handle_key(key(KeyCode::Char('q'))), [Action::Quit]);
    }

    #[test]
    fn tabs_help_and_global_keys() {
        let mut app = running();
        app.handle_key(key(KeyCode::Char('3')));
        assert_eq!(app.tab, Tab::Memory);
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(app.tab, Tab::Processes);
        app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(app.tab, Tab::Panic);
        app.handle_key(key(KeyCode::F(5)));
        assert_eq!(app.tab, Tab::Gdb);
        app.handle_key(key(KeyCode::Char('?')));
        assert!(app.help);
        app.handle_key(key(KeyCode::Esc));
        assert!(!app.help);
        assert_eq!(
            app.handle_key(key(KeyCode::Char('s'))),
            [Action::SaveReport]
        );
        assert_eq!(app.handle_key(ctrl('c')), [Action::Quit]);
    }

    #[test]
    fn search_prompt_finds_console_text() {
        let mut app = running();
        app.on_console(b"Cadenza 0.1.0 (x86_64) booting\r\nmore\r\n");
        app.handle_key(key(KeyCode::Char('/')));
        for c in "BOOTING".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        app.handle_key(key(KeyCode::Backspace));
        app.handle_key(key(KeyCode::Char('G')));
        assert_eq!(app.mode, Mode::Search("BOOTING".into()));
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(
            app.console.search.as_ref().map(|s| s.matches.len()),
            Some(1)
        );
    }

    #[test]
    fn a_panic_report_opens_the_panic_pane_once_complete() {
        let mut app = running();
        app.handle_key(key(KeyCode::Char('i')));
        app.on_console(b"[    0.1] boot\r\n==== CADENZA PANIC REPORT v1 ====\r\nkind: panic\r\n");
        assert!(app.panic.is_none());
        assert_eq!(app.tab, Tab::Console);
        app.on_console(
            b"message: boom\r\nlocation: kernel/src/x.rs:1:2\r\ncpu: 0\r\nuptime_ns: 1\r\n\
              registers:\r\n  RSP=0x1\r\nbacktrace:\r\n  #0 0xffffffff80200000\r\n\
              ==== END CADENZA PANIC REPORT ====\r\n",
        );
        let analysis = app.panic.as_ref().expect("analysed");
        assert_eq!(analysis.report.message, "boom");
        assert_eq!(app.tab, Tab::Panic);
        assert_eq!(app.mode, Mode::Normal, "typing mode ends with the panic");
    }

    #[test]
    fn telemetry_announcement_and_its_absence() {
        let mut app = running();
        app.on_console(b"[ 0.2] telemetry: snapshots (format v1) on ttyS2; requests: x\r\n");
        assert!(app.telemetry_announced());

        let mut app = running();
        app.on_console(b"[ 0.2] init: no /init in the initramfs\r\n");
        assert!(matches!(
            app.telemetry.status,
            Some(TelemetryStatus::Unavailable(_))
        ));

        let mut app = running();
        app.on_console(b"telemetry: \"ttyS9\" is not a ttyS<n> device; telemetry off\n");
        assert!(matches!(
            &app.telemetry.status,
            Some(TelemetryStatus::Unavailable(m)) if m.contains("ttyS9")
        ));
    }

    #[test]
    fn marks_fall_back_to_the_host_when_the_kernel_refuses() {
        let mut app = running();
        app.tab = Tab::Memory;
        let mut snapshot = Snapshot {
            version: 1,
            seq: 3,
            ..Default::default()
        };
        snapshot.tracker.seq = 99;
        app.on_telemetry(TelemetryEvent::Snapshot {
            snapshot: Box::new(snapshot),
            raw: String::new(),
            answered: Answered::Poll,
        });
        assert_eq!(
            app.handle_key(key(KeyCode::Char('m'))),
            [Action::Telemetry(TelemetryCommand::Mark)]
        );
        app.on_telemetry(TelemetryEvent::Refused {
            answered: Answered::Mark,
            message: "unknown request".into(),
        });
        assert_eq!(app.telemetry.mark.as_ref().map(|m| m.alloc_seq), Some(99));
        assert_eq!(app.handle_key(key(KeyCode::Char('m'))), [], "host-side now");
        assert_eq!(
            app.handle_key(key(KeyCode::Char('l'))),
            [Action::Telemetry(TelemetryCommand::Scan)]
        );
    }

    #[test]
    fn hang_warning_needs_silence_on_both_channels() {
        let mut app = running();
        app.on_console(b"hello\n");
        app.now = Duration::from_secs(10);
        assert_eq!(app.hang_warning(), None);
        app.now = Duration::from_secs(45);
        assert!(app.hang_warning().is_some_and(|w| w.contains("hung")));
        app.telemetry.last_at = Some(Duration::from_secs(40));
        assert_eq!(app.hang_warning(), None);
    }

    #[test]
    fn sorts_processes_by_any_column() {
        let mut app = running();
        let mut snapshot = Snapshot::default();
        for (pid, ppid, comm, cpu_ms, rss_kib, vsz_kib) in [
            (1, 0, "init", 30, None, 500),
            (3, 1, "b", 10, Some(900), 100),
            (2, 1, "a", 20, Some(40), 9000),
        ] {
            snapshot.tasks.push(cadenza_qemu::telemetry::Task {
                pid,
                ppid,
                state: "S".into(),
                comm: comm.into(),
                cpu_ms: Some(cpu_ms),
                rss_kib,
                memory: Some(cadenza_qemu::telemetry::TaskMemory {
                    vsz_kib,
                    ..Default::default()
                }),
                extra: vec![(
                    "cpu".into(),
                    match pid {
                        1 => "0x10",
                        2 => "9",
                        _ => "100",
                    }
                    .into(),
                )],
            });
        }
        app.telemetry.last = Some(snapshot);
        let pids = |app: &App| app.sorted_tasks().iter().map(|t| t.pid).collect::<Vec<_>>();
        assert_eq!(pids(&app), [1, 2, 3]);
        app.tab = Tab::Processes;
        app.handle_key(key(KeyCode::Char('o')));
        app.handle_key(key(KeyCode::Char('o')));
        assert_eq!(app.processes.sort, SortKey::Name);
        assert_eq!(pids(&app), [2, 3, 1]);
        app.handle_key(key(KeyCode::Char('o')));
        app.handle_key(key(KeyCode::Char('o')));
        assert_eq!(app.processes.sort, SortKey::Cpu);
        assert_eq!(pids(&app), [3, 2, 1], "by cpu_ms");
        app.handle_key(key(KeyCode::Char('o')));
        assert_eq!(app.processes.sort, SortKey::Memory);
        assert_eq!(pids(&app), [1, 2, 3], "by rss_kib, unknown first");
        app.handle_key(key(KeyCode::Char('o')));
        assert_eq!(app.processes.sort, SortKey::Virtual);
        assert_eq!(pids(&app), [3, 1, 2], "by vsz_kib");
        app.handle_key(key(KeyCode::Char('o')));
        assert_eq!(app.processes.sort, SortKey::Extra(0));
        assert_eq!(pids(&app), [2, 1, 3], "numbers compare as numbers");
        app.handle_key(key(KeyCode::Char('r')));
        assert_eq!(pids(&app), [3, 1, 2]);
    }

    #[test]
    fn extra_task_fields_come_from_the_decoded_snapshot_not_the_raw_text() {
        let mut app = running();
        app.tab = Tab::Processes;
        let text = "telemetry-begin version=1 seq=1\n\
uptime ns=1 jiffies=0 hz=100\n\
frames total=1 free=1 used=0 kernel=0 heap=0 heap_meta=0 tracker=0\n\
heap objects=0 bytes=0 footprint=0 free_bytes=0 internal_frag=0 external_frag=0 allocs=0 frees=0 failed=0 large_objects=0 large_frames=0 large_bytes=0\n\
classes count=0\n\
tracker state=on objects=0 peak=0 capacity=1 bytes=0 sites=0 site_capacity=1 overhead=0 seq=0 mark=0 scans=0 unreferenced=0 untracked=0 allocs=0 frees=0\n\
sites count=0\n\
leaks count=0 total=0\n\
tasks count=2 total=2\n\
task pid=1 ppid=0 state=S comm=\"init\" nr_threads=1\n\
task pid=2 ppid=1 state=R comm=\"sh\" nr_threads=3\n\
telemetry-end seq=1 records=10\n";
        let snapshot = Snapshot::parse(text).expect("parses");
        // The worker's raw text is only kept for saved reports: the columns must not need it.
        app.on_telemetry(TelemetryEvent::Snapshot {
            snapshot: Box::new(snapshot),
            raw: String::new(),
            answered: Answered::Poll,
        });
        for _ in 0..7 {
            app.handle_key(key(KeyCode::Char('o')));
        }
        assert_eq!(app.processes.sort, SortKey::Extra(0));
        app.handle_key(key(KeyCode::Char('r')));
        let pids: Vec<u32> = app.sorted_tasks().iter().map(|t| t.pid).collect();
        assert_eq!(pids, [2, 1], "by nr_threads, descending");
    }
}
