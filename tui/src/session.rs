//! Launcher glue: the one place that builds, boots and talks to the guest, for the TUI.
//!
//! Everything slow happens off the UI thread: the kernel build runs on a thread (its result,
//! and the symbolizer opened once for the whole session, come back over a channel), telemetry
//! and gdb have their own workers, and QEMU's console is collected by `cadenza_qemu`'s reader
//! threads. `tick` only moves what has already arrived into the `App` — copy the new console
//! text, drain channels, `try_wait` QEMU — so the screen redraws at a steady rate whatever the
//! guest does. Dropping the session kills QEMU (`Running`'s `Drop`) and stops the workers.
//!
//! Adapter note: `Running` hands out the whole console as one `String`; the session keeps the
//! length it has consumed and forwards only what is new (checked only when `console_len`
//! grew).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use ::symbols::Symbolizer;
use anyhow::{Context, Result, bail};
use cadenza_qemu::launch::free_local_port;
use cadenza_qemu::{
    BuildOptions, InitrdSource, Profile, QemuConfig, QemuGdb, Running, SerialBackend, Workspace,
    build_kernel,
};

use crate::app::{Action, App, GdbStub, SessionInfo, Severity};
use crate::cli::Cli;
use crate::gdb::{GdbEvent, GdbWorker};
use crate::telemetry::{CONNECT_TIMEOUT, POLL_INTERVAL, TelemetryCommand, TelemetryWorker};

/// Where the kernel comes from.
#[derive(Clone, Debug)]
enum KernelSource {
    Build(Profile),
    Path(PathBuf),
}

/// What to boot, decided from the command line before the screen opens (so that argument
/// mistakes are plain terminal errors).
#[derive(Clone, Debug)]
pub struct Plan {
    kernel: KernelSource,
    initrd: InitrdSource,
    append: String,
    accel: cadenza_qemu::Accel,
    memory_mib: u32,
    stub: GdbStub,
    telemetry: bool,
    report_dir: PathBuf,
    qemu: PathBuf,
}

impl Plan {
    pub fn from_cli(cli: &Cli, workspace: Option<&Workspace>) -> Result<Self> {
        let profile = if cli.dev {
            Profile::Dev
        } else {
            Profile::Release
        };
        let kernel = match (&cli.kernel, cli.no_build) {
            (Some(path), _) => {
                if !path.is_file() {
                    bail!("kernel image {} does not exist", path.display());
                }
                KernelSource::Path(path.clone())
            }
            (None, true) => {
                let workspace = workspace
                    .context("--no-build needs the Cadenza checkout (run from inside it)")?;
                let elf = workspace.kernel_elf(profile);
                if !elf.is_file() {
                    bail!(
                        "{} does not exist: build it first (drop --no-build, or `cargo run -p cadenza-qemu -- build`)",
                        elf.display()
                    );
                }
                KernelSource::Path(elf)
            }
            (None, false) => {
                if workspace.is_none() {
                    bail!(
                        "cannot build the kernel outside the Cadenza checkout: run from inside it or pass --kernel ELF"
                    );
                }
                KernelSource::Build(profile)
            }
        };
        let initrd = match &cli.initrd {
            None => InitrdSource::Default,
            Some(path) if path.as_os_str() == "none" => InitrdSource::None,
            Some(path) => InitrdSource::from_path(path)?,
        };
        let pick =
            |port: u16| -> Result<u16> { Ok(if port == 0 { free_local_port()? } else { port }) };
        let stub = match (cli.kgdb, cli.gdb_qemu) {
            (Some(port), _) => GdbStub::Kgdb {
                port: pick(port)?,
                wait: cli.kgdbwait,
            },
            (None, Some(port)) => GdbStub::Qemu { port: pick(port)? },
            (None, None) => GdbStub::None,
        };
        let report_dir = match &cli.report_dir {
            Some(dir) => dir.clone(),
            None => workspace.map_or_else(|| PathBuf::from("."), Workspace::out_dir),
        };
        Ok(Self {
            kernel,
            initrd,
            append: cli.append.trim().to_string(),
            accel: cli.accel,
            memory_mib: cli.memory,
            stub,
            telemetry: !cli.no_telemetry,
            report_dir,
            qemu: cli.qemu.clone(),
        })
    }

    /// The kernel command line: console, telemetry, the stub's words, then the user's.
    pub fn kernel_command_line(&self) -> String {
        let mut words = vec!["console=ttyS0".to_string()];
        if self.telemetry {
            words.push("telemetry=ttyS2".into());
        }
        if let GdbStub::Kgdb { wait, .. } = self.stub {
            words.push("kgdboc=ttyS1".into());
            if wait {
                words.push("kgdbwait".into());
            }
        }
        // Words after a lone `--` belong to init: ours must come before the user's.
        if !self.append.is_empty() {
            words.push(self.append.clone());
        }
        words.join(" ")
    }
}

type BuildResult = Result<(PathBuf, Result<Symbolizer, String>), String>;

pub struct Session {
    plan: Plan,
    workspace: Option<Workspace>,
    build: Option<Receiver<BuildResult>>,
    running: Option<Running>,
    /// Bytes of `Running::console()` already given to the app.
    console_seen: usize,
    console_len: usize,
    socket_dir: Option<PathBuf>,
    telemetry: Option<TelemetryWorker>,
    /// The process the telemetry worker was last told to look at closely.
    telemetry_focus: Option<u32>,
    gdb: Option<GdbWorker>,
    started: Instant,
}

impl Session {
    /// Starts the session: the build (or, with a given ELF, QEMU) begins right away.
    pub fn start(plan: Plan, workspace: Option<Workspace>, app: &mut App) -> Self {
        app.telemetry_requested = plan.telemetry;
        app.gdb.stub = plan.stub.clone();
        app.info = SessionInfo {
            kernel: None,
            workspace: workspace.as_ref().map(|w| w.root().to_path_buf()),
            append: plan.kernel_command_line(),
            accel: plan.accel.to_string(),
            memory_mib: plan.memory_mib,
            initrd: match &plan.initrd {
                InitrdSource::None => "none".into(),
                InitrdSource::Default => "default root skeleton".into(),
                InitrdSource::Archive(p) | InitrdSource::Directory(p) => p.display().to_string(),
            },
            qemu_command: String::new(),
        };
        let mut session = Self {
            plan,
            workspace,
            build: None,
            running: None,
            console_seen: 0,
            console_len: 0,
            socket_dir: None,
            telemetry: None,
            telemetry_focus: None,
            gdb: None,
            started: Instant::now(),
        };
        match session.plan.kernel.clone() {
            KernelSource::Path(elf) => {
                let symbolizer = open_symbolizer(&elf);
                session.boot(app, elf, symbolizer);
            }
            KernelSource::Build(profile) => {
                let (tx, rx) = mpsc::channel();
                let workspace = session.workspace.clone();
                std::thread::Builder::new()
                    .name("build".into())
                    .spawn(move || {
                        let result = match workspace {
                            Some(ws) => build_kernel(
                                &ws,
                                &BuildOptions {
                                    profile,
                                    show_cargo_output: false,
                                },
                            )
                            .map_err(|e| format!("{e:#}"))
                            .map(|elf| {
                                let symbolizer = open_symbolizer(&elf);
                                (elf, symbolizer)
                            }),
                            None => Err("no checkout to build in".into()),
                        };
                        let _ = tx.send(result);
                    })
                    .ok();
                session.build = Some(rx);
            }
        }
        session
    }

    fn boot(&mut self, app: &mut App, elf: PathBuf, symbolizer: Result<Symbolizer, String>) {
        app.set_symbolizer(symbolizer);
        app.info.kernel = Some(elf.clone());
        app.qemu = crate::app::QemuState::Starting;
        match self.spawn(&elf, app) {
            Ok(running) => {
                app.on_qemu_started(running.pid());
                self.running = Some(running);
            }
            Err(error) => app.on_failure("starting QEMU", format!("{error:#}")),
        }
    }

    fn spawn(&mut self, elf: &Path, app: &mut App) -> Result<Running> {
        let workspace = match &self.workspace {
            Some(ws) => ws.clone(),
            None => Workspace::at(&std::env::temp_dir()),
        };
        let mut config = QemuConfig::new(elf);
        config.qemu_binary = self.plan.qemu.clone();
        config.initrd = self.plan.initrd.prepare(&workspace)?;
        config.append = self.plan.kernel_command_line();
        config.accel = self.plan.accel;
        config.memory_mib = self.plan.memory_mib;
        config.serial = vec![SerialBackend::Capture, SerialBackend::Null];
        // If the TUI is killed (even with SIGKILL), QEMU goes too; spawned from the main loop.
        config.exit_with_parent = true;
        match self.plan.stub {
            GdbStub::Kgdb { port, .. } => config.serial[1] = SerialBackend::Tcp(port),
            GdbStub::Qemu { port } => {
                config.qemu_gdb = Some(QemuGdb {
                    port,
                    wait_for_attach: true,
                });
            }
            GdbStub::None => {}
        }
        if self.plan.telemetry {
            let dir = std::env::temp_dir().join(format!("cadenza-tui-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let socket = dir.join("telemetry.sock");
            let _ = std::fs::remove_file(&socket);
            config.serial.push(SerialBackend::Unix(socket));
            self.socket_dir = Some(dir);
        }
        app.info.qemu_command = config.command_line();
        Ok(config.spawn()?)
    }

    /// Moves whatever has arrived into `app`. Never blocks.
    pub fn tick(&mut self, app: &mut App) {
        app.now = self.started.elapsed();
        if let Some(build) = &self.build {
            match build.try_recv() {
                Ok(Ok((elf, symbolizer))) => {
                    self.build = None;
                    self.boot(app, elf, symbolizer);
                }
                Ok(Err(error)) => {
                    self.build = None;
                    app.on_failure("building the kernel", error);
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.build = None;
                    app.on_failure("building the kernel", "the build thread died".into());
                }
            }
        }
        if let Some(worker) = &self.telemetry {
            for event in worker.drain() {
                app.on_telemetry(event);
            }
            // The selected process's map and kernel stack come with the polls while the
            // processes pane shows it.
            let focus = app.detail_focus();
            if focus != self.telemetry_focus && worker.send(TelemetryCommand::Focus(focus)) {
                self.telemetry_focus = focus;
            }
        }
        let mut exited = false;
        if let Some(running) = &mut self.running {
            let len = running.console_len();
            if len != self.console_len {
                self.console_len = len;
                let text = running.console();
                forward_new(&text, &mut self.console_seen, app);
            }
            exited = !matches!(running.try_exit(), Ok(None));
        }
        if exited && let Some(running) = self.running.take() {
            // QEMU is gone: `wait` returns at once, after its readers drained the pipes.
            match running.wait(Some(Duration::ZERO)) {
                Ok(result) => {
                    forward_new(&result.console, &mut self.console_seen, app);
                    app.on_qemu_exit(result.exit, result.stderr);
                    // The channel died with QEMU; the last snapshot stays for the post-mortem.
                    self.telemetry = None;
                }
                Err(error) => app.on_failure("waiting for QEMU", error.to_string()),
            }
        }
        if self.telemetry.is_none()
            && self.running.is_some()
            && app.telemetry_announced()
            && let Some(dir) = &self.socket_dir
        {
            self.telemetry_focus = None;
            self.telemetry = Some(TelemetryWorker::start(
                dir.join("telemetry.sock"),
                POLL_INTERVAL,
                CONNECT_TIMEOUT,
            ));
        }
        if let Some(worker) = &self.gdb {
            for event in worker.drain() {
                match event {
                    GdbEvent::Attached(text) => app.on_gdb_attached(text),
                    GdbEvent::Failed(error) => {
                        app.on_gdb_failed(error);
                        self.gdb = None;
                        break;
                    }
                    GdbEvent::Output(text) => app.on_gdb_output(&text),
                }
            }
        }
    }

    /// Carries out what a key asked for.
    pub fn execute(&mut self, action: Action, app: &mut App) {
        match action {
            Action::Quit => app.quit = true,
            Action::SendToGuest(bytes) => match &mut self.running {
                Some(running) => {
                    if let Err(error) = running.send(&bytes) {
                        app.set_message(
                            Severity::Error,
                            format!("cannot type into the guest: {error}"),
                        );
                    }
                }
                None => app.set_message(Severity::Warning, "the guest is not running"),
            },
            Action::Telemetry(command) => match &self.telemetry {
                Some(worker) if worker.send(command) => {}
                _ => app.set_message(Severity::Warning, "the telemetry channel is not open"),
            },
            Action::SaveReport => match crate::report::save(app, &self.plan.report_dir) {
                Ok(path) => app.set_message(
                    Severity::Info,
                    format!("report saved to {}", path.display()),
                ),
                Err(error) => app.set_message(
                    Severity::Error,
                    format!("saving the report failed: {error:#}"),
                ),
            },
            Action::GdbAttach => {
                let port = match self.plan.stub {
                    GdbStub::Kgdb { port, .. } | GdbStub::Qemu { port } => port,
                    GdbStub::None => return,
                };
                let Some(elf) = app.info.kernel.clone() else {
                    app.on_gdb_failed("no kernel ELF yet".into());
                    return;
                };
                let script = self
                    .workspace
                    .as_ref()
                    .map(|w| w.root().join("scripts/gdb/cadenza.py"))
                    .filter(|p| p.is_file());
                self.gdb = Some(GdbWorker::attach(elf, format!(":{port}"), script));
            }
            Action::GdbCommand(command) => {
                if let Some(gdb) = &self.gdb {
                    let trimmed = command.trim();
                    // gdb does not echo commands read from a pipe; the pane shows them.
                    app.gdb.transcript.push_str(&format!("{trimmed}\n"));
                    if matches!(trimmed, "c" | "continue" | "cont") {
                        app.gdb.stopped = Some(false);
                    }
                    gdb.send(trimmed);
                }
            }
            Action::GdbInterrupt => {
                if let Some(gdb) = &self.gdb {
                    gdb.send("interrupt");
                }
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // QEMU first (Running's Drop kills it), then the socket's directory.
        self.running = None;
        self.telemetry = None;
        self.gdb = None;
        if let Some(dir) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Gives `app` the part of `text` after `seen` bytes. A character that was still incomplete
/// last time was decoded as U+FFFD then; such a tail is held back until more bytes arrive.
fn forward_new(text: &str, seen: &mut usize, app: &mut App) {
    if *seen > text.len() || !text.is_char_boundary(*seen) {
        return;
    }
    let mut end = text.len();
    if let Some(stripped) = text.strip_suffix('\u{fffd}') {
        end = stripped.len();
    }
    if end > *seen {
        app.on_console(&text.as_bytes()[*seen..end]);
        *seen = end;
    }
}

fn open_symbolizer(elf: &Path) -> Result<Symbolizer, String> {
    Symbolizer::open(elf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("cadenza-tui").chain(args.iter().copied()))
            .expect("valid arguments");
        Plan::from_cli(&cli, Workspace::locate().ok().as_ref())
    }

    #[test]
    fn command_line_puts_our_words_before_the_users() {
        let manifest = env!("CARGO_MANIFEST_PATH");
        let plan = plan(&[
            "--kernel",
            manifest,
            "--append",
            "panic_test -- a b",
            "--kgdb",
            "4321",
        ])
        .expect("plan");
        assert_eq!(
            plan.kernel_command_line(),
            "console=ttyS0 telemetry=ttyS2 kgdboc=ttyS1 panic_test -- a b"
        );
        let plan = self::plan(&["--kernel", manifest, "--no-telemetry"]).expect("plan");
        assert_eq!(plan.kernel_command_line(), "console=ttyS0");
    }

    #[test]
    fn bad_paths_are_errors_before_the_screen_opens() {
        let error = plan(&["--kernel", "/nonexistent/kernel"]).expect_err("fails");
        assert!(error.to_string().contains("/nonexistent/kernel"), "{error}");
        let error = plan(&["--initrd", "/nonexistent/root"]).expect_err("fails");
        assert!(
            format!("{error:#}").contains("/nonexistent/root"),
            "{error:#}"
        );
    }

    #[test]
    fn a_missing_qemu_is_reported_in_the_app() {
        let mut app = App::new();
        let manifest = env!("CARGO_MANIFEST_PATH");
        let plan = plan(&["--kernel", manifest, "--qemu", "qemu-system-none-such"]).expect("plan");
        let session = Session::start(plan, Workspace::locate().ok(), &mut app);
        match &app.qemu {
            crate::app::QemuState::Failed { what, error } => {
                assert_eq!(what, "starting QEMU");
                assert!(error.contains("qemu-system-none-such not found"), "{error}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        drop(session);
    }

    #[test]
    fn forwards_only_new_complete_text() {
        let mut app = App::new();
        let mut seen = 0;
        forward_new("abc\u{fffd}", &mut seen, &mut app);
        assert_eq!((seen, app.console.text()), (3, "abc"));
        forward_new("abcé\n", &mut seen, &mut app);
        assert_eq!(app.console.text(), "abcé\n");
        forward_new("abcé\n", &mut seen, &mut app);
        assert_eq!(app.console.text(), "abcé\n");
    }
}
