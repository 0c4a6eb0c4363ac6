//! The real `cadenza-tui` binary in a real terminal (tmux, 160x48) against the real kernel in
//! QEMU (TCG): what a person sees, read back with `capture-pane`, driven with `send-keys`.
//!
//! Every wait polls the screen until a deadline and fails with the last screen attached, and
//! each test's tmux server (its own socket) is killed when the test ends, passed or failed.
//! The kernel is built once with `cadenza_qemu::build_kernel` (set `CADENZA_KERNEL=ELF` to use a
//! ready one); `/init` is `tests/tui_init.c`, built with `musl-gcc -static`, except in the shell
//! test, which uses the TUI's default initramfs (Debian's busybox-static: init, then a shell).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cadenza_qemu::{BuildOptions, Workspace, build_kernel};

const BOOT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

fn kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            if let Some(elf) = std::env::var_os("CADENZA_KERNEL") {
                return PathBuf::from(elf);
            }
            let workspace = Workspace::locate().expect("inside the checkout");
            build_kernel(&workspace, &BuildOptions::default())
                .unwrap_or_else(|e| panic!("cannot build the kernel: {e:#}"))
        })
        .clone()
}

/// A root file system whose `/init` is `tests/tui_init.c`.
fn root_with_init(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tui_init.c");
    let status = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("init"))
        .arg(&source)
        .status()
        .expect("musl-gcc runs (Debian package musl-tools; scripts/setup.sh installs it)");
    assert!(status.success(), "compiling {}", source.display());
    root
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// One tmux server running one session; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a fresh 160x48 terminal.
    fn start(name: &str, command: &str) -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(output) if output.status.success() => {}
            _ => panic!(
                "tmux is not installed: the end-to-end test runs the TUI in tmux \
                 (Debian: apt-get install -y tmux)"
            ),
        }
        let tmux = Self {
            socket: format!("cadenza-tui-e2e-{}-{name}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "160", "-y", "48", "-s", "tui"])
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "tui"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success(), "send-keys {keys:?}");
    }

    /// The pid of the process running in the pane.
    fn pane_pid(&self) -> u32 {
        let output = self.tmux(&["list-panes", "-t", "tui", "-F", "#{pane_pid}"]);
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("tmux reports the pane's pid")
    }

    fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", "tui"]).status.success()
    }

    /// Polls the screen until `done` holds; fails with the last screen after `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline && self.alive(),
                "{what}: not on screen after {timeout:?} (session alive: {}); last screen:\n{screen}",
                self.alive()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Tmux {
    /// Presses `q` and waits until cadenza-tui (and with it the session) has ended.
    fn quit(&self) {
        self.keys(&["q"]);
        let deadline = Instant::now() + STEP;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !self.alive(),
            "q did not end cadenza-tui:\n{}",
            self.screen()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `Heap    79 objects · 55.0 KiB live` -> (79, "55.0 KiB").
fn heap_figures(screen: &str) -> Option<(u64, String)> {
    let line = screen.lines().find(|l| l.contains("Heap    "))?;
    let after = line.split("Heap    ").nth(1)?;
    let objects = after
        .split(" objects")
        .next()?
        .replace(',', "")
        .parse()
        .ok()?;
    let live = after
        .split(" · ")
        .nth(1)?
        .strip_suffix(" live")?
        .to_string();
    Some((objects, live))
}

#[test]
fn boots_the_kernel_and_shows_console_memory_processes_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = root_with_init(dir.path());
    let reports = dir.path().join("reports");
    let status_file = dir.path().join("status");
    let command = format!(
        "{} --kernel {} --initrd {} --append '-- 40' --report-dir {}; echo $? > {}",
        quote(env!("CARGO_BIN_EXE_cadenza-tui")),
        quote(&kernel().display().to_string()),
        quote(&root.display().to_string()),
        quote(&reports.display().to_string()),
        quote(&status_file.display().to_string()),
    );
    let tmux = Tmux::start("boot", &command);

    tmux.wait_for("the boot banner and init's output", BOOT, |s| {
        s.contains("Cadenza 0.1.0 (x86_64) booting")
            && s.contains("hello from the cadenza-tui e2e init")
    });

    tmux.keys(&["3"]);
    // Everything expected is part of the condition: tmux can capture a half-redrawn frame.
    tmux.wait_for(
        "non-zero heap figures, size classes and live telemetry",
        STEP,
        |s| {
            heap_figures(s).is_some_and(|(objects, live)| objects > 0 && !live.starts_with("0 B"))
                && s.contains("Size classes")
                && s.contains("telemetry live")
        },
    );

    tmux.keys(&["4"]);
    tmux.wait_for("init in the process list", STEP, |s| {
        s.contains("Processes: ") && s.lines().any(|l| l.contains(" init ") && l.contains('S'))
    });

    tmux.keys(&["s"]);
    let screen = tmux.wait_for("the saved report's path", STEP, |s| {
        s.contains("report saved to")
    });
    let report = std::fs::read_dir(&reports)
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(Result::ok)
        .map(|entry| std::fs::read_to_string(entry.path()).expect("report readable"))
        .unwrap_or_else(|| panic!("no report in {}:\n{screen}", reports.display()));
    for needle in [
        "===== Console log =====",
        "Cadenza 0.1.0 (x86_64) booting",
        "hello from the cadenza-tui e2e init",
        "===== Last telemetry snapshot =====\ntelemetry-begin version=1",
        "task pid=1 ppid=0",
    ] {
        assert!(
            report.contains(needle),
            "{needle:?} not in the report:\n{report}"
        );
    }

    tmux.quit();
    let status = std::fs::read_to_string(&status_file).unwrap_or_default();
    assert_eq!(status.trim(), "0", "cadenza-tui's exit status");
}

#[test]
fn the_default_initramfs_gives_a_busybox_shell_that_runs_typed_commands() {
    let busybox = Path::new(cadenza_qemu::initramfs::BUSYBOX);
    assert!(
        busybox.exists(),
        "{} is missing: the default initramfs is Debian's busybox-static \
         (apt-get install -y busybox-static; scripts/setup.sh installs it)",
        busybox.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // No --initrd: the TUI builds its default initramfs (busybox init, then a shell).
    let command = format!(
        "{} --kernel {} --report-dir {}",
        quote(env!("CARGO_BIN_EXE_cadenza-tui")),
        quote(&kernel().display().to_string()),
        quote(&dir.path().display().to_string()),
    );
    let tmux = Tmux::start("shell", &command);
    tmux.wait_for("busybox's shell prompt", BOOT, |s| {
        s.contains("built-in shell (ash)") && s.lines().any(|l| l.contains("/ # "))
    });

    // Typing mode, a command whose output only the shell can compute, back to normal mode.
    tmux.keys(&["i"]);
    tmux.keys(&["echo cz-$((6*7))", "Enter"]);
    tmux.wait_for("the command's output", STEP, |s| {
        s.lines()
            .any(|l| l.contains("cz-42") && !l.contains("echo"))
    });
    // Debian's neofetch under Debian's bash, both in the default system (scripts/setup.sh).
    tmux.keys(&["neofetch --stdout | grep -E '^(OS|Kernel):'", "Enter"]);
    tmux.wait_for("neofetch's report", STEP, |s| {
        s.contains("OS: Cadenza") && s.contains("Kernel: 6.1.0-cadenza")
    });
    tmux.keys(&["C-]"]);

    // init waits for the shell (asleep, not runnable); the shell waits for input.
    tmux.keys(&["4"]);
    // Their resident memory comes from the kernel's task records.
    let sleeping_with_memory =
        |l: &str| l.contains("S sleeping") && (l.contains(" KiB") || l.contains(" MiB"));
    tmux.wait_for(
        "init and the shell, both sleeping, with memory, in the process list",
        STEP,
        |s| {
            s.lines()
                .any(|l| l.contains(" init ") && sleeping_with_memory(l))
                && s.lines()
                    .any(|l| l.contains(" sh ") && sleeping_with_memory(l))
        },
    );
    // The selected process (init, first by pid): its memory map and the kernel stack it sleeps
    // on, symbolized to source lines.
    tmux.wait_for(
        "init's memory map and kernel stack with source lines",
        STEP,
        |s| {
            s.contains("memory map")
                && s.contains("[stack]")
                && s.contains(" r-xp ")
                && s.lines()
                    .any(|l| l.contains("task::schedule") && l.contains("kernel/src/task/"))
        },
    );

    tmux.quit();
}

#[test]
fn a_kernel_panic_opens_the_panic_pane_with_source_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let command = format!(
        "{} --kernel {} --initrd none --append panic_test --report-dir {}",
        quote(env!("CARGO_BIN_EXE_cadenza-tui")),
        quote(&kernel().display().to_string()),
        quote(&dir.path().display().to_string()),
    );
    let tmux = Tmux::start("panic", &command);
    // Source lines around the panic; all of it in the condition, as a frame can be half drawn.
    tmux.wait_for(
        "the symbolized panic pane with a marked source line",
        BOOT,
        |s| {
            s.contains("PANIC  symbolized backtrace")
                && s.contains("kernel/src/debug/crash.rs")
                && s.contains("panic_test")
                && s.lines().any(|l| l.contains(" > ") && l.contains('│'))
        },
    );
    tmux.wait_for("QEMU's exit after the panic", STEP, |s| {
        s.contains("the kernel panicked")
    });
    tmux.keys(&["q"]);
}

#[test]
fn a_killed_tui_takes_its_qemu_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // QEMU's gdb stub holds the CPU until gdb attaches: a guest that neither writes nor
    // exits, so nothing but the TUI's own arrangement can end it.
    let command = format!(
        "exec {} --kernel {} --initrd none --gdb-qemu 0 --report-dir {}",
        quote(env!("CARGO_BIN_EXE_cadenza-tui")),
        quote(&kernel().display().to_string()),
        quote(&dir.path().display().to_string()),
    );
    let tmux = Tmux::start("orphan", &command);
    tmux.wait_for("QEMU frozen for gdb", BOOT, |s| {
        s.contains("frozen until gdb continues")
    });
    // Keep the pane when the TUI dies: closing it would hang up the terminal and SIGHUP would
    // end QEMU anyway, hiding whether the TUI itself made sure of it.
    assert!(
        tmux.tmux(&["set-option", "-t", "tui", "remain-on-exit", "on"])
            .status
            .success()
    );
    let tui = tmux.pane_pid();
    let qemu = *cadenza_qemu::launch::children_of(tui)
        .first()
        .unwrap_or_else(|| panic!("the TUI (pid {tui}) has no QEMU child"));
    // SIGKILL: no destructor, no signal handler, nothing of the TUI runs again.
    let killed = Command::new("kill")
        .args(["-KILL", &tui.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + STEP;
    while cadenza_qemu::launch::is_running(qemu) {
        assert!(
            Instant::now() < deadline,
            "QEMU {qemu} outlived the killed TUI"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
